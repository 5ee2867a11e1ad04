/**
 * Both CustomResourceDefinitions as served: the strategy-independent schemas of src/api with every
 * strategy's fragment merged in. `geo-operator crds`, `npm run generate` and the staleness test
 * all read the kinds from here (the latter two render them with src/api/v1alpha1/render.ts, which
 * needs dev dependencies and so is not imported here).
 */
import { assembleKinds, customResourceDefinition, type KindDefinition } from "../api/v1alpha1/crds.ts";
import { STRATEGIES } from "./catalog.ts";

export const KINDS: readonly KindDefinition[] = assembleKinds(STRATEGIES.map((s) => s.crd));

/** The CustomResourceDefinition objects, GeoSite first. */
export function customResourceDefinitions(): Record<string, unknown>[] {
  return KINDS.map(customResourceDefinition);
}

