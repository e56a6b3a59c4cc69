#!/usr/bin/env python3
"""Whole-account discovery against the slowest single source it needs (issue 16): the
sources run in parallel, so asking all of them should cost about what the slowest one the
answer waits for costs, not their sum.

    MAILSRV_LIBRARY=.../libmailsrv.so mailsrv_account.py NS ANCHOR CA ISPDB_URL RUNS ADDRESS

A first discovery from every source (not timed) names the source taken; the sources the
answer needs are that one and every source ranked above it (a lower-ranked answer is
returned only once every higher-ranked source has failed). Then, RUNS times, in an order
that rotates from run to run: the discovery from every source, and each needed source
alone, each on a fresh context (cold caches; context creation not timed). Prints one JSON
object: {"address", "winner", "needed", "all": [s], "single": {source: [s]},
"single_found": {source: bool}}.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
import mailsrv  # noqa: E402

# Rank order, highest first (src/core/autoconfig/mod.rs, Source::ALL).
RANK = ["autoconfig", "autoconfig-wellknown", "srv", "ispdb", "mx-autoconfig", "mx-ispdb", "autoconfig-http"]


def main():
    ns, anchor, ca, ispdb, runs, address = sys.argv[1:]
    runs = int(runs)

    def discover(sources):
        ctx = mailsrv.Context(nameservers=[ns], trust_anchor_file=anchor, ca_file=ca, ispdb_url=ispdb,
                              timeout_ms=20000)
        try:
            t0 = time.perf_counter()
            a = ctx.discover_account(address, sources=sources)
            return time.perf_counter() - t0, a
        finally:
            ctx.close()

    _, first = discover(None)
    if first.source is None:
        raise SystemExit(f"{address}: no source found a configuration")
    winner = first.source.cli_name
    needed = RANK[: RANK.index(winner) + 1]
    variants = [None] + needed
    out = {"address": address, "winner": winner, "needed": needed, "all": [],
           "single": {s: [] for s in needed}, "single_found": {}}
    for run in range(runs):
        k = run % len(variants)
        for v in variants[k:] + variants[:k]:
            took, a = discover(None if v is None else [v])
            if v is None:
                if a.source is None or a.source.cli_name != winner:
                    raise SystemExit(f"{address}: run {run} took {a.source}, not {winner}")
                out["all"].append(took)
            else:
                out["single"][v].append(took)
                out["single_found"][v] = a.source is not None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
