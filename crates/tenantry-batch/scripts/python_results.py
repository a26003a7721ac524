"""Iterates a batch's results with the official Python SDK and prints time and peak memory.

Usage: python3 python_results.py BASE_URL BATCH_ID [API_KEY]
Prints one JSON object: results, seconds (iteration only), max_rss_kib (whole process).
"""

import json
import resource
import sys
import time

import anthropic


def main() -> None:
    base_url, batch_id = sys.argv[1], sys.argv[2]
    api_key = sys.argv[3] if len(sys.argv) > 3 else "sk-bench"
    client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    count = 0
    output_tokens = 0
    for item in client.messages.batches.results(batch_id):
        count += 1
        if item.result.type == "succeeded":
            output_tokens += item.result.message.usage.output_tokens
    seconds = time.perf_counter() - started
    print(json.dumps({
        "results": count,
        "output_tokens": output_tokens,
        "seconds": seconds,
        "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "rss_before_iteration_kib": rss_before,
        "sdk_version": anthropic.__version__,
    }))


if __name__ == "__main__":
    main()
