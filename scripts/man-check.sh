#!/usr/bin/env bash
# man-check.sh [MAILSRV_BIN]: the documentation matches the code.
#  - docs/man/mailsrv.1 and docs/man/libmailsrv.3 render with groff without a warning;
#  - every subcommand and every option of `mailsrv help` appears in mailsrv.1;
#  - every mailsrv_* / MAILSRV_* name in libmailsrv.3 and docs/integration.md exists in
#    include/mailsrv.h (environment variables MAILSRV_LIBRARY and MAILSRV_TEST_* aside);
#  - the C code of docs/integration.md and the EXAMPLES of libmailsrv.3 compile against the
#    header (-std=c11 -Wall -Wextra -Werror; GLib calls against stubs unless glib-2.0 is
#    installed), and every mailsrv.X name in its Python code exists in the bindings (when
#    MAILSRV_LIBRARY or a build of the library is available to load them).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/mailsrv}
man1=docs/man/mailsrv.1 man3=docs/man/libmailsrv.3 guide=docs/integration.md
header=include/mailsrv.h
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 failed=0
ok() { pass=$((pass + 1)); }
fail() { echo "man-check FAILED: $*"; failed=$((failed + 1)); }

for page in "$man1" "$man3"; do
    warnings=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$page" 2>&1 || true)
    if [ -z "$warnings" ]; then ok; else fail "$page: groff warnings:"; echo "$warnings"; fi
done

# The CLI's own usage text is the list of what must be documented.
usage=$("$bin" help)
rendered=$(LC_ALL=C groff -man -Tascii -P-cbou "$man1" 2>/dev/null)
for cmd in $(sed -n 's/^ *mailsrv \([a-z-]*\).*/\1/p' <<<"$usage" | sort -u); do
    if grep -q "mailsrv $cmd" <<<"$rendered"; then ok; else fail "mailsrv.1 lacks the subcommand $cmd"; fi
done
for opt in $(grep -oE -- '--[a-z][a-z-]*' <<<"$usage" | sort -u); do
    if grep -qE -- "(^|[^a-z-])$opt([^a-z-]|\$)" <<<"$rendered"; then ok; else fail "mailsrv.1 lacks the option $opt"; fi
done

# Names in the library page and the guide exist in the header.
python3 - "$header" "$man3" "$guide" >"$work/names" <<'EOF'
import re, sys
header = open(sys.argv[1]).read()
words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", header))
for path in sys.argv[2:]:
    text = open(path).read()
    for name in sorted(set(re.findall(r"(?<![A-Za-z0-9_])(?:mailsrv|MAILSRV)_[A-Za-z0-9_]*", text))):
        if name.endswith("_") or name == "MAILSRV_LIBRARY" or name.startswith("MAILSRV_TEST_"):
            continue
        print(("ok " if name in words else "missing ") + path + " " + name)
EOF
while read -r verdict path name; do
    if [ "$verdict" = ok ]; then ok; else fail "$path names $name, which include/mailsrv.h does not declare"; fi
done <"$work/names"

# The guide's C blocks, in order, as one translation unit; then the page's example.
{
    echo '#define _POSIX_C_SOURCE 200809L'
    echo '#include <poll.h>'
    echo '#include <stdbool.h>'
    echo '#include <stdint.h>'
    echo '#include <stdio.h>'
    echo '#include <stdlib.h>'
    echo '#include <string.h>'
    echo '#include <time.h>'
    echo '#include "mailsrv.h"'
    if pkg-config --exists glib-2.0 2>/dev/null; then
        echo '#include <glib.h>'
        echo '#include <glib-unix.h>'
    else
        cat <<'EOF'
/* GLib stubs with GLib's signatures (glib-2.0 is not installed here). */
typedef int gint;
typedef unsigned int guint;
typedef int gboolean;
typedef void *gpointer;
typedef enum { G_IO_IN = 1 } GIOCondition;
#define G_SOURCE_CONTINUE 1
typedef gboolean (*GUnixFDSourceFunc)(gint fd, GIOCondition condition, gpointer user_data);
guint g_unix_fd_add(gint fd, GIOCondition condition, GUnixFDSourceFunc function, gpointer user_data);
gboolean g_source_remove(guint tag);
EOF
    fi
    awk '/^```c$/ {on=1; print "#line " NR+1 " \"docs/integration.md\""; next} /^```$/ {on=0} on' "$guide"
    echo 'int man3_example(void);'
    echo 'int man3_example(void) {'
    awk '/^\.SH EXAMPLES/ {ex=1} ex && /^\.nf/ {on=1; next} on && /^\.fi/ {exit} on' "$man3" \
        | sed -e 's/\\e/\\/g' -e 's/\\-/-/g'
    echo 'return 0; }'
} >"$work/guide.c"
glib_flags=$(pkg-config --cflags glib-2.0 2>/dev/null || true)
# The guide declares the application's functions it calls and defines functions without
# prototypes (it shows code, not a header), hence -Wno-missing-prototypes stays default-off.
if ${CC:-cc} -std=c11 -Wall -Wextra -Werror ${CPPFLAGS:-} ${CFLAGS:-} -Iinclude $glib_flags \
     -fsyntax-only "$work/guide.c" 2>"$work/cc.log"; then
    ok
else
    fail "the C code of $guide / $man3 does not compile against the header:"; cat "$work/cc.log"
fi

# The guide's Python names exist in the bindings (skipped only when no library can be loaded).
# The library built with the CLI given (make man-check: the release build).
lib=${MAILSRV_LIBRARY:-$(cd "$(dirname "$bin")" && pwd)/libmailsrv.so}
[ -f "$lib" ] || lib=
if [ -n "$lib" ]; then
    awk '/^```python$/ {on=1; next} /^```$/ {on=0} on' "$guide" >"$work/guide.py"
    if MAILSRV_LIBRARY=$lib PYTHONPATH=bindings/python ${PYTHON:-python3} - "$work/guide.py" <<'EOF'
import re, sys
import mailsrv
src = open(sys.argv[1]).read()
compile(src, "docs/integration.md (python)", "exec")
bad = []
for dotted in sorted(set(re.findall(r"\bmailsrv(?:\.[A-Za-z_][A-Za-z0-9_]*)+", src))):
    obj = mailsrv
    for part in dotted.split(".")[1:]:
        if not hasattr(obj, part):
            bad.append(dotted)
            break
        obj = getattr(obj, part)
for m in re.findall(r"\bctx\.([a-z_]+)\(", src):
    if not hasattr(mailsrv.Context, m):
        bad.append("Context." + m)
for m in re.findall(r"\bactx\.([a-z_]+)\(", src):
    if not hasattr(mailsrv.AsyncContext, m):
        bad.append("AsyncContext." + m)
if bad:
    print("unknown in the bindings:", ", ".join(bad))
    sys.exit(1)
EOF
    then ok; else fail "the Python code of $guide uses names the bindings lack"; fi
else
    echo "man-check: no libmailsrv.so to load the bindings: the guide's Python names were not checked"
fi

echo "man-check: $pass passed, $failed failed"
[ "$failed" = 0 ]
