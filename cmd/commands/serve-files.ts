/**
 * `geo-operator serve-files`: the primary's retrieval server for blobs kept on a volume
 * (src/strategies/blob/files/server.ts), for secondaries that cannot mount that volume.
 *
 * TLS: --tls-cert-file/--tls-key-file (or GEO_FILES_TLS_CERT_FILE/_KEY_FILE), else the PEM itself
 * in GEO_FILES_TLS_CERT/GEO_FILES_TLS_KEY (how the operator's Deployment passes them). Site keys:
 * GEO_FILES_SITE_KEY_<site> env vars and/or the files of --keys-dir (which wins for a site in both).
 */
import { Option, type Command } from "commander";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { serveFiles } from "../../src/strategies/blob/files/server.ts";
import { DEFAULT_MAX_SKEW_SECONDS } from "../../src/strategies/blob/files/signing.ts";
import { FILES_TLS_CERT_ENV, FILES_TLS_KEY_ENV, loadSiteKeys, SITE_KEY_ENV_PREFIX, siteKeysFromEnv } from "../../src/strategies/blob/files/site-keys.ts";
import { createLogger } from "../../src/util/log.ts";

interface ServeFilesCliOptions {
  root: string;
  host: string;
  port: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  keysDir?: string;
  keysReload: string;
  maxSkew: string;
  logLevel: string;
}

export function registerServeFilesCommand(program: Command): void {
  program
    .command("serve-files")
    .description("serve this (primary) site's blob files over HTTPS to authenticated secondary sites")
    .requiredOption("--root <dir>", "directory whose files are served, read-only")
    .option("--host <host>", "address to listen on", "0.0.0.0")
    .option("--port <port>", "port to listen on (0: any free port)", "8443")
    .option("--tls-cert-file <file>", "PEM certificate chain (env GEO_FILES_TLS_CERT_FILE)", process.env.GEO_FILES_TLS_CERT_FILE)
    .option("--tls-key-file <file>", "PEM private key (env GEO_FILES_TLS_KEY_FILE)", process.env.GEO_FILES_TLS_KEY_FILE)
    .option("--keys-dir <dir>", "one file per secondary site, named after it, holding its secret key (env GEO_FILES_KEYS_DIR); adds to GEO_FILES_SITE_KEY_<site> env vars", process.env.GEO_FILES_KEYS_DIR)
    .option("--keys-reload <seconds>", "re-read --keys-dir this often, so a rotated Secret takes effect (0: never)", "60")
    .option("--max-skew <seconds>", "refuse signatures that expire further ahead than this", String(DEFAULT_MAX_SKEW_SECONDS))
    .addOption(new Option("--log-level <level>", "log level").choices(["debug", "info", "warn", "error"]).default("info"))
    .action(async (opts: ServeFilesCliOptions) => {
      const log = createLogger({ name: "geo-operator", level: opts.logLevel });
      const env = process.env;
      const certPem = env[FILES_TLS_CERT_ENV];
      const keyPem = env[FILES_TLS_KEY_ENV];
      const missing = [
        ["--tls-cert-file", opts.tlsCertFile || certPem],
        ["--tls-key-file", opts.tlsKeyFile || keyPem],
      ].filter(([, v]) => !v).map(([flag]) => flag);
      if (missing.length > 0) {
        process.stderr.write(`geo-operator serve-files: ${missing.join(", ")} required (or the environment variables)\n`);
        process.exitCode = 2;
        return;
      }
      const keysDir = opts.keysDir;
      let server: Awaited<ReturnType<typeof serveFiles>>;
      let siteKeys: Map<string, string>;
      let envKeys: Map<string, string>;
      try {
        envKeys = siteKeysFromEnv(env);
        siteKeys = new Map(envKeys);
        if (keysDir) {
          const loaded = await loadSiteKeys(keysDir);
          for (const [site, key] of loaded.keys) siteKeys.set(site, key);
          if (loaded.ignored.length > 0) log.warn({ ignored: loaded.ignored }, "entries in the keys directory that are not site names");
        } else if (siteKeys.size === 0) {
          throw new Error(`no site keys: give --keys-dir, or ${SITE_KEY_ENV_PREFIX}<site> environment variables`);
        }
        server = await serveFiles({
          root: resolve(opts.root),
          host: opts.host,
          port: Number(opts.port),
          tls: { cert: opts.tlsCertFile ? readFileSync(opts.tlsCertFile) : certPem!, key: opts.tlsKeyFile ? readFileSync(opts.tlsKeyFile) : keyPem! },
          siteKeys,
          log,
          maxSkewSeconds: Number(opts.maxSkew),
        });
      } catch (err) {
        process.stderr.write(`geo-operator serve-files: ${(err as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      // "address", not "url": the logger redacts fields named url (connection strings).
      log.info({ address: server.url, root: resolve(opts.root), sites: [...siteKeys.keys()] }, "serving files");

      const reloadSeconds = Number(opts.keysReload);
      const reload =
        keysDir && reloadSeconds > 0
          ? setInterval(() => {
              loadSiteKeys(keysDir).then(
                ({ keys }) => {
                  // Replaced in place: the server reads this map on every request.
                  siteKeys.clear();
                  for (const [site, key] of envKeys) siteKeys.set(site, key);
                  for (const [site, key] of keys) siteKeys.set(site, key);
                },
                (err: unknown) => log.error({ err: (err as Error).message }, "cannot reload site keys; keeping the previous ones"),
              );
            }, reloadSeconds * 1000)
          : undefined;
      reload?.unref();

      const shutdown = (signal: string) => {
        log.info({ signal }, "shutting down");
        clearInterval(reload);
        void server.close().then(() => log.info("stopped"));
      };
      process.once("SIGTERM", () => shutdown("SIGTERM"));
      process.once("SIGINT", () => shutdown("SIGINT"));
    });
}
