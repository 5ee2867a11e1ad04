import type { Command } from "commander";
import { stringify } from "yaml";
import { customResourceDefinition, KINDS } from "../../src/api/v1alpha1/crds.ts";

/** `geo-operator crds` prints the CustomResourceDefinitions, for `| kubectl apply -f -`. */
export function registerCrdsCommand(program: Command): void {
  program
    .command("crds")
    .description("print the GeoSite and ReplicableType CustomResourceDefinitions as YAML")
    .action(() => {
      process.stdout.write(KINDS.map((k) => stringify(customResourceDefinition(k), { lineWidth: 0 })).join("---\n"));
    });
}
