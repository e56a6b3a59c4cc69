#!/usr/bin/env python3
"""Helpers run as separate processes by bench.py (so each gets a fresh library state and
its own peak RSS):

    workers.py auth NS ANCHOR CA DOMAIN SERVICE TARGET PORT RUNS
        probe+reconnect (mailsrv_verify_srv_authenticity) vs two sequential handshakes
        (mailsrv_connect_with_sni with SNI = the domain, then with SNI = the target).
    workers.py loop NS ANCHOR N CONCURRENCY DOMAIN...
        N six-service discoveries over DOMAIN... repeated, CONCURRENCY threads on one context.
    workers.py distinct NS ANCHOR N CONCURRENCY ZONE
        N six-service discoveries of N different names dNNN.ZONE (issue 18: none is in the
        answer cache, so every one is asked and validated; in a signed ZONE each answer is an
        NSEC-proven NXDOMAIN), CONCURRENCY threads on one context.
Each prints one JSON line.
"""
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
import mailsrv  # noqa: E402


def auth(ns, anchor, ca, domain, service, target, port, runs):
    port, runs = int(port), int(runs)
    ctx = mailsrv.Context(nameservers=[ns], trust_anchor_file=anchor, ca_file=ca, timeout_ms=10000)
    svc = mailsrv.Service[service.upper()]
    sec = mailsrv.Security.for_service(svc)
    probe_id = mailsrv.Identity().srv_id(service, domain).dns_id(domain)
    a = ctx.verify_srv_authenticity(domain, svc, target, port)  # warm-up (keys, addresses)
    out = {"verdict": a.verdict.name, "evidence": a.evidence.name, "target_verified": a.target_verified,
           "concurrent": [], "sequential": []}
    for _ in range(runs):
        t0 = time.perf_counter()
        ctx.verify_srv_authenticity(domain, svc, target, port)
        out["concurrent"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        s1 = ctx.connect(target, port, sec, sni=domain, identity=probe_id)
        s1.close()
        s2 = ctx.connect(target, port, sec)
        s2.close()
        out["sequential"].append(time.perf_counter() - t0)
    ctx.close()
    print(json.dumps(out))


def loop(ns, anchor, n, conc, *domains):
    n, conc = int(n), int(conc)
    ctx = mailsrv.Context(nameservers=[ns], trust_anchor_file=anchor, timeout_ms=10000)
    ctx.discover(domains[0])  # keys cached, as in a long-running audit
    failed = 0

    def one(i):
        d = ctx.discover(domains[i % len(domains)])
        return sum(1 for s in d.services if s.state.label == "lookup_failed")

    t0 = time.perf_counter()
    # Executor.map submits every item at once: n pending futures would make the Python side's
    # memory grow with n (about 1.8 KB each) and hide whether the library's is flat. Windows of
    # 1000 keep the driver's own memory constant.
    with ThreadPoolExecutor(max_workers=conc) as ex:
        for start in range(0, n, 1000):
            for f in ex.map(one, range(start, min(n, start + 1000)), chunksize=16):
                failed += f
    dt = time.perf_counter() - t0
    ctx.close()
    print(json.dumps({"n": n, "concurrency": conc, "seconds": dt, "per_s": n / dt, "failed_services": failed}))


def distinct(ns, anchor, n, conc, zone):
    n, conc = int(n), int(conc)
    ctx = mailsrv.Context(nameservers=[ns], trust_anchor_file=anchor, timeout_ms=10000)
    ctx.discover(zone)  # keys cached, as in a long-running audit
    failed = 0

    def one(i):
        d = ctx.discover(f"d{i}.{zone}")
        return sum(1 for s in d.services if s.state.label == "lookup_failed")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=conc) as ex:
        for start in range(0, n, 1000):
            for f in ex.map(one, range(start, min(n, start + 1000)), chunksize=16):
                failed += f
    dt = time.perf_counter() - t0
    ctx.close()
    print(json.dumps({"n": n, "concurrency": conc, "seconds": dt, "per_s": n / dt, "failed_services": failed}))


if __name__ == "__main__":
    {"auth": auth, "loop": loop, "distinct": distinct}[sys.argv[1]](*sys.argv[2:])
