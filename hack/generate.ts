// Writes every file derived from src/api/v1alpha1/crds.ts. Run with `npm run generate`.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderGeneratedFiles } from "../src/api/v1alpha1/render.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
for (const [path, content] of await renderGeneratedFiles()) {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), content);
  console.log(`wrote ${path}`);
}
