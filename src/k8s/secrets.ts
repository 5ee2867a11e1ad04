/**
 * Which Secrets the operator reads and hands to worker pods: only those that opt in with the label
 * `geo.replication.dev/credentials: "true"` (LABELS.credentials). Whoever writes a GeoSite chooses
 * both where credentials go (git.baseURL, endpoints) and which Secret they come from; without the
 * label any Secret in the namespace with the right keys could be sent to a host of their choosing.
 *
 * RBAC cannot grant `get` by label, so the label is enforced here, in code; a namespace-scoped
 * install (chart value rbac.namespaced) confines the operator by RBAC as well.
 */
import { ApiException, type CoreV1Api, type V1Container, type V1PodSpec, type V1Secret } from "@kubernetes/client-node";
import { LABELS } from "../api/v1alpha1/resources.ts";

/** The command that opts a Secret in, for messages. */
export function optInCommand(namespace: string, secret: string): string {
  return `kubectl label secret ${secret} -n ${namespace} ${LABELS.credentials}=true`;
}

/** A Secret the operator was asked to use that does not carry the opt-in label. */
export class SecretNotOptedInError extends Error {
  override readonly name = "SecretNotOptedInError";
  readonly namespace: string;
  readonly secret: string;

  constructor(namespace: string, secret: string) {
    super(
      `Secret ${namespace}/${secret} is not labelled ${LABELS.credentials}=true, so geo-operator neither reads it nor passes it to workers; ` +
        `if it is meant for geo-operator, run: ${optInCommand(namespace, secret)}`,
    );
    this.namespace = namespace;
    this.secret = secret;
  }
}

export function isOptedIn(secret: V1Secret): boolean {
  return secret.metadata?.labels?.[LABELS.credentials] === "true";
}

/**
 * Reads a Secret the operator may use. Returns null when there is no such Secret; throws
 * SecretNotOptedInError when it exists without the label (its data is dropped unread).
 */
export async function readCredentialsSecret(core: CoreV1Api, namespace: string, name: string): Promise<V1Secret | null> {
  let secret: V1Secret;
  try {
    secret = await core.readNamespacedSecret({ name, namespace });
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return null;
    throw err;
  }
  if (!isOptedIn(secret)) throw new SecretNotOptedInError(namespace, name);
  return secret;
}

export interface SecretReference {
  name: string;
  /** True only when every reference to this Secret is optional (the pod starts without it). */
  optional: boolean;
}

/**
 * The Secrets whose data a pod's containers receive: env `secretKeyRef`, `envFrom.secretRef`,
 * `secret` volumes and `projected` volumes' secret sources, in every container (init and
 * ephemeral too). Left out: imagePullSecrets and volume plugins' own credentials (e.g. CSI
 * nodePublishSecretRef), which the kubelet uses without showing them to the containers.
 */
export function secretsReferencedBy(pod: V1PodSpec): SecretReference[] {
  const refs = new Map<string, boolean>();
  const add = (name: string | undefined, optional: boolean | undefined) => {
    if (!name) return;
    refs.set(name, (refs.get(name) ?? true) && optional === true);
  };
  const containers: Pick<V1Container, "env" | "envFrom">[] = [...(pod.initContainers ?? []), ...pod.containers, ...(pod.ephemeralContainers ?? [])];
  for (const c of containers) {
    for (const e of c.env ?? []) add(e.valueFrom?.secretKeyRef?.name, e.valueFrom?.secretKeyRef?.optional);
    for (const e of c.envFrom ?? []) add(e.secretRef?.name, e.secretRef?.optional);
  }
  for (const v of pod.volumes ?? []) {
    add(v.secret?.secretName, v.secret?.optional);
    for (const s of v.projected?.sources ?? []) add(s.secret?.name, s.secret?.optional);
  }
  return [...refs].map(([name, optional]) => ({ name, optional })).sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Checks, before a pod spec is handed to Kubernetes, that every Secret it references is opted in:
 * the kubelet resolves references to any Secret in the namespace, labelled or not. Throws
 * SecretNotOptedInError for the first that is not, and an Error for a required Secret that does
 * not exist: its pod would wait (CreateContainerConfigError) until the Job's deadline and pick the
 * Secret up whenever it appears, labelled or not. A missing optional Secret is fine: the pod
 * starts at once without it.
 */
export async function assertPodSecretsOptedIn(core: CoreV1Api, namespace: string, pod: V1PodSpec): Promise<void> {
  for (const ref of secretsReferencedBy(pod)) {
    const secret = await readCredentialsSecret(core, namespace, ref.name);
    if (!secret && !ref.optional) throw new Error(`Secret ${namespace}/${ref.name} not found`);
  }
}
