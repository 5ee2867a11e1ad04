/**
 * A smart-HTTP git server on 127.0.0.1, in-process: node:http in front of `git http-backend` run
 * as a CGI per request, with optional HTTP basic auth. Tests use it to check that credentials
 * reach the primary, that wrong ones fail, and that they never leak. Nothing to reap but the
 * per-request http-backend processes, which `stop()` kills.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface GitHttpServerOptions {
  /** Directory of bare repositories; `<baseURL>/<path>` serves `<root>/<path>`. */
  root: string;
  /** With both set, every request needs these basic-auth credentials (else 401). */
  username?: string;
  password?: string;
}

export interface GitHttpServer {
  baseURL: string;
  /** Every request seen: method, path and the Authorization header's user, for assertions. */
  requests: Array<{ method: string; path: string; user?: string; status: number }>;
  stop(): Promise<void>;
}

export async function startGitHttpServer(opts: GitHttpServerOptions): Promise<GitHttpServer> {
  const children = new Set<ChildProcess>();
  const requests: GitHttpServer["requests"] = [];

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const user = basicAuthUser(req, opts);
    const record = { method: req.method ?? "GET", path: url.pathname, user: user ?? undefined, status: 0 };
    requests.push(record);
    if (opts.username !== undefined && user === null) {
      record.status = 401;
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="geo-test"', "Content-Type": "text/plain" });
      res.end("authentication required\n");
      return;
    }
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: opts.root,
      GIT_HTTP_EXPORT_ALL: "1",
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.replace(/^\?/, ""),
      REQUEST_METHOD: req.method ?? "GET",
      CONTENT_TYPE: req.headers["content-type"] ?? "",
      REMOTE_ADDR: req.socket.remoteAddress ?? "127.0.0.1",
      SERVER_PROTOCOL: "HTTP/1.1",
      GATEWAY_INTERFACE: "CGI/1.1",
    };
    if (user) env.REMOTE_USER = user;
    if (req.headers["content-length"]) env.CONTENT_LENGTH = req.headers["content-length"];
    if (req.headers["content-encoding"]) env.HTTP_CONTENT_ENCODING = req.headers["content-encoding"];
    const protocol = req.headers["git-protocol"];
    if (typeof protocol === "string") env.GIT_PROTOCOL = protocol;

    const child = spawn("git", ["http-backend"], { env, stdio: ["pipe", "pipe", "pipe"] });
    children.add(child);
    child.once("close", () => children.delete(child));
    req.pipe(child.stdin);
    child.stdin.on("error", () => undefined);
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    pipeCgiResponse(child, res, (status) => (record.status = status), () => stderr);
  };

  const server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://127.0.0.1:${port}`,
    requests,
    async stop() {
      for (const child of children) child.kill("SIGKILL");
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The user when the request carries the expected credentials (or none are required), else null. */
function basicAuthUser(req: IncomingMessage, opts: GitHttpServerOptions): string | null {
  const header = req.headers.authorization;
  const match = header?.match(/^Basic\s+(\S+)$/i);
  const decoded = match ? Buffer.from(match[1]!, "base64").toString("utf8") : undefined;
  const colon = decoded?.indexOf(":") ?? -1;
  const user = decoded !== undefined && colon >= 0 ? decoded.slice(0, colon) : undefined;
  const password = decoded !== undefined && colon >= 0 ? decoded.slice(colon + 1) : undefined;
  if (opts.username === undefined) return user ?? "";
  return user === opts.username && password === opts.password ? user : null;
}

/** Reads the CGI header block from the child's stdout, answers with it, then streams the body. */
function pipeCgiResponse(child: ChildProcess, res: ServerResponse, onStatus: (status: number) => void, stderr: () => string): void {
  let head = Buffer.alloc(0);
  let headersDone = false;
  const onData = (chunk: Buffer): void => {
    if (headersDone) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const crlf = head.indexOf("\r\n\r\n");
    const lf = head.indexOf("\n\n");
    const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf : lf;
    if (end < 0) return;
    const separatorLength = end === crlf ? 4 : 2;
    headersDone = true;
    let status = 200;
    const headers: Record<string, string> = {};
    for (const line of head.subarray(0, end).toString("latin1").split(/\r?\n/)) {
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === "status") status = Number.parseInt(value, 10) || 500;
      else headers[name] = value;
    }
    onStatus(status);
    res.writeHead(status, headers);
    const rest = head.subarray(end + separatorLength);
    if (rest.length > 0) res.write(rest);
  };
  child.stdout!.on("data", onData);
  child.once("close", (code) => {
    if (!headersDone) {
      onStatus(500);
      res.writeHead(500, { "Content-Type": "text/plain" });
      res.end(`git http-backend exited ${code}: ${stderr()}`);
      return;
    }
    res.end();
  });
}
