#!/usr/bin/env bash
# py-install-check.sh: `pip install bindings/python` into a fresh venv, offline
# (--no-index --no-build-isolation: the build backend comes from the Python installation),
# then, from outside the source tree, the installed package must load exactly the library
# named by MAILSRV_LIBRARY, and without it must not fall back to any build tree. With the
# testbed in the environment (MAILSRV_TEST_NS, MAILSRV_TEST_ANCHOR) it also runs a discovery.
#
#   MAILSRV_LIBRARY=/path/libmailsrv.so.0.1 scripts/py-install-check.sh
#
# The Python used is the first of $PYTHON, python3, /usr/bin/python3 that has venv and can
# build a wheel offline (setuptools >= 70.1, or setuptools with the wheel package).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MAILSRV_LIBRARY:?set MAILSRV_LIBRARY to the libmailsrv shared library to load}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 failed=0
check() { if "$@"; then pass=$((pass + 1)); else echo "py-install-check FAILED: $*"; failed=$((failed + 1)); fi; }

py=
for cand in "${PYTHON:-python3}" python3 /usr/bin/python3; do
    command -v "$cand" >/dev/null || continue
    if "$cand" - >/dev/null 2>&1 <<'EOF'
import ensurepip, venv, setuptools
v = tuple(int(x) for x in setuptools.__version__.split(".")[:2])
if v < (70, 1):
    import wheel  # setuptools before 70.1 builds wheels with the wheel package
EOF
    then py=$cand; break; fi
done
if [ -z "$py" ]; then
    echo "py-install-check FAILED: no Python with venv, setuptools and wheel (Debian: python3-venv python3-setuptools python3-wheel)"
    exit 1
fi
echo "py-install-check: $("$py" --version 2>&1) ($(command -v "$py"))"

# The venv sees the installation's setuptools and wheel (the offline build backend).
"$py" -m venv --system-site-packages "$work/venv"
vpy=$work/venv/bin/python
# Build from a copy, so that pip's in-tree build leaves nothing in the source tree.
cp -r bindings/python "$work/src"
rm -rf "$work/src/build" "$work/src"/*.egg-info
t0=$(date +%s%N)
check "$vpy" -m pip install --no-index --no-build-isolation --no-deps -q "$work/src"
echo "py-install-check: pip install in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

cat >"$work/use.py" <<'EOF'
import os, sys, sysconfig
import mailsrv
from mailsrv import _ffi

venv = sys.prefix
assert mailsrv.__file__.startswith(sysconfig.get_paths()["purelib"]), mailsrv.__file__
assert venv != sys.base_prefix, "not running in the venv"
assert os.path.isfile(os.path.join(os.path.dirname(mailsrv.__file__), "py.typed")), "py.typed missing"
assert _ffi.LIBRARY_PATH == os.environ["MAILSRV_LIBRARY"], _ffi.LIBRARY_PATH
print("  loaded", _ffi.LIBRARY_PATH, "-", mailsrv.version())
ns, anchor = os.environ.get("MAILSRV_TEST_NS"), os.environ.get("MAILSRV_TEST_ANCHOR")
if ns and anchor:
    with mailsrv.Context(nameservers=[ns], trust_anchor_file=anchor) as ctx:
        d = ctx.discover("joe@example.com")
        best = d.preferred(mailsrv.Purpose.ACCESS)
        e = best.endpoints[0]
        print("  joe@example.com:", best.service.label, e.target, e.port, best.dnssec.label)
        assert (best.service, e.target, best.dnssec) == (
            mailsrv.Service.IMAPS, "mail.example.net", mailsrv.Dnssec.SECURE)
        try:
            ctx.discover("not an address")
            raise AssertionError("a bad address was accepted")
        except mailsrv.MailsrvError as err:
            assert err.status == mailsrv.Status.INVALID_ARG, err
else:
    print("  (no testbed in the environment: discovery not run)")
EOF
# From an empty directory: nothing of the source tree is importable.
check env -C "$work" "$vpy" "$work/use.py"

# Without MAILSRV_LIBRARY the installed package must not find a build tree's library. The
# library loads lazily: `import mailsrv` works, the first call raises LibraryNotFound (an
# ImportError).
if "$vpy" -c 'import ctypes.util, sys; sys.exit(ctypes.util.find_library("mailsrv") is not None)'; then
    check env -C "$work" -u MAILSRV_LIBRARY "$vpy" -c '
import sys
import mailsrv
try:
    path = mailsrv.version()
except ImportError as e:
    sys.exit(0 if isinstance(e, mailsrv.LibraryNotFound) else 1)
sys.exit("loaded a library although none is installed: " + path)'
else
    echo "py-install-check: a libmailsrv is installed system-wide: the no-fallback check is skipped"
fi

echo "py-install-check: $pass passed, $failed failed"
[ "$failed" = 0 ]
