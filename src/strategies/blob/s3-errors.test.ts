import { describe, expect, it } from "vitest";
import { ObjectMissingError, classifyS3Error } from "./s3-errors.ts";

/** The shape of an SDK service exception, without a message to tempt text matching. */
function serviceError(name: string, httpStatusCode: number): Error {
  return Object.assign(new Error(""), { name, $metadata: { httpStatusCode }, $fault: "client" });
}

function nodeError(code: string): Error {
  return Object.assign(new Error(""), { code });
}

describe("classifyS3Error", () => {
  it.each([
    [new ObjectMissingError("b", "k", "primary"), "missing-object"],
    [serviceError("NoSuchKey", 404), "missing-object"],
    [serviceError("NotFound", 404), "missing-object"],
    [serviceError("NoSuchBucket", 404), "missing-bucket"],
    [serviceError("InvalidAccessKeyId", 403), "bad-credentials"],
    [serviceError("SignatureDoesNotMatch", 403), "bad-credentials"],
    [serviceError("AccessDenied", 403), "bad-credentials"],
    [serviceError("SomethingNew", 403), "bad-credentials"],
    [serviceError("Unknown", 401), "bad-credentials"],
    [nodeError("ECONNREFUSED"), "unreachable"],
    [nodeError("ECONNRESET"), "unreachable"],
    [nodeError("ENOTFOUND"), "unreachable"],
    [Object.assign(new Error(""), { name: "TimeoutError" }), "unreachable"],
    [serviceError("ServiceUnavailable", 503), "unreachable"],
    [serviceError("InternalError", 502), "unreachable"],
    [new AggregateError([nodeError("ECONNREFUSED"), nodeError("EHOSTUNREACH")]), "unreachable"],
    [new AggregateError([nodeError("ECONNREFUSED"), new Error("")]), "other"],
    [serviceError("InternalError", 500), "other"],
    [serviceError("InvalidBucketName", 400), "other"],
    [new Error("NoSuchKey ECONNREFUSED AccessDenied"), "other"],
    ["a string", "other"],
    [undefined, "other"],
    [null, "other"],
  ])("classifies %o as %s", (err, expected) => {
    expect(classifyS3Error(err)).toBe(expected);
  });

  it("looks through wrapping errors' causes", () => {
    const wrapped = new Error("sync failed", { cause: new Error("read failed", { cause: nodeError("ECONNREFUSED") }) });
    expect(classifyS3Error(wrapped)).toBe("unreachable");
  });

  it("does not loop on a cause cycle", () => {
    const a: Error & { cause?: unknown } = new Error("a");
    a.cause = a;
    expect(classifyS3Error(a)).toBe("other");
  });
});

describe("ObjectMissingError", () => {
  it("says which object is missing where", () => {
    expect(new ObjectMissingError("geo-primary", "uploads/a b.txt", "primary").message).toBe(
      "object geo-primary/uploads/a b.txt does not exist on the primary",
    );
  });
});
