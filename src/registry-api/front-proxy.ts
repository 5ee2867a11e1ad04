/**
 * Who is calling: the API server authenticates the user and forwards the request with its
 * front-proxy client certificate and X-Remote-User / X-Remote-Group / X-Remote-Extra-* headers
 * (the request-header authentication of Kubernetes' aggregation layer). The settings come from the
 * ConfigMap kube-system/extension-apiserver-authentication, which the API server publishes; a
 * request without a client certificate signed by that CA, or from a certificate whose common name
 * is not allowed, is not authenticated and gets nothing.
 */
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import type { CoreV1Api } from "@kubernetes/client-node";

export const AUTHENTICATION_CONFIGMAP = { namespace: "kube-system", name: "extension-apiserver-authentication" } as const;

export interface RequestHeaderSettings {
  /** PEM bundle of the CA that signs the front-proxy client certificate. */
  clientCA: string;
  /** Common names allowed to assert identities; empty: any certificate the CA signed. */
  allowedNames: string[];
  usernameHeaders: string[];
  groupHeaders: string[];
  extraHeaderPrefixes: string[];
}

export interface UserInfo {
  username: string;
  groups: string[];
  extra: Record<string, string[]>;
}

const jsonList = (value: string | undefined, fallback: string[]): string[] => {
  if (value === undefined || value === "") return fallback;
  const parsed: unknown = JSON.parse(value);
  return Array.isArray(parsed) ? parsed.map(String) : fallback;
};

/** Reads the request-header settings the API server published; throws when it has none. */
export async function loadRequestHeaderSettings(core: CoreV1Api): Promise<RequestHeaderSettings> {
  const cm = await core.readNamespacedConfigMap(AUTHENTICATION_CONFIGMAP);
  const data = cm.data ?? {};
  const clientCA = data["requestheader-client-ca-file"];
  if (!clientCA) {
    throw new Error(
      `ConfigMap ${AUTHENTICATION_CONFIGMAP.namespace}/${AUTHENTICATION_CONFIGMAP.name} has no requestheader-client-ca-file: ` +
        "start kube-apiserver with --requestheader-client-ca-file and --proxy-client-cert-file (the aggregation layer)",
    );
  }
  return {
    clientCA,
    allowedNames: jsonList(data["requestheader-allowed-names"], []),
    usernameHeaders: jsonList(data["requestheader-username-headers"], ["X-Remote-User"]),
    groupHeaders: jsonList(data["requestheader-group-headers"], ["X-Remote-Group"]),
    extraHeaderPrefixes: jsonList(data["requestheader-extra-headers-prefix"], ["X-Remote-Extra-"]),
  };
}

export class Unauthenticated extends Error {}

/**
 * The user the API server vouches for, or Unauthenticated. `socket.authorized` is set by TLS when
 * the client certificate chains to the request-header CA the server context was built with.
 */
export function authenticate(req: IncomingMessage, settings: RequestHeaderSettings): UserInfo {
  const socket = req.socket as TLSSocket;
  if (!socket.authorized) throw new Unauthenticated("no client certificate signed by the front-proxy CA");
  const cn = socket.getPeerCertificate()?.subject?.CN;
  const cnText = Array.isArray(cn) ? cn[0] : cn;
  if (settings.allowedNames.length && (!cnText || !settings.allowedNames.includes(cnText))) {
    throw new Unauthenticated(`client certificate CN ${cnText ?? "(none)"} is not among the allowed front-proxy names`);
  }
  const values = (name: string): string[] => req.headersDistinct[name.toLowerCase()] ?? [];
  const username = settings.usernameHeaders.map((h) => values(h)[0]).find((v) => v);
  if (!username) throw new Unauthenticated("the front proxy named no user");
  const groups = settings.groupHeaders.flatMap(values);
  const extra: Record<string, string[]> = {};
  for (const [header, vals] of Object.entries(req.headersDistinct)) {
    const prefix = settings.extraHeaderPrefixes.find((p) => header.startsWith(p.toLowerCase()));
    if (!prefix || !vals) continue;
    const key = decodeURIComponent(header.slice(prefix.length));
    (extra[key] ??= []).push(...vals);
  }
  return { username, groups, extra };
}
