/**
 * The strategies geo-operator knows. Each factory claims one `spec.strategy`; asking for a
 * strategy that none or several claim is an error rather than a silent pick.
 */
import { blobReplicatorFactory } from "./blob/replicator.ts";
import { repositoryReplicatorFactory } from "./repository/replicator.ts";
import type { Replicator, ReplicatorContext, ReplicatorFactory } from "./replicator.ts";

export const REPLICATOR_FACTORIES: readonly ReplicatorFactory[] = [blobReplicatorFactory, repositoryReplicatorFactory];

export function replicatorFactoryFor(strategy: string, factories: readonly ReplicatorFactory[] = REPLICATOR_FACTORIES): ReplicatorFactory {
  const claiming = factories.filter((f) => f.strategy === strategy);
  if (claiming.length !== 1) {
    throw new Error(claiming.length === 0 ? `no replicator handles strategy "${strategy}"` : `${claiming.length} replicators claim strategy "${strategy}"`);
  }
  return claiming[0]!;
}

export function createReplicator(ctx: ReplicatorContext): Replicator {
  return replicatorFactoryFor(ctx.type.strategy).create(ctx);
}
