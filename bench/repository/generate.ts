/**
 * Builds bare repositories quickly with `git fast-import`: a linear history of `commits` commits
 * on `branch`, each changing one of a few files. Used by the repository benchmark and by the
 * integration tests that need a repository too big to clone in a blink.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";

export interface GenerateOptions {
  commits: number;
  branch?: string;
  /** Bytes of incompressible content per commit (default 64: small text). */
  bytesPerCommit?: number;
  /** Distinct files the commits rotate through. */
  files?: number;
}

/** Creates (or extends) a bare repository at `path` with a generated history. */
export function generateRepository(path: string, options: GenerateOptions): void {
  mkdirSync(path, { recursive: true });
  execFileSync("git", ["init", "--quiet", "--bare", "--initial-branch", options.branch ?? "main", path]);
  const stream = fastImportStream(options);
  const result = spawnSync("git", [`--git-dir=${path}`, "fast-import", "--quiet"], { input: stream, maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`git fast-import failed: ${result.stderr.toString()}`);
}

function fastImportStream(options: GenerateOptions): Buffer {
  const branch = `refs/heads/${options.branch ?? "main"}`;
  const bytes = options.bytesPerCommit ?? 64;
  const files = options.files ?? 16;
  const parts: Buffer[] = [];
  const when = 1_700_000_000;
  for (let i = 1; i <= options.commits; i++) {
    const content = bytes <= 64 ? Buffer.from(`line ${i}\n`) : randomBytes(bytes);
    const message = `commit ${i}\n`;
    parts.push(
      Buffer.from(
        `commit ${branch}\nmark :${i}\ncommitter Geo Bench <bench@example.com> ${when + i} +0000\n` +
          `data ${Buffer.byteLength(message)}\n${message}` +
          (i > 1 ? `from :${i - 1}\n` : "") +
          `M 644 inline file-${i % files}.txt\ndata ${content.length}\n`,
      ),
      content,
      Buffer.from("\n"),
    );
  }
  return Buffer.concat(parts);
}
