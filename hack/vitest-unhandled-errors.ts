/**
 * A vitest reporter that writes a run's unhandled errors (rejections and exceptions no test awaited)
 * beside its JSON report: `<name>.json` gets `<name>.unhandled.json`, an array, empty when there
 * were none. Vitest's JSON report leaves them out, so hack/test-summary.ts could not see them: a run
 * that printed "Errors 1 error" and exited 1 was summed up as all passed, and the error itself had
 * scrolled out of the tail CI shows.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Reporter, SerializedError, TestModule, Vitest } from "vitest/node";

export interface UnhandledErrorRecord {
  name: string;
  message: string;
  /** The first frames, enough to find where it was thrown. */
  stack: string;
  /** The test that was running when it was caught, when one was (vitest knows it only for some). */
  test?: string;
  file?: string;
}

/** `<dir>/<name>.json` -> `<dir>/<name>.unhandled.json`. */
export const unhandledErrorsPath = (jsonReport: string) => jsonReport.replace(/(\.json)?$/, ".unhandled.json");

export function toRecord(error: SerializedError): UnhandledErrorRecord {
  const e = error as SerializedError & { VITEST_TEST_NAME?: string; VITEST_TEST_PATH?: string };
  return {
    name: String(e.name ?? "Error"),
    message: String(e.message ?? ""),
    stack: String(e.stack ?? "").split("\n").slice(0, 8).join("\n"),
    ...(e.VITEST_TEST_NAME ? { test: e.VITEST_TEST_NAME } : {}),
    ...(e.VITEST_TEST_PATH ? { file: e.VITEST_TEST_PATH } : {}),
  };
}

export default class UnhandledErrorsReporter implements Reporter {
  private target: string | undefined;

  onInit(vitest: Vitest): void {
    const out = vitest.config.outputFile;
    const json = typeof out === "string" ? out : out?.json;
    this.target = json ? unhandledErrorsPath(json) : undefined;
  }

  onTestRunEnd(_modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    if (!this.target) return;
    mkdirSync(dirname(this.target), { recursive: true });
    writeFileSync(this.target, `${JSON.stringify(unhandledErrors.map(toRecord), null, 2)}\n`);
  }
}
