#!/usr/bin/env node
// Entry shim for the `geo-operator` CLI. A source checkout runs the TypeScript directly (Node 24
// strips types natively); the container image ships only the compiled dist/ tree.
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

const source = fileURLToPath(new URL("../cmd/geo-operator.ts", import.meta.url));
const compiled = fileURLToPath(new URL("../dist/cmd/geo-operator.js", import.meta.url));
const [major] = process.versions.node.split(".").map(Number);
if (major < 24) {
  console.error(`geo-operator needs Node.js 24 or newer (this is ${process.version}); run it through npx or the Makefile so node_modules/.bin/node is used.`);
  process.exit(1);
}
await import(pathToFileURL(existsSync(source) ? source : compiled).href);
