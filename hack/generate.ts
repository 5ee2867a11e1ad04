// Writes every file derived from the CRD schemas (src/api/v1alpha1/crds.ts + the strategies' fragments). Run with `npm run generate`.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderGeneratedFiles } from "../src/api/v1alpha1/render.ts";
import { KINDS } from "../src/strategies/crds.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
for (const [path, content] of await renderGeneratedFiles(KINDS)) {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), content);
  console.log(`wrote ${path}`);
}
