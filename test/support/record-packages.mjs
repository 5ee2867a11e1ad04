// Loaded with `node --import`: records every package the process loads (through import or
// require) and, as the process exits, writes their names as JSON to $GEO_RECORD_PACKAGES.
import { registerHooks } from "node:module";
import { writeFileSync } from "node:fs";

const packages = new Set();
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context);
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(result.url);
    if (m) packages.add(m[1]);
    return result;
  },
});
process.on("exit", () => writeFileSync(process.env.GEO_RECORD_PACKAGES, JSON.stringify([...packages].sort())));
