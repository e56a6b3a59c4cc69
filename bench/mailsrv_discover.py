#!/usr/bin/env python3
"""One fresh process: a new mailsrv context, discovery of the six services (cold: empty key
cache), then the same discovery again in the same context (warm: DNSKEY/DS cached).
Prints one JSON line {"cold": s, "warm": s, "states": {...}}.

    MAILSRV_LIBRARY=.../libmailsrv.so mailsrv_discover.py NS ANCHOR DOMAIN [--mark FILE]

With --mark FILE it appends "cold-start <t>", "warm-start <t>" lines (epoch seconds) so the
proxy log can be split into the two discoveries.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
import mailsrv  # noqa: E402


def main():
    args = sys.argv[1:]
    mark = None
    if "--mark" in args:
        i = args.index("--mark")
        mark = args[i + 1]
        del args[i:i + 2]
    ns, anchor, domain = args
    ctx = mailsrv.Context(nameservers=[ns], trust_anchor_file=anchor, timeout_ms=10000)
    out = {}
    for phase in ("cold", "warm"):
        if mark:
            with open(mark, "a") as f:
                f.write(f"{phase}-start {time.time():.6f}\n")
        t0 = time.perf_counter()
        d = ctx.discover(domain)
        out[phase] = time.perf_counter() - t0
        out[phase + "_states"] = {s.service.label: [s.state.label, s.dnssec.label, len(s.endpoints), sum(len(e.addresses) for e in s.endpoints)]
                                  for s in d.services}
    if mark:
        with open(mark, "a") as f:
            f.write(f"end {time.time():.6f}\n")
    ctx.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
