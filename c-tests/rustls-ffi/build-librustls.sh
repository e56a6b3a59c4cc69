#!/usr/bin/env bash
# build-librustls.sh OUT [PROFILE] -- the rustls-ffi C library for the rustls-ffi C test, offline.
#
# Builds the rustls-ffi crate that mailsrv pins (Cargo.lock) as a C static library with
# `cargo rustc -p rustls-ffi --crate-type staticlib`, in mailsrv's own target directory, with
# mailsrv's lock file and feature set (ring, no aws-lc-rs). Every dependency (rustls, ring,
# webpki, ...) is the very artifact the mailsrv build already compiled, so only rustls-ffi
# itself is compiled (about 5 s on 2 cores after `cargo build --features test-hooks`, against
# 60-80 s for a standalone build of a copy of the crate). No network: --offline.
#
# Writes OUT/lib/librustls.a (the static library), OUT/include/rustls.h (the header shipped
# in that crate, i.e. what DEP_RUSTLS_FFI_INCLUDE points at) and OUT/native-libs (the system
# libraries to link after librustls.a). PROFILE: dev (default) or release.
set -euo pipefail
out=${1:?usage: build-librustls.sh OUT [PROFILE]}
profile=${2:-dev}
cargo=${CARGO:-cargo}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$here"

t0=$(date +%s%N)
json=$(mktemp) log=$(mktemp)
trap 'rm -f "$json" "$log"' EXIT
"$cargo" rustc -p rustls-ffi --offline --profile "$profile" --crate-type staticlib \
    --message-format json-render-diagnostics -- --print native-static-libs >"$json" 2> >(tee "$log" >&2)
t1=$(date +%s%N)

python3 - "$json" "$out" "$log" <<'PY'
import json, os, re, shutil, sys
path, out = sys.argv[1], sys.argv[2]
lib = src = None
native = None
for line in open(path):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "rustls_ffi":
        lib = next((f for f in m["filenames"] if f.endswith(".a")), lib)
        src = os.path.dirname(m["manifest_path"])
for line in open(sys.argv[3]):
    hit = re.search(r"native-static-libs: (.*)", line)
    if hit:
        native = hit.group(1).strip()
if not lib or not src:
    sys.exit("build-librustls.sh: cargo reported no rustls_ffi static library")
os.makedirs(os.path.join(out, "lib"), exist_ok=True)
os.makedirs(os.path.join(out, "include"), exist_ok=True)
shutil.copyfile(lib, os.path.join(out, "lib", "librustls.a"))
shutil.copyfile(os.path.join(src, "src", "rustls.h"), os.path.join(out, "include", "rustls.h"))
# A fresh (cached) build prints no native-static-libs: keep the last known list.
nl = os.path.join(out, "native-libs")
if native is not None or not os.path.exists(nl):
    with open(nl, "w") as f:
        f.write((native or "-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc") + "\n")
print(f"librustls: {lib} (crate {src})")
PY
echo "librustls: cargo rustc took $(( (t1 - t0) / 1000000 )) ms"
