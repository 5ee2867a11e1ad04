/**
 * Authorization by the cluster's own RBAC: every request's user, groups and extra are sent to the
 * API server as a SubjectAccessReview, as aggregated API servers do (metrics-server, the
 * apiserver library's delegating authorizer). Decisions are cached briefly so a paged list does
 * not cost a review per page.
 */
import type { AuthorizationV1Api } from "@kubernetes/client-node";
import type { UserInfo } from "./front-proxy.ts";
import { REGISTRY_API_GROUP, REGISTRY_API_VERSION } from "./group.ts";

export interface ResourceRequest {
  verb: "get" | "list" | "create";
  resource: string;
  namespace: string;
  name?: string;
}

export interface Decision {
  allowed: boolean;
  reason: string;
}

export class Authorizer {
  private readonly cache = new Map<string, { decision: Decision; expires: number }>();

  private readonly api: AuthorizationV1Api;
  private readonly ttlMs: number;

  constructor(api: AuthorizationV1Api, ttlMs = 10_000) {
    this.api = api;
    this.ttlMs = ttlMs;
  }

  async authorize(user: UserInfo, request: ResourceRequest): Promise<Decision> {
    const key = JSON.stringify([user.username, [...user.groups].sort(), user.extra, request]);
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.expires > now) return hit.decision;
    const review = await this.api.createSubjectAccessReview({
      body: {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user: user.username,
          groups: user.groups,
          extra: user.extra,
          resourceAttributes: {
            group: REGISTRY_API_GROUP,
            version: REGISTRY_API_VERSION,
            resource: request.resource,
            verb: request.verb,
            namespace: request.namespace,
            ...(request.name ? { name: request.name } : {}),
          },
        },
      },
    });
    const decision = { allowed: review.status?.allowed === true && review.status.denied !== true, reason: review.status?.reason ?? "" };
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, { decision, expires: now + this.ttlMs });
    return decision;
  }
}
