/**
 * `make demo-corrupt`: overwrites one blob in the running demo's secondary bucket and asks for it
 * to be verified again now (as `kubectl geo reverify` would), so you can watch the operator report
 * the checksum mismatch and then copy the object again.
 */
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import pg from "pg";
import { requestReverification } from "../../src/registry/reverification.ts";

const dir = process.env.GEO_DEMO_DIR ?? join(tmpdir(), `geo-operator-demo-${process.getuid?.() ?? 0}`);
let demo: { s3: { secondary: { endpoint: string; region: string; bucket: string; accessKeyId: string; secretAccessKey: string } }; mainDb: string; trackingDb: string };
try {
  demo = JSON.parse(readFileSync(join(dir, "demo.json"), "utf8"));
} catch {
  console.error(`no running demo found in ${dir}: start one with 'make demo' first`);
  process.exit(3);
}
const main = new pg.Client({ connectionString: demo.mainDb });
const tracking = new pg.Client({ connectionString: demo.trackingDb });
await main.connect();
await tracking.connect();
const { rows } = await main.query<{ id: string; file_name: string }>(`SELECT id, file_name FROM cool_widgets ORDER BY random() LIMIT 1`);
const row = rows[0]!;
const s = demo.s3.secondary;
const s3 = new S3Client({ endpoint: s.endpoint, region: s.region, forcePathStyle: true, credentials: s });
const key = `cool_widgets/${row.id}/${row.file_name}`;
await s3.send(new PutObjectCommand({ Bucket: s.bucket, Key: key, Body: Buffer.from("this is not the primary's content") }));
await requestReverification(tracking, { name: "cool_widget", statesLayout: "keyed-by-model-id", source: { table: "cool_widgets" }, deletionPolicy: "Retain" }, [Number(row.id)]);
console.log(`corrupted ${s.bucket}/${key} on tokyo (cool_widget ${row.id}) and marked it for verification.
Watch: kubectl get geosites -n geo-demo -w   (VERIFIED drops below 100%, the row resyncs after its backoff, then 100% again)`);
s3.destroy();
await main.end();
await tracking.end();
