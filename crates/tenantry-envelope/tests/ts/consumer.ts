// A client of tenantry-envelope's exported types, compiled with `tsc --strict` by
// `cargo test -p tenantry-envelope --features ts` (tests/typescript.rs).
//
// It narrows on `status` exhaustively, reads every member a client needs, and holds wrong
// usages under `@ts-expect-error`: if the Rust wire types drift (a variant, member or member
// type changes), either a correct usage or an expected error stops compiling.

import type { Code } from "./bindings/Code";
import type { Envelope } from "./bindings/Envelope";
import type { Limit } from "./bindings/Limit";
import type { Operation } from "./bindings/Operation";
import type { OperationState } from "./bindings/OperationState";
import type { Page } from "./bindings/Page";
import type { Problem } from "./bindings/Problem";
import type { ProblemDetails } from "./bindings/ProblemDetails";

// The transport is the host's business; the client pattern is one generic function.
declare function transport(url: string): Promise<unknown>;

export async function call<T>(url: string): Promise<Envelope<T>> {
  return (await transport(url)) as Envelope<T>;
}

export type View<T> =
  | { kind: "ready"; value: T; requestId: string | undefined }
  | { kind: "failed"; code: Code; message: string; retryable: boolean; fields: string[]; limits: Limit[] }
  | { kind: "waiting"; poll: string; afterMs: number; state: OperationState };

export function view<T>(envelope: Envelope<T>): View<T> {
  switch (envelope.status) {
    case "success":
      return { kind: "ready", value: envelope.data, requestId: envelope.meta?.request_id };
    case "error": {
      const problem: Problem = envelope.error;
      const fields = (problem.details?.fields ?? []).map((field) => `${field.pointer}: ${field.message}`);
      const limits = problem.details?.limits ?? [];
      return { kind: "failed", code: problem.code, message: problem.message, retryable: problem.retryable, fields, limits };
    }
    case "pending": {
      const operation: Operation = envelope.operation;
      return { kind: "waiting", poll: operation.status_url, afterMs: (operation.retry_after ?? 1) * 1000, state: operation.state };
    }
    default: {
      const unreachable: never = envelope;
      throw new Error(`unknown envelope ${JSON.stringify(unreachable)}`);
    }
  }
}

export function stateLabel(state: OperationState): string {
  switch (state) {
    case "queued":
      return "waiting for the next batch";
    case "running":
      return "being processed";
    case "canceling":
      return "being canceled";
    default: {
      const unreachable: never = state;
      return unreachable;
    }
  }
}

export function budgetMessage(problem: Problem): string | undefined {
  if (problem.code === "BUDGET_EXCEEDED") {
    const limit = problem.details?.limits?.[0];
    // 64-bit values arrive as exact decimal strings; BigInt parses them without loss.
    const max: string | undefined = limit?.max;
    return max === undefined ? undefined : `limit ${BigInt(max)} ${limit?.unit ?? ""}`;
  }
  return undefined;
}

export async function listAll<T>(url: string): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const envelope: Envelope<Page<T>> = await call<Page<T>>(cursor === null ? url : `${url}?cursor=${cursor}`);
    if (envelope.status !== "success") {
      throw new Error(envelope.status === "error" ? envelope.error.message : "unexpected pending list");
    }
    items.push(...envelope.data.items);
    cursor = envelope.data.has_more ? envelope.data.next_cursor : null;
  } while (cursor !== null);
  return items;
}

export function problemJson(details: ProblemDetails): string {
  return `${details.type} ${details.title} ${details.status} ${details.code} ${details.errors?.[0]?.pointer ?? ""}`;
}

// A host's own code still type-checks as a Code.
export const hostCode: Code = "SEAT_LIMIT_REACHED";

// ---- Wrong usages: each line below must be a type error. ----

export function wrongReads(envelope: Envelope<number>, problem: Problem, limit: Limit, operation: Operation): void {
  if (envelope.status === "error") {
    // @ts-expect-error an error envelope has no `data`
    void envelope.data;
  }
  if (envelope.status === "success") {
    // @ts-expect-error a success envelope has no `error`
    void envelope.error;
  }
  // @ts-expect-error `retryable` is a boolean
  const retryable: string = problem.retryable;
  // @ts-expect-error 64-bit limits are strings, never numbers or bigints
  const max: number = limit.max;
  // @ts-expect-error 64-bit limits are strings, never bigints
  const maxBig: bigint = limit.max;
  // @ts-expect-error operation ids are strings, never numbers
  const id: number = operation.id;
  // @ts-expect-error `retry_after` is a number of seconds
  const after: string | undefined = operation.retry_after;
  void [retryable, max, maxBig, id, after];
}

// @ts-expect-error "loading" is client-local, never a wire status
export const loading: Envelope<number> = { status: "loading" };
// @ts-expect-error a success always carries `data`
export const noData: Envelope<number> = { status: "success" };
// @ts-expect-error `data` has the endpoint's type
export const wrongData: Envelope<number> = { status: "success", data: "seven" };
// @ts-expect-error an error carries a problem under `error`
export const bareError: Envelope<number> = { status: "error", code: "NOT_FOUND" };
// @ts-expect-error unknown operation state
export const finished: Operation = { id: "job_1", state: "succeeded", status_url: "/v1/jobs/job_1" };
// @ts-expect-error a page always says whether more follow
export const noHasMore: Page<number> = { items: [1], next_cursor: null };
