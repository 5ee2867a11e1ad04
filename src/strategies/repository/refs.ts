/**
 * Ref listings as git prints them, parsed into one shape for the checksum and for comparing a
 * mirror with its primary.
 *
 * Two sources produce them:
 * - `git show-ref --head` on a local repository: `<oid> <refname>` (one space), HEAD first when
 *   it resolves, no peeled lines.
 * - `git ls-remote <url>` against the primary: `<oid>\t<refname>` (a tab), HEAD when it
 *   resolves, and for every annotated tag an extra peeled line `<commit oid>\t<tag>^{}` that names
 *   no ref of its own. `--symref` adds `ref: <target>\tHEAD` lines.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";

/** One ref: its full name (`HEAD`, `refs/heads/main`) and the object id it points at. */
export interface Ref {
  name: string;
  oid: string;
}

/** What a ref listing says: the refs in listing order, and where HEAD points when it says so. */
export interface RefListing {
  refs: Ref[];
  /** Target of the symbolic ref HEAD (`refs/heads/main`), from `ls-remote --symref` only. */
  headTarget?: string;
}

const OID = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

/**
 * Parses `git show-ref` or `git ls-remote [--symref]` output. Peeled `^{}` lines are skipped (they
 * repeat a tag under another oid); blank lines are ignored; anything else that is not
 * `<oid><space or tab><refname>` is an error, because a checksum over a half-understood listing
 * would silently disagree with the primary.
 */
export function parseRefListing(text: string): RefListing {
  const listing: RefListing = { refs: [] };
  for (const rawLine of text.split("\n")) {
    const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
    if (line === "") continue;
    if (line.startsWith("ref: ")) {
      const [target, name] = line.slice("ref: ".length).split("\t");
      if (name === "HEAD" && target) listing.headTarget = target;
      continue;
    }
    const separator = line.search(/[ \t]/);
    const oid = separator > 0 ? line.slice(0, separator) : "";
    const name = separator > 0 ? line.slice(separator + 1) : "";
    if (!OID.test(oid) || name === "") throw new Error(`unexpected line in a ref listing: ${JSON.stringify(line.slice(0, 200))}`);
    if (name.endsWith("^{}")) continue;
    listing.refs.push({ name, oid });
  }
  return listing;
}

/** Refs by name; a listing never names a ref twice, but if it did the last one would win. */
export function refMap(refs: readonly Ref[]): Map<string, string> {
  return new Map(refs.map((r) => [r.name, r.oid]));
}

/**
 * The refs of a local bare repository read straight from the files ref backend (HEAD, loose refs
 * under refs/, packed-refs), without starting git. It exists for one decision, "does the mirror
 * already have what the primary advertises?", which is asked of every mirror on every resync:
 * one process fewer per repository is most of the cost of a resync that finds nothing new.
 *
 * Returns undefined whenever the layout is not the plain one this reader understands (a reftable
 * repository, a symbolic ref other than HEAD, a line it cannot parse); the caller then asks git.
 * Unlike `git show-ref` it does not check that the objects exist, so it must not be used for
 * checksums: verification goes through git.
 */
export async function readLocalRefs(gitDir: string): Promise<RefListing | undefined> {
  try {
    if (await exists(join(gitDir, "reftable"))) return undefined;
    const refs = new Map<string, string>();
    const packed = await readFile(join(gitDir, "packed-refs"), "utf8").catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return "";
      throw err;
    });
    for (const line of packed.split("\n")) {
      if (line === "" || line.startsWith("#") || line.startsWith("^")) continue;
      const [oid, name, extra] = line.split(" ");
      if (!oid || !OID.test(oid) || !name || extra !== undefined) return undefined;
      refs.set(name, oid);
    }
    for (const entry of await readdir(join(gitDir, "refs"), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || entry.name.endsWith(".lock")) continue;
      const path = join(entry.parentPath, entry.name);
      const content = (await readFile(path, "utf8")).trim();
      if (!OID.test(content)) return undefined;
      refs.set(relative(gitDir, path).split(sep).join("/"), content);
    }
    const head = (await readFile(join(gitDir, "HEAD"), "utf8")).trim();
    const listing: RefListing = { refs: [] };
    let headOid: string | undefined;
    if (head.startsWith("ref: ")) {
      listing.headTarget = head.slice("ref: ".length);
      headOid = refs.get(listing.headTarget);
    } else if (OID.test(head)) {
      headOid = head;
    } else {
      return undefined;
    }
    if (headOid !== undefined) listing.refs.push({ name: "HEAD", oid: headOid });
    for (const [name, oid] of refs) listing.refs.push({ name, oid });
    return listing;
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
