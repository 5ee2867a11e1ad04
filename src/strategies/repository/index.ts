/**
 * Git mechanics of the repository strategy: addressing (paths.ts), mirroring (mirror.ts and
 * mirror-directories.ts), checksums (checksum.ts), damage (connectivity.ts), what "not found"
 * means (not-found.ts) and explaining a mismatch (ref-differences.ts). The strategy object the
 * sync and verification workers register is built on these.
 */
export {
  checksumFromShowRef,
  checksumOfRefs,
  isChecksummedRef,
  lsRemote,
  remoteChecksum,
  repositoryChecksum,
  showRef,
  ZERO_CHECKSUM,
  type RemoteRefsOptions,
} from "./checksum.ts";
export {
  GitAbortedError,
  GitCommandError,
  GitTimeoutError,
  RepositoryError,
  RepositoryPathError,
  type GitFailureCategory,
  type RepositoryFailureReason,
} from "./errors.ts";
export { connectivityProblem } from "./connectivity.ts";
export { scrubSecrets, type GitCredentials } from "./git-process.ts";
export { nestedMirrorEntries, removeMirror } from "./mirror-directories.ts";
export { meaningOfNotFound, type NotFoundMeaning } from "./not-found.ts";
export {
  DEFAULT_SYNC_TIMEOUT_MS,
  FETCH_COUNT_KEY,
  housekeeping,
  syncMirror,
  type SyncMirrorOptions,
  type SyncMirrorResult,
} from "./mirror.ts";
export {
  mirrorPath,
  primaryRepositoryURL,
  renderTemplate,
  repositoryRelativePath,
  temporaryPrefix,
  validateRelativePath,
  type RepositoryPathSource,
} from "./paths.ts";
export { describeRefDifferences, refDifferences, type RefDifference, type RefDifferences } from "./ref-differences.ts";
export { parseRefListing, type Ref, type RefListing } from "./refs.ts";
