#!/usr/bin/env bash
# deb-check.sh: what a Debian package build would ship, checked, and used.
#
#  1. `make install DESTDIR=stage PREFIX=/usr LIBDIR=/usr/lib/<multiarch>` (plus the man pages);
#  2. the staged files split the way debian/*.install files would split them:
#       libmailsrv0.1   usr/lib/<ma>/libmailsrv.so.0.1.0 and the soname link libmailsrv.so.0.1
#       libmailsrv-dev  usr/include/mailsrv.h, usr/lib/<ma>/libmailsrv.so (link), libmailsrv.a,
#                       usr/lib/<ma>/pkgconfig/mailsrv.pc, usr/share/man/man3/libmailsrv.3
#       mailsrv-tools   usr/bin/mailsrv, usr/share/man/man1/mailsrv.1
#     every staged file in exactly one package; the runtime package named after the soname
#     (Debian policy 8.1); no RPATH/RUNPATH in any ELF file; the header's version macros, the
#     .pc version and the soname agree with Cargo.toml; each tree built into a .deb with
#     dpkg-deb (control file, copyright) when dpkg-deb is there;
#  3. c-tests/example_discover.c, copied out of the source tree, compiled with
#     `pkg-config --cflags --libs mailsrv` against runtime + dev only (PKG_CONFIG_LIBDIR and
#     PKG_CONFIG_SYSROOT_DIR: no system or build-tree paths), run with the runtime package
#     alone on the library path; and linked statically from the .a with `pkg-config --static`;
#  4. a Python script using the bindings, pip-installed into a venv, on the runtime package's
#     .so (scripts/py-install-check.sh with MAILSRV_LIBRARY set to it).
# Steps 3 and 4 run against the testbed (MAILSRV_TEST_NS, MAILSRV_TEST_ANCHOR; `make deb-check`
# starts the DNS part when they are not set). CC, CPPFLAGS, CFLAGS and LDFLAGS are honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MAILSRV_TEST_NS:?run under testbed/run.sh (make deb-check does)}"
: "${MAILSRV_TEST_ANCHOR:?run under testbed/run.sh (make deb-check does)}"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 755 "$root"
CC=${CC:-cc}
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || $CC -print-multiarch 2>/dev/null || echo "")
libdir=/usr/lib${ma:+/$ma}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
IFS=. read -r major minor patch <<<"$version"
abi=$([ "$major" = 0 ] && echo "0.$minor" || echo "$major")
soname=libmailsrv.so.$abi
runtime_pkg=libmailsrv$abi # policy 8.1: the soname's version appended (libmailsrv0.1)
pass=0 failed=0
check() { if "$@"; then pass=$((pass + 1)); else echo "deb-check FAILED: $*"; failed=$((failed + 1)); fi; }
t0=$(date +%s%N)
ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }

# 1. Stage.
stage=$root/stage
# RELEASE_DIR (with CARGO_TARGET_DIR) from the environment: a build elsewhere than target/.
make --no-print-directory install DESTDIR="$stage" PREFIX=/usr LIBDIR="$libdir" \
    MANDIR=/usr/share/man ${RELEASE_DIR:+RELEASE_DIR="$RELEASE_DIR"} >/dev/null
echo "deb-check: staged with LIBDIR=$libdir in $(ms) ms"

# 2. Split, as debian/<package>.install would.
declare -A files=(
    [$runtime_pkg]="$libdir/libmailsrv.so.$version $libdir/$soname"
    [libmailsrv-dev]="/usr/include/mailsrv.h $libdir/libmailsrv.so $libdir/libmailsrv.a $libdir/pkgconfig/mailsrv.pc /usr/share/man/man3/libmailsrv.3"
    [mailsrv-tools]="/usr/bin/mailsrv /usr/share/man/man1/mailsrv.1"
)
for pkg in "${!files[@]}"; do
    for f in ${files[$pkg]}; do
        if [ -e "$stage$f" ] || [ -L "$stage$f" ]; then
            mkdir -p "$root/$pkg$(dirname "$f")"
            mv "$stage$f" "$root/$pkg$f"
        else
            check false "$pkg: $f was not installed"
        fi
    done
done
left=$(find "$stage" \( -type f -o -type l \) | sed "s|^$stage||")
check test -z "$left"
[ -z "$left" ] || echo "  not in any package: $left"
rt=$root/$runtime_pkg dev=$root/libmailsrv-dev tools=$root/mailsrv-tools

