/** A ReplicableType's runtime config with its strategy's part (settings, `_states` layout) filled in. */
import { buildTypeRuntimeConfig, type TypeRuntimeConfig } from "../api/v1alpha1/runtime.ts";
import type { ReplicableTypeSpec } from "../api/v1alpha1/types.generated.ts";
import { strategyFor } from "./catalog.ts";

/**
 * The plain, defaulted settings of a ReplicableType spec. Throws for a strategy no definition
 * claims, or for a spec without the fields its strategy needs (both refused by the CRD).
 */
export function typeRuntimeConfig(spec: ReplicableTypeSpec): TypeRuntimeConfig {
  const strategy = strategyFor(spec.strategy);
  const settings = strategy.parseSettings(spec);
  return buildTypeRuntimeConfig(spec, { statesLayout: strategy.statesLayout, settings, modelColumns: strategy.modelColumns(settings) });
}
