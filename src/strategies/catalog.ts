/**
 * The strategies geo-operator knows: one line per strategy. Each definition claims one
 * `spec.strategy`; asking for a strategy that none or several claim is an error rather than a
 * silent pick. Adding a strategy: its folder under src/strategies/, one line here, and
 * `npm run generate` for the CRDs (docs/architecture.md, "Adding a strategy").
 */
import { blobStrategy } from "./blob/definition.ts";
import type { StrategyDefinition } from "./definition.ts";
import { repositoryStrategy } from "./repository/definition.ts";

export const STRATEGIES: readonly StrategyDefinition[] = [
  blobStrategy,
  repositoryStrategy,
];

/** The one definition claiming `name`. */
export function strategyFor(name: string, strategies: readonly StrategyDefinition[] = STRATEGIES): StrategyDefinition {
  const claiming = strategies.filter((s) => s.name === name);
  if (claiming.length !== 1) {
    throw new Error(claiming.length === 0 ? `no strategy handles strategy "${name}"` : `${claiming.length} strategies claim strategy "${name}"`);
  }
  return claiming[0]!;
}
