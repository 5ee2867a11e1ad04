/**
 * The security contexts every Pod the operator creates runs with: the restricted Pod Security
 * profile (non-root, no privilege escalation, all capabilities dropped, RuntimeDefault seccomp)
 * and a read-only root filesystem. Worker Jobs and site servers share them.
 */
import type { V1PodSecurityContext, V1SecurityContext } from "@kubernetes/client-node";

/** The image's non-root user (distroless "nonroot"). */
const NONROOT = 65532;

export function restrictedPodSecurityContext(): V1PodSecurityContext {
  return { runAsNonRoot: true, runAsUser: NONROOT, runAsGroup: NONROOT, fsGroup: NONROOT, seccompProfile: { type: "RuntimeDefault" } };
}

export function restrictedContainerSecurityContext(): V1SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  };
}
