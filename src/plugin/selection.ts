/**
 * Which rows `resync` and `reverify` act on: registry ids, model ids, every row, or the rows in one
 * state. Exactly one selector is allowed; ids that do not exist stop the command before anything
 * changes, and `--all` asks first.
 */
import { InvalidArgumentError, Option, type Command } from "commander";
import { failure, notFound, usageError } from "./errors.ts";
import type { PluginIO } from "./io.ts";
import { countRows, existingModelIds, modelIdBatches, modelIdsOfRegistryIds, type RowFilter } from "../registry/row-selection.ts";
import type { Target } from "./target.ts";

export interface SelectionOptions {
  id?: number[];
  modelId?: number[];
  all?: boolean;
  /** The state flag's value (--state or --verification), already checked by commander. */
  inState?: number;
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
 * Resolves the selection to model ids and hands them to `apply` (in batches for --all and state
 * filters). `stateFilter` turns the state flag's value into a row filter. `describe` says what is
 * about to happen, for the --all question.
 */
export async function applySelection(
  target: Target,
  opts: SelectionOptions,
  io: PluginIO,
  stateFilter: (value: number) => RowFilter,
  describe: (count: number) => string,
  apply: (modelIds: number[]) => Promise<number>,
): Promise<SelectionResult> {
  const db = target.db.pool;
  if (opts.id) {
    if (target.site.spec.role === "primary") {
      throw usageError(`GeoSite ${target.site.metadata.name} is the primary, which has no registry ids: select rows with --model-id`);
    }
    const ids = [...new Set(opts.id)];
    const found = await modelIdsOfRegistryIds(db, target.config, ids);
    const missing = ids.filter((id) => !found.has(id));
    if (missing.length) throw notFound(`no ${target.config.name} registry row with id ${missing.join(", ")} on GeoSite ${target.site.metadata.name}; nothing changed`);
    return { selected: ids.length, changed: await apply([...found.values()]) };
  }
  if (opts.modelId) {
    const ids = [...new Set(opts.modelId)];
    const found = await existingModelIds(db, target.side, ids);
    const missing = ids.filter((id) => !found.has(id));
    if (missing.length) throw notFound(`no ${target.config.name} row for model id ${missing.join(", ")} on GeoSite ${target.site.metadata.name}; nothing changed`);
    return { selected: ids.length, changed: await apply(ids) };
  }
  const filter = opts.inState === undefined ? {} : stateFilter(opts.inState);
  if (opts.all && !opts.yes) {
    const count = await countRows(db, target.side, filter);
    if (count === 0) return { selected: 0, changed: 0 };
    if (!io.interactive) throw usageError(`${describe(count)}: stdin is not a terminal, so pass --yes to confirm`);
    if (!(await io.confirm(`${describe(count)}. Continue?`))) throw failure("aborted; nothing changed");
  }
  const result: SelectionResult = { selected: 0, changed: 0 };
  for await (const batch of modelIdBatches(db, target.side, filter)) {
    result.selected += batch.length;
    result.changed += await apply(batch);
  }
  return result;
}
