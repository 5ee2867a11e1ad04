/**
 * Which rows `resync` and `reverify` act on: registry ids, model ids, every row, or the rows in one
 * state. Exactly one selector is allowed; the manager refuses ids that do not exist before
 * anything changes, and `--all` asks first (after a dry run has counted the rows).
 */
import { InvalidArgumentError, Option, type Command } from "commander";
import type { ActionName, RegistryActionSpec } from "../registry-api/group.ts";
import { createRegistryAction } from "./cluster.ts";
import { failure, usageError } from "./errors.ts";
import type { PluginIO } from "./io.ts";
import type { Target } from "./target.ts";

export interface SelectionOptions {
  id?: number[];
  modelId?: number[];
  all?: boolean;
  /** The state flag's value (--state or --verification), already checked by commander. */
  inState?: string;
  yes?: boolean;
}

/** Parses "3", "3,4" and repeated or space-separated values of a variadic id flag. */
export function collectIds(value: string, previous: number[] | undefined): number[] {
  const ids = value.split(",").filter((v) => v !== "").map((v) => {
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < 1) throw new InvalidArgumentError(`"${v}" is not a positive integer id`);
    return Number(v);
  });
  return [...(previous ?? []), ...ids];
}

/** Adds --id, --model-id, --all and --yes; the caller adds its own state flag. */
export function addSelectionOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option("--id <id...>", "registry row ids (the ID column of `kubectl geo registries`); secondary sites only").argParser(collectIds))
    .addOption(new Option("--model-id <id...>", "model ids (the MODEL ID column: the record's id on the primary)").argParser(collectIds))
    .option("--all", "every row of the type on the site (asks for confirmation)")
    .option("-y, --yes", "do not ask for confirmation");
}

/** Checks that exactly one selector was given; `stateFlag` names the command's state flag. */
export function checkSelection(opts: SelectionOptions, stateFlag: string): void {
  const given = [opts.id ? "--id" : "", opts.modelId ? "--model-id" : "", opts.all ? "--all" : "", opts.inState !== undefined ? stateFlag : ""].filter(Boolean);
  if (given.length !== 1) {
    const choose = `--id, --model-id, --all or ${stateFlag}`;
    throw usageError(given.length === 0 ? `say which rows: one of ${choose}` : `${given.join(" and ")} cannot be combined: use one of ${choose}`);
  }
}

export interface SelectionResult {
  selected: number;
  changed: number;
}

/**
 * Asks the manager to carry out `action` on the selected rows. `stateKey` says which spec field
 * the state flag fills; `describe` says what is about to happen, for the --all question.
 */
export async function applySelection(
  target: Target,
  action: Exclude<ActionName, "release-deletions">,
  opts: SelectionOptions,
  io: PluginIO,
  stateKey: "state" | "verification",
  describe: (count: number) => string,
): Promise<SelectionResult> {
  if (opts.id && target.site.spec.role === "primary") {
    throw usageError(`GeoSite ${target.site.metadata.name} is the primary, which has no registry ids: select rows with --model-id`);
  }
  const spec: RegistryActionSpec = {
    action,
    type: target.typeName,
    site: target.site.metadata.name,
    ...(opts.id ? { ids: opts.id } : {}),
    ...(opts.modelId ? { modelIds: opts.modelId } : {}),
    ...(opts.all ? { all: true } : {}),
    ...(opts.inState !== undefined ? { [stateKey]: opts.inState } : {}),
  };
  if (opts.all && !opts.yes) {
    const { selected } = await createRegistryAction(target.session, spec, true);
    if (selected === 0) return { selected: 0, changed: 0 };
    if (!io.interactive) throw usageError(`${describe(selected)}: stdin is not a terminal, so pass --yes to confirm`);
    if (!(await io.confirm(`${describe(selected)}. Continue?`))) throw failure("aborted; nothing changed");
  }
  const { selected, changed } = await createRegistryAction(target.session, spec, false);
  return { selected, changed };
}
