#!/bin/sh
# prune-node-modules.sh DIR — removes from a production node_modules what no code loads at run
# time: type declarations, source maps, TypeScript sources, Markdown, packages' own tests, docs and
# examples, and native prebuilds for other platforms than this one. The Dockerfile's deps stage
# runs it (106 MB -> about 40 MB); hack/check-image.sh runs it on its copy of the layout too, so
# the CLI is checked against the pruned tree. POSIX sh: it runs in the build image.
set -eu
dir=${1:?usage: prune-node-modules.sh NODE_MODULES_DIR}
find "$dir" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \
  -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.md' -o -name '*.markdown' \) -delete
find "$dir" -type d \( -name test -o -name tests -o -name __tests__ -o -name docs -o -name dist-types \
  -o -name example -o -name examples \) -prune -exec rm -rf {} +
platform="$(node -p 'process.platform + "-" + process.arch')"
find "$dir" -type d -name prebuilds | while read -r prebuilds; do
  find "$prebuilds" -mindepth 1 -maxdepth 1 -type d ! -name "$platform" -exec rm -rf {} +
done
