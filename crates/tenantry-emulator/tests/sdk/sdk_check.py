"""Drives a running tenantry emulator with the official Anthropic Python SDK.

Usage: python3 sdk_check.py BASE_URL

The emulator must accept the key "sk-test" (and reject others), start with a batch
latency of 200 ms and a batch body limit of 1 MiB. The script controls the emulator's
clock, latency and faults through its /_emulator/ routes, checks every batch operation
through the SDK's own types and exceptions, and exits non-zero on the first failure.
"""

import json
import sys
import urllib.request

import anthropic
from anthropic.types import Message
from anthropic.types.messages import (
    DeletedMessageBatch,
    MessageBatch,
    MessageBatchCanceledResult,
    MessageBatchErroredResult,
    MessageBatchExpiredResult,
    MessageBatchIndividualResponse,
    MessageBatchSucceededResult,
)

BASE = sys.argv[1]
MODEL = "claude-opus-4-8"


def control(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        BASE + "/_emulator/" + path,
        data=data,
        method="GET" if body is None else "POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def faults(*specs):
    control("faults", {"specs": list(specs)})


def advance(ms):
    control("clock", {"advance_ms": ms})


def injected(endpoint, kind):
    return control("fault_counts").get(endpoint, {}).get("injected", {}).get(kind, 0)


def requests_of(endpoint):
    return control("fault_counts").get(endpoint, {}).get("requests", 0)


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def expect(exception, call, what):
    try:
        call()
    except exception as err:
        return err
    raise AssertionError(f"{what}: expected {exception.__name__}")


def req(custom_id, text="hello", **params):
    body = {"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": text}]}
    body.update(params)
    return {"custom_id": custom_id, "params": body}


client = anthropic.Anthropic(base_url=BASE, api_key="sk-test", max_retries=2)
control("clock", {"scale": 0})
control("config", {"batch_latency_ms": 200})

# --- Messages and count_tokens -------------------------------------------------------
message = client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hello, world"}])
check(isinstance(message, Message), "messages.create returns a Message")
check(message.id.startswith("msg_"), "message id")
check(message.content[0].text == "Echo: Hello, world", f"text {message.content[0].text!r}")
counted = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Hello, world"}])
check(counted.input_tokens == message.usage.input_tokens, "count_tokens matches usage.input_tokens")
check(message.usage.output_tokens <= 64, "output_tokens <= max_tokens")

# --- Create, retrieve, results -------------------------------------------------------
batch = client.messages.batches.create(
    requests=[req("ok-1"), req("ok-2", "second"), req("bad-model", model="claude-nope"), req("zero", max_tokens=0)]
)
check(isinstance(batch, MessageBatch), "create returns MessageBatch")
check(batch.processing_status == "in_progress", "created in_progress")
check(batch.request_counts.processing == 4, "processing count")
check(batch.results_url is None and batch.ended_at is None, "no results yet")
expect(anthropic.AnthropicError, lambda: list(client.messages.batches.results(batch.id)), "results before end")
advance(200)
batch = client.messages.batches.retrieve(batch.id)
check(batch.processing_status == "ended", "ended after latency")
counts = batch.request_counts
check((counts.succeeded, counts.errored, counts.processing) == (2, 2, 0), f"counts {counts}")
check(batch.results_url.startswith(BASE + "/v1/messages/batches/"), f"results_url {batch.results_url}")
results = list(client.messages.batches.results(batch.id))
check(len(results) == 4, "four result lines")
by_id = {r.custom_id: r for r in results}
for r in results:
    check(isinstance(r, MessageBatchIndividualResponse), "line type")
check(isinstance(by_id["ok-1"].result, MessageBatchSucceededResult), "succeeded type")
check(by_id["ok-2"].result.message.content[0].text == "Echo: second", "succeeded text")
check(by_id["ok-1"].result.message.usage.service_tier == "batch", "service tier")
bad = by_id["bad-model"].result
check(isinstance(bad, MessageBatchErroredResult), "errored type")
check(bad.error.error.type == "not_found_error", f"errored type {bad.error.error.type}")
check(by_id["zero"].result.error.error.type == "invalid_request_error", "max_tokens 0 errored")

# --- Cancel: canceled lines; cancel and delete rules ----------------------------------
control("config", {"batch_latency_ms": 10_000})
batch = client.messages.batches.create(requests=[req(f"c-{i}") for i in range(10)])
advance(1_500)
canceling = client.messages.batches.cancel(batch.id)
check(canceling.processing_status == "canceling", "canceling")
check(canceling.cancel_initiated_at is not None, "cancel_initiated_at")
expect(anthropic.BadRequestError, lambda: client.messages.batches.delete(batch.id), "delete while canceling")
advance(1_000)
ended = client.messages.batches.retrieve(batch.id)
check(ended.processing_status == "ended", "canceled batch ends")
check(ended.request_counts.canceled == 8 and ended.request_counts.succeeded == 2, f"{ended.request_counts}")
kinds = [type(r.result) for r in client.messages.batches.results(batch.id)]
check(kinds.count(MessageBatchCanceledResult) == 8, "canceled lines")
expect(anthropic.BadRequestError, lambda: client.messages.batches.cancel(batch.id), "cancel after end")
deleted = client.messages.batches.delete(batch.id)
check(isinstance(deleted, DeletedMessageBatch) and deleted.type == "message_batch_deleted", "deleted")
expect(anthropic.NotFoundError, lambda: client.messages.batches.retrieve(batch.id), "retrieve deleted")

