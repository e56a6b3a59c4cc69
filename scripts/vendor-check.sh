#!/usr/bin/env bash
# vendor-check.sh: mailsrv builds offline from vendored crates (README, "Packaging").
#
#  1. `cargo vendor --locked` into a temp dir (from the local cargo cache: --offline);
#  2. a copy of the source tree (the files git knows, tracked or new; no target/) gets a
#     .cargo/config.toml that replaces crates.io with that directory;
#  3. `cargo build --offline --frozen` of the copy with an empty CARGO_HOME (no registry
#     cache, no git checkouts), then the CLI it built must run.
# CARGO_TARGET_DIR is the temp dir's own, so nothing is shared with the tree's builds.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
t0=$(date +%s%N)
ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }

$CARGO vendor --offline --locked --versioned-dirs "$work/vendor" >/dev/null 2>"$work/vendor.log" ||
    { cat "$work/vendor.log"; exit 1; }
echo "vendor-check: $(ls "$work/vendor" | wc -l) crates vendored in $(ms) ms"

mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    xargs -0 cp --parents -t "$work/src"
mkdir "$work/src/.cargo"
cat >"$work/src/.cargo/config.toml" <<EOF
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "$work/vendor"
EOF

mkdir "$work/cargo-home"
(cd "$work/src" && CARGO_HOME=$work/cargo-home CARGO_TARGET_DIR=$work/target \
    $CARGO build --offline --frozen >"$work/build.log" 2>&1) ||
    { tail -30 "$work/build.log"; echo "vendor-check FAILED: the offline build failed"; exit 1; }
if [ -n "$(ls -A "$work/cargo-home/registry" 2>/dev/null)" ]; then
    echo "vendor-check FAILED: the build used a crate registry"; exit 1
fi
"$work/target/debug/mailsrv" version
test -f "$work/target/debug/libmailsrv.so"
echo "vendor-check: offline build from the vendored crates in $(ms) ms: passed"