# The runtime package: the versioned library and its soname link, nothing else.
check test -f "$rt$libdir/libmailsrv.so.$version"
check test "$(readlink "$rt$libdir/$soname")" = "libmailsrv.so.$version"
got_soname=$(readelf -d "$rt$libdir/libmailsrv.so.$version" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
check test "$got_soname" = "$soname"
check test "$(find "$rt" \( -type f -o -type l \) | wc -l)" = 2
# The dev package: the unversioned link points at the soname (which the runtime package has).
check test "$(readlink "$dev$libdir/libmailsrv.so")" = "$soname"
check test ! -e "$dev$libdir/$soname"
for m in "MAJOR $major" "MINOR $minor" "PATCH $patch" "NUMBER $((major * 10000 + minor * 100 + patch))"; do
    set -- $m
    check grep -qE "^#define MAILSRV_VERSION_$1 $2\$" "$dev/usr/include/mailsrv.h"
done
check grep -qx "Version: $version" "$dev$libdir/pkgconfig/mailsrv.pc"
check grep -qx "libdir=$libdir" "$dev$libdir/pkgconfig/mailsrv.pc"
# The tools package: the CLI does not need the shared library (it links the Rust code in).
check test -z "$(readelf -d "$tools/usr/bin/mailsrv" | grep 'NEEDED.*libmailsrv' || true)"
# No RPATH or RUNPATH anywhere; every ELF file is found by file type, not by name.
for f in $(find "$root" -path "$stage" -prune -o -type f -print); do
    if head -c4 "$f" | grep -q $'\x7fELF'; then
        check test -z "$(readelf -d "$f" 2>/dev/null | grep -E 'RPATH|RUNPATH' || true)"
    fi
done

# .debs: control files as dh_gencontrol would write them (dependencies from the split).
if command -v dpkg-deb >/dev/null; then
    arch=$(dpkg --print-architecture)
    license=$(sed -n 's/^license = "\(.*\)"/\1/p' Cargo.toml | head -1)
    for pkg in "$runtime_pkg" libmailsrv-dev mailsrv-tools; do
        d=$root/$pkg
        mkdir -p "$d/DEBIAN" "$d/usr/share/doc/$pkg"
        printf 'mailsrv %s\nLicense: %s\n' "$version" "$license" >"$d/usr/share/doc/$pkg/copyright"
        case $pkg in
            "$runtime_pkg") deps="Depends: libc6"; desc="mail server discovery (DNS SRV, DNSSEC, SRV-ID): shared library"; ma_line="Multi-Arch: same";;
            libmailsrv-dev) deps="Depends: $runtime_pkg (= $version)"; desc="mail server discovery: development files"; ma_line="Multi-Arch: same";;
            mailsrv-tools) deps="Depends: libc6"; desc="mail server discovery: the mailsrv command"; ma_line="Multi-Arch: foreign";;
        esac
        cat >"$d/DEBIAN/control" <<EOF
Package: $pkg
Version: $version-1
Architecture: $arch
Maintainer: mailsrv packaging check <nobody@localhost>
Section: libs
Priority: optional
$ma_line
$deps
Description: $desc
 Built by scripts/deb-check.sh from make install DESTDIR.
EOF
        check dpkg-deb --root-owner-group -Zgzip -z1 --build "$d" "$root/$pkg.deb" >/dev/null
        rm -rf "$d/DEBIAN"
    done
    check test "$(dpkg-deb -c "$root/$runtime_pkg.deb" | grep -c "libmailsrv.so")" = 2
    check test -z "$(dpkg-deb -c "$root/$runtime_pkg.deb" | grep -E 'include|\.a$|pkgconfig' || true)"
fi
echo "deb-check: package split checked in $(ms) ms"

# 3. A C program against runtime + dev only, as if both were installed (the sysroot).
sysroot=$root/sysroot
mkdir -p "$sysroot"
cp -a "$rt/." "$dev/." "$sysroot/"
rm -rf "$sysroot/usr/share/doc"
mkdir -p "$root/build"
cp c-tests/example_discover.c "$root/build/"
export PKG_CONFIG_LIBDIR=$sysroot$libdir/pkgconfig PKG_CONFIG_PATH= PKG_CONFIG_SYSROOT_DIR=$sysroot
cflags=$(pkg-config --cflags mailsrv)
libs=$(pkg-config --libs mailsrv)
check test "$(pkg-config --modversion mailsrv)" = "$version"
check grep -q -- "-I$sysroot/usr/include" <<<"$cflags"
check test -z "$(grep -oE -- "-[IL][^ ]*" <<<"$cflags $libs" | grep -v "^-[IL]$sysroot" || true)"
(cd "$root/build" && $CC -std=c11 -Wall -Wextra -Werror ${CPPFLAGS:-} ${CFLAGS:-} \
    example_discover.c $cflags $libs ${LDFLAGS:-} -o example_discover)
check test -z "$(readelf -d "$root/build/example_discover" | grep -E 'RPATH|RUNPATH' || true)"
check grep -q "NEEDED.*\[$soname\]" <<<"$(readelf -d "$root/build/example_discover")"
# Run time: the runtime package alone.
resolved=$(LD_LIBRARY_PATH=$rt$libdir ldd "$root/build/example_discover" | awk -v s="$soname" '$1 == s {print $3}')
check test "$resolved" = "$rt$libdir/$soname"
out=$(LD_LIBRARY_PATH=$rt$libdir "$root/build/example_discover" joe@example.com \
      "$MAILSRV_TEST_NS" "$MAILSRV_TEST_ANCHOR")
echo "$out" | sed 's/^/  /'
check grep -q "read mail with imaps at mail.example.net" <<<"$out"
# Static: the .a and the system libraries `pkg-config --static` lists (Libs.private).
static_libs=$(pkg-config --static --libs mailsrv | sed 's/-lmailsrv\b//')
(cd "$root/build" && $CC -std=c11 -Wall -Wextra -Werror ${CPPFLAGS:-} ${CFLAGS:-} \
    example_discover.c $cflags "$sysroot$libdir/libmailsrv.a" $static_libs ${LDFLAGS:-} \
    -o example_static)
check test -z "$(readelf -d "$root/build/example_static" | grep 'NEEDED.*libmailsrv' || true)"
out=$("$root/build/example_static" joe@example.com "$MAILSRV_TEST_NS" "$MAILSRV_TEST_ANCHOR")
check grep -q "read mail with imaps at mail.example.net" <<<"$out"
unset PKG_CONFIG_LIBDIR PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
echo "deb-check: C program built and run against the package tree in $(ms) ms"

# 4. Python: the bindings from a venv, on the runtime package's library.
check env MAILSRV_LIBRARY="$rt$libdir/$soname" scripts/py-install-check.sh
echo "deb-check: $pass passed, $failed failed ($(ms) ms)"
[ "$failed" = 0 ]
