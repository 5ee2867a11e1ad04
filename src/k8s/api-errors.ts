import { ApiException } from "@kubernetes/client-node";

/**
 * The API server's own message from a Status body, when it sent one; a plain-text body otherwise
 * (the aggregator answers "service unavailable" as text when an APIService cannot be reached).
 */
export function statusMessage(err: ApiException<unknown>): string {
  const text = typeof err.body === "string" ? err.body.trim() : "";
  try {
    const body = text ? (JSON.parse(text) as { message?: string }) : (err.body as { message?: string });
    if (body?.message) return body.message;
  } catch {
    // not a Status object
    if (text) return `HTTP ${err.code}: ${text.length > 300 ? `${text.slice(0, 300)}…` : text}`;
  }
  return `HTTP ${err.code}`;
}

/** A failure as a person should read it in a condition: the API server's message, not the client's dump. */
export function describeError(err: unknown): string {
  if (err instanceof ApiException) return `${statusMessage(err)} (HTTP ${err.code})`;
  return err instanceof Error ? err.message : String(err);
}
