/**
 * `kubectl-geo`: the kubectl plugin (`kubectl geo ...`). kubectl runs any `kubectl-geo` on PATH
 * with the arguments after `geo`; the commands live in src/plugin/.
 */
import { existsSync, readFileSync } from "node:fs";
import { processIO } from "../src/plugin/io.ts";
import { runPlugin } from "../src/plugin/program.ts";

// cmd/ in a checkout, dist/cmd/ in the image: package.json is one or two levels up.
const pkgURL = [new URL("../package.json", import.meta.url), new URL("../../package.json", import.meta.url)].find((u) => existsSync(u))!;
const pkg = JSON.parse(readFileSync(pkgURL, "utf8")) as { version: string };

process.exitCode = await runPlugin(process.argv.slice(2), processIO(), pkg.version);
