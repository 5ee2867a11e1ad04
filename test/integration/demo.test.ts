/**
 * `make demo` on this machine, with less sample data: it must start its own servers, replicate
 * everything through the in-process operator, print what to try next and stop cleanly.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";

it("make demo replicates the sample data and exits with --exit", async () => {
  const dir = mkdtempSync(join(tmpdir(), "geo-demo-test-"));
  try {
    const child = spawn(process.execPath, [join(REPO_ROOT, "cmd/demo.ts"), "--exit", "--timeout", "240"], {
      env: { ...process.env, DEMO_BLOBS: "120", DEMO_REPOS: "3", DEMO_UPLOADS: "40", GEO_DEMO_DIR: dir },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? -1)));
    expect(code, out).toBe(0);
    expect(out).toMatch(/^tokyo\s+secondary\s+Healthy\s+cool_widget\s+120\s+120\s+120\s+0\s+100\.0%\s+100\.0%$/m);
    expect(out).toMatch(/^tokyo\s+secondary\s+Healthy\s+design_repository\s+3\s+3\s+3\s+0\s+100\.0%\s+100\.0%$/m);
    // Uploads: files in london's directory fetched through its retrieval server, every fifth from its bucket.
    expect(out).toMatch(/^tokyo\s+secondary\s+Healthy\s+upload\s+40\s+40\s+40\s+0\s+100\.0%\s+100\.0%$/m);
    expect(out).toMatch(/32 upload files \+ 8 upload objects/);
    expect(out).toMatch(/everything synced and verified in \d+\.\ds/);
    expect(out).toMatch(/kubectl get geosites -n geo-demo/);
    expect(out).toMatch(/make demo-corrupt/);
    // kubectl found the plugin and it read the demo's status.
    expect(out).toMatch(/\$ kubectl geo status -n geo-demo\n/);
    // After step 5 wrote one cool_widget and deleted another: 121 or 120, depending on when the status pass ran.
    expect(out).toMatch(/^tokyo\s+secondary\s+cool_widget\s+12[01]\s/m);
    // Step 5: each change followed through the event log and the in-process log cursors.
    expect(out).toMatch(/cool_widget \d+: synced and verified on tokyo \d+\.\d s after the write/);
    expect(out).toMatch(/upload \d+: the new content is on tokyo and verified against london's new checksum/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);
