#!/usr/bin/env node
// Entry shim for the `kubectl-geo` plugin. A source checkout runs the TypeScript directly (Node 24
// strips types natively); an install from the compiled tree runs dist/.
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

const source = fileURLToPath(new URL("../cmd/kubectl-geo.ts", import.meta.url));
const compiled = fileURLToPath(new URL("../dist/cmd/kubectl-geo.js", import.meta.url));
const [major] = process.versions.node.split(".").map(Number);
if (major < 24) {
  console.error(`kubectl-geo needs Node.js 24 or newer (this is ${process.version}).`);
  process.exit(1);
}
await import(pathToFileURL(existsSync(source) ? source : compiled).href);