# --- Expiry: expired lines ------------------------------------------------------------
control("config", {"batch_latency_ms": 48 * 3600 * 1000})
batch = client.messages.batches.create(requests=[req(f"e-{i}") for i in range(4)])
advance(24 * 3600 * 1000)
ended = client.messages.batches.retrieve(batch.id)
check(ended.processing_status == "ended" and ended.request_counts.expired == 2, f"{ended.request_counts}")
kinds = [type(r.result) for r in client.messages.batches.results(batch.id)]
check(kinds.count(MessageBatchExpiredResult) == 2, "expired lines")
control("config", {"batch_latency_ms": 0})

# --- List paging both ways -------------------------------------------------------------
created = [client.messages.batches.create(requests=[req("p")]).id for _ in range(5)]
all_ids = [b.id for b in client.messages.batches.list(limit=2)]  # auto-paging with after_id
check(all_ids[:5] == created[::-1], "newest first across pages")
check(len(all_ids) == len(set(all_ids)), "no duplicates across pages")
page = client.messages.batches.list(limit=2)
check(page.has_more and page.first_id == created[4] and page.last_id == created[3], "first page")
page2 = page.get_next_page()
check([b.id for b in page2.data] == [created[2], created[1]], "second page via after_id")
newer = client.messages.batches.list(before_id=created[0], limit=2)
check([b.id for b in newer.data] == [created[2], created[1]], "before_id page")
newest = newer.get_next_page()
check([b.id for b in newest.data] == [created[4], created[3]], "before_id walks toward newer")
check(not newest.has_more, "no newer page")
beta_ids = [b.id for b in client.beta.messages.batches.list(limit=3)]
check(beta_ids[:5] == created[::-1], "beta list with ?beta=true and the beta header")

# --- Errors and their exception classes -------------------------------------------------
err = expect(
    anthropic.BadRequestError,
    lambda: client.messages.batches.create(requests=[req("ok"), req("not valid!")]),
    "400 envelope",
)
check("requests.1.custom_id" in str(err), f"pydantic path in {err}")
check(err.request_id and err.request_id.startswith("req_"), "request id on errors")
expect(
    anthropic.AuthenticationError,
    lambda: anthropic.Anthropic(base_url=BASE, api_key="sk-wrong").messages.batches.list(),
    "401",
)
expect(anthropic.NotFoundError, lambda: client.messages.batches.retrieve("msgbatch_01nope"), "404")
big = [req(f"big-{i}", "x" * 10_000) for i in range(120)]
expect(anthropic.ContentTooLargeError, lambda: client.messages.batches.create(requests=big), "413")

faults("messages:429=50:3")
expect(anthropic.RateLimitError, lambda: client.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}]), "429")
check(injected("messages", "rate_limited") == 3, "SDK made 3 attempts on 429")

faults("create:529:3")
expect(anthropic.OverloadedError, lambda: client.messages.batches.create(requests=[req("o")]), "529")
check(injected("create", "overloaded") == 3, "SDK made 3 attempts on 529")

before = requests_of("create")
faults("create:529:2")
batch = client.messages.batches.create(requests=[req("retried")])
check(requests_of("create") - before == 3, "two 529s retried, third create succeeds")
check(injected("create", "overloaded") == 5, "5 overloaded answers in total")

faults("retrieve:500+noretry:1")
expect(anthropic.InternalServerError, lambda: client.messages.batches.retrieve(batch.id), "x-should-retry: false")
check(injected("retrieve", "api_error") == 1, "not retried")

faults("retrieve:reset:1")
client.messages.batches.retrieve(batch.id)
check(injected("retrieve", "connection_reset") == 1, "reset retried by the SDK")

faults("retrieve:404:1")
expect(anthropic.NotFoundError, lambda: client.messages.batches.retrieve(batch.id), "transient 404")
check(client.messages.batches.retrieve(batch.id).id == batch.id, "found after the transient 404")

# --- Results stream faults ---------------------------------------------------------------
faults("results:truncate=100:1")
expect(Exception, lambda: list(client.messages.batches.results(batch.id)), "truncated stream fails")
faults("results:slow=64/1:1")
check(len(list(client.messages.batches.results(batch.id))) == 1, "slow stream decodes")

faults("errored=1.0/overloaded_error")
batch = client.messages.batches.create(requests=[req("r1"), req("r2")])
lines = list(client.messages.batches.results(batch.id))
check(all(l.result.type == "errored" and l.result.error.error.type == "overloaded_error" for l in lines), "errored share")
check(all(l.result.error.request_id.startswith("req_") for l in lines), "errored lines carry request ids")
faults()

print("python sdk check: ok")
