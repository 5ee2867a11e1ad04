# syntax=docker/dockerfile:1.7
# geo-operator image: the operator (`geo-operator manager`) and its workers (`geo-operator worker
# ...`, started by the Jobs the operator creates with command ["geo-operator"]).
#
# Layout (hack/check-image.sh rebuilds exactly this in a temp dir and runs it):
#   /app/package.json  /app/bin/geo-operator.js  /app/dist/{cmd,src}  /app/node_modules (production)
#   /usr/local/bin/geo-operator -> wrapper that runs node /app/bin/geo-operator.js
#
# Pin the bases by digest in release builds: --build-arg NODE_IMAGE=node:24-bookworm-slim@sha256:...
# Without a container registry, hack/node/image.sh passes local images made from Debian packages
# and the npm registry (hack/node/base-image.sh) through these two build args.
ARG NODE_IMAGE=node:24-bookworm-slim
# The final stage's OS: the Debian release NODE_IMAGE is built on. Only the node binary is copied
# over; npm, yarn and corepack (about 40 MB) stay behind in the build stages.
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the `node` dev dependency would download a second Node; the image has one.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY cmd ./cmd
COPY src ./src
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY hack/image/prune-node-modules.sh /usr/local/bin/
# What no production code loads goes (type declarations, source maps, docs, packages' tests, other
# platforms' prebuilds): 106 MB -> about 40 MB, most of it @kubernetes/client-node's generated API.
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts \
 && prune-node-modules.sh node_modules \
 && npm cache clean --force

FROM ${NODE_IMAGE} AS node

FROM ${RUNTIME_IMAGE}
# git: the repository strategy mirrors with it. tini: PID 1 that forwards signals and reaps the
# git processes workers start. ca-certificates: TLS to S3 endpoints and git servers.
# Versions are not pinned (DL3008 in .hadolint.yaml): the base image tag/digest pins the release.
# Debian's git depends on perl (about 50 MB) for commands the workers never run (svn, send-email,
# instaweb, ...); clone, fetch, fsck and rev-parse are C, so perl goes again in the same layer, as
# do git's servers and tools a client never runs (2 MB each: daemon, shell, http-backend, ...).
# SC2046: the unquoted $(dpkg-query ...) is meant to split into package names.
# hadolint ignore=SC2046
RUN apt-get update \
 && apt-get install -y --no-install-recommends git tini ca-certificates \
 && dpkg --remove --force-depends $(dpkg-query -W -f '${Package}\n' perl 'perl-modules-*' 'libperl5*' liberror-perl) \
 && for p in git-daemon git-shell git-http-backend git-http-fetch git-http-push git-imap-send scalar; do \
      rm -f "/usr/lib/git-core/$p" "/usr/bin/$p"; done \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/cache/apt/*.bin /usr/share/doc /usr/share/man
COPY --from=node /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
# `geo-operator` on PATH: worker Jobs use it as their command, which replaces ENTRYPOINT, so the
# wrapper hands PID 1 to tini itself when it is started as PID 1.
# BEGIN geo-operator wrapper (hack/check-image.sh runs this script too)
RUN printf '%s\n' \
      '#!/bin/sh' \
      'if [ "$$" = 1 ] && [ -x /usr/bin/tini ]; then exec /usr/bin/tini -- node /app/bin/geo-operator.js "$@"; fi' \
      'exec node /app/bin/geo-operator.js "$@"' \
      > /usr/local/bin/geo-operator \
 && chmod 0755 /usr/local/bin/geo-operator
# END geo-operator wrapper
# 65532: the "nonroot" uid the Deployment and the worker Jobs run as (runAsNonRoot needs a number).
USER 65532:65532
ENV NODE_ENV=production \
    HOME=/tmp
LABEL org.opencontainers.image.title="geo-operator" \
      org.opencontainers.image.description="Replicates and verifies application data from a primary site to secondary sites" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/bin/tini", "--", "geo-operator"]
CMD ["--help"]
