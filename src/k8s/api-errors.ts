import { ApiException } from "@kubernetes/client-node";

/** The API server's own message from a Status body, when it sent one. */
export function statusMessage(err: ApiException<unknown>): string {
  try {
    const body = typeof err.body === "string" ? (JSON.parse(err.body) as { message?: string }) : (err.body as { message?: string });
    if (body?.message) return body.message;
  } catch {
    // not a Status object
  }
  return `HTTP ${err.code}`;
}

/** A failure as a person should read it in a condition: the API server's message, not the client's dump. */
export function describeError(err: unknown): string {
  if (err instanceof ApiException) return `${statusMessage(err)} (HTTP ${err.code})`;
  return err instanceof Error ? err.message : String(err);
}
