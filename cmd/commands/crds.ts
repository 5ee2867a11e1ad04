import type { Command } from "commander";
import { stringify } from "yaml";
import { customResourceDefinitions } from "../../src/strategies/crds.ts";

/** `geo-operator crds` prints the CustomResourceDefinitions, for `| kubectl apply -f -`. */
export function registerCrdsCommand(program: Command): void {
  program
    .command("crds")
    .description("print the GeoSite and ReplicableType CustomResourceDefinitions as YAML")
    .action(() => {
      process.stdout.write(customResourceDefinitions().map((crd) => stringify(crd, { lineWidth: 0 })).join("---\n"));
    });
}
