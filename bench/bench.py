#!/usr/bin/env python3
"""`make bench` (issue 8, docs/design.md §7): run inside testbed/run.sh; writes docs/BENCHMARKS.md
(+ docs/bench.png when matplotlib is there) and bench/results.json. Standard library plus
dnspython (the comparison clients) and optionally matplotlib.

Env: MAILSRV_TEST_* (testbed; MAILSRV_TEST_ISPDB for the account rows), MAILSRV_LIBRARY,
BENCH_BIN (dir of the C bench programs), MAILSRV_CLI, BENCH_RUNS (default 5), BENCH_RTTS
(default "0 20 80"),
BENCH_PROXY_ADDR / BENCH_PROXY_PORT (default 127.0.17.1 / 5370: one port per RTT from there),
BENCH_SCALE (default "1000 10000"), BENCH_ONLY=discovery or account (only the discovery
rows, or only the whole-account rows of issue 16, written to bench/results-discovery.json or
bench/results-account.json; results.json and the report are left alone).
"""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import dns.resolver

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ENV = os.environ
NS = ENV.get("MAILSRV_TEST_NS", "127.0.17.1:5361")
NS_HOST, NS_PORT = NS.rsplit(":", 1)
ANCHOR, CA, CERTS = (ENV.get(k, "") for k in ("MAILSRV_TEST_ANCHOR", "MAILSRV_TEST_CA", "MAILSRV_TEST_CERTS"))
ANCHOR_DS = ENV.get("MAILSRV_TEST_ANCHOR_DS", "")
RUNS = int(ENV.get("BENCH_RUNS", "5"))
RTTS = [int(x) for x in ENV.get("BENCH_RTTS", "0 20 80").split()]
PADDR = ENV.get("BENCH_PROXY_ADDR", "127.0.17.1")
PPORT = int(ENV.get("BENCH_PROXY_PORT", "5370"))
SCALE = [int(x) for x in ENV.get("BENCH_SCALE", "1000 10000").split()]
BIN = ENV.get("BENCH_BIN", os.path.join(HERE, "build"))
CLI = ENV.get("MAILSRV_CLI", os.path.join(ROOT, "target/release/mailsrv"))
LIB = ENV.get("MAILSRV_LIBRARY", os.path.join(ROOT, "target/release/libmailsrv.so"))
IMAPS_PORT = int(ENV.get("MAILSRV_TEST_IMAPS_PORT", "10993"))
# (row label, domain, trust anchor): the DS-form anchor is the form IANA and Debian's
# dns-root-data publish (issue 14: it must not cost a round).
KINDS = [("signed", "example.com", ANCHOR), ("signed-ds", "example.com", ANCHOR_DS),
         ("unsigned", "insecure.test", ANCHOR)]
DOMAINS = {kind: domain for kind, domain, _ in KINDS}
SERVICES = ["imaps", "imap", "pop3s", "pop3", "submissions", "submission"]
# Account discovery (issue 16), against the testbed's nginx and knotd: (address, what it
# has). The source taken and the sources it needs are found by the first discovery.
ISPDB = ENV.get("MAILSRV_TEST_ISPDB", "https://ispdb.ac.test/v1.1/")
ACCOUNTS = [("joe@ac.test", "provider autoconfig"), ("joe@ispdbonly.ac.test", "an ISPDB entry only"),
            ("joe@mxs.example.com", "a signed MX to a provider")]
TARGET_RATIO, TARGET_CERT = 1.1, 1.0
WORK = tempfile.mkdtemp(prefix="mailsrv-bench-")
R = {"meta": {}, "discovery": {}, "account": {}, "auth": {}, "cert": [], "scale": {}, "footprint": {}}


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def stats(xs):
    xs = sorted(xs)
    return {"median": statistics.median(xs), "min": xs[0], "max": xs[-1], "n": len(xs)}


def fmt_ms(s):
    return f"{s['median'] * 1000:.1f} ({s['min'] * 1000:.1f}–{s['max'] * 1000:.1f})"


# ---------------------------------------------------------------- proxy log analysis
def read_log(path):
    out = []
    with open(path) as f:
        for line in f:
            t, tr, name, qtype = line.split()
            out.append((float(t), tr, name, qtype))
    return out


def round_trips(queries, rtt_ms):
    """Groups queries by arrival: a query more than RTT/2 after its group's first starts a
    new group. Each group is one round trip on the critical path."""
    groups, start = 0, None
    for t, *_ in sorted(queries):
        if start is None or t - start > rtt_ms / 2000.0:
            groups, start = groups + 1, t
    return groups


def split_marks(entries, marks):
    m = {}
    for line in open(marks):
        k, v = line.split()
        m[k] = float(v)
    cold = [e for e in entries if m["cold-start"] <= e[0] < m["warm-start"]]
    warm = [e for e in entries if m["warm-start"] <= e[0] < m["end"]]
    return cold, warm


# ---------------------------------------------------------------- comparison clients
def ask(q_name, q_type, port, dnssec):
    q = dns.message.make_query(q_name, q_type, want_dnssec=dnssec)
    r = dns.query.udp(q, PADDR, port=port, timeout=5)
    if r.flags & dns.flags.TC:
        r = dns.query.tcp(q, PADDR, port=port, timeout=5)
    return r


def sequential_replay(queries, port):
    """The same queries mailsrv sent (cold), one after the other, DO bit set, no validation."""
    t0 = time.perf_counter()
    for _, _, name, qtype in queries:
        ask(name, qtype, port, True)
    return time.perf_counter() - t0


def plain_dnspython(domain, port):
    """What a typical script does: dnspython's resolver, six SRV lookups then A and AAAA of
    each target, one after the other, no DNSSEC."""
    res = dns.resolver.Resolver(configure=False)
    res.nameservers, res.port, res.cache, res.lifetime = [PADDR], port, None, 10
    t0 = time.perf_counter()
    targets = []
    for s in SERVICES:
        try:
            for rr in res.resolve(f"_{s}._tcp.{domain}", "SRV"):
                t = rr.target.to_text()
                if t != "." and t not in targets:
                    targets.append(t)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            pass
    for t in targets:
        for rt in ("AAAA", "A"):
            try:
                res.resolve(t, rt)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                pass
    return time.perf_counter() - t0


# ---------------------------------------------------------------- measurements
def start_proxies(first_port, procs):
    """One delay proxy in front of knotd per RTT, on ports first_port, first_port + 1, ...
    (appended to procs, which the caller stops); returns once each answers."""
    for i, rtt in enumerate(RTTS):
        logf = os.path.join(WORK, f"proxy{first_port + i}.log")
        procs.append(subprocess.Popen([sys.executable, os.path.join(HERE, "delay_proxy.py"), PADDR,
                                       str(first_port + i), NS_HOST, NS_PORT, str(rtt), "--log", logf]))
    for i in range(len(RTTS)):  # each proxy answers before anything is timed
        deadline = time.time() + 20
        while True:
            try:
                q = dns.message.make_query(".", "SOA")
                dns.query.udp(q, PADDR, port=first_port + i, timeout=1)
                break
            except (dns.exception.Timeout, OSError):
                if time.time() > deadline:
                    raise
                time.sleep(0.2)


def stop_proxies(procs):
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait()


def discovery():
    procs = []
    try:
        start_proxies(PPORT, procs)
        for i, rtt in enumerate(RTTS):
            port = PPORT + i
            logf = os.path.join(WORK, f"proxy{port}.log")
            # One exchange through the proxy, as dnspython sees it: the injected RTT plus the
            # proxy's and knotd's own cost (the floor of any client here).
            ex = []
            for _ in range(10):
                t0 = time.perf_counter()
                ask("_imaps._tcp.example.com.", "SRV", port, True)
                ex.append(time.perf_counter() - t0)
            R["discovery_exchange"] = R.get("discovery_exchange", {})
            R["discovery_exchange"][str(rtt)] = stats(ex)
            for kind, domain, anchor in KINDS:
                row = {k: [] for k in ("cold", "warm", "seq", "plain")}
                dups, detect = [], []
                qc = {"cold": [], "warm": []}
                rts = {"cold": [], "warm": []}
                cold_queries, states = None, None
                for run in range(RUNS):
                    open(logf, "w").close()
                    marks = os.path.join(WORK, "marks")
                    open(marks, "w").close()
                    p = subprocess.run([sys.executable, os.path.join(HERE, "mailsrv_discover.py"),
                                        f"{PADDR}:{port}", anchor, domain, "--mark", marks],
                                       capture_output=True, text=True, check=True)
                    res = json.loads(p.stdout)
                    time.sleep(0.05)
                    cold, warm = split_marks(read_log(logf), marks)
                    row["cold"].append(res["cold"])
                    row["warm"].append(res["warm"])
                    # Capability detection (RFC 8027 tests: root DNSKEY and the TLD's DS
                    # with DO) must share the chain prefetch's packets: no query twice.
                    asked = [(q[2].lower(), q[3]) for q in cold]
                    dups.append(len(asked) - len(set(asked)))
                    detect.append(sum(1 for a in asked if a == (".", "DNSKEY")))
                    for ph, qs in (("cold", cold), ("warm", warm)):
                        qc[ph].append(len(qs))
                        rts[ph].append(round_trips(qs, rtt) if rtt else None)
                    if cold_queries is None:
                        cold_queries, states = cold, res["cold_states"]
                    row["seq"].append(sequential_replay(cold_queries, port))
                    row["plain"].append(plain_dnspython(domain, port))
                # The queries each sent, counted in the proxy log.
                open(logf, "w").close()
                plain_dnspython(domain, port)
                time.sleep(0.05)
                plain_q = read_log(logf)
                R["discovery"][f"{kind}/{rtt}"] = {
                    "domain": domain, "rtt_ms": rtt, "limit_s": 2 * rtt / 1000.0,
                    **{k: stats(v) for k, v in row.items()},
                    "queries": {ph: sorted(set(v)) for ph, v in qc.items()},
                    "round_trips": {ph: sorted(set(x for x in v if x is not None)) for ph, v in rts.items()},
                    "plain_queries": len(plain_q), "plain_round_trips": round_trips(plain_q, rtt) if rtt else None,
                    "cold_query_list": [f"{round((q[0] - cold_queries[0][0]) * 1000)}ms {q[2]} {q[3]}" for q in cold_queries],
                    "states": states,
                    "duplicate_queries": sorted(set(dups)), "root_dnskey_queries": sorted(set(detect)),
                }
                log(f"discovery {kind} rtt={rtt}: cold {fmt_ms(stats(row['cold']))} ms, "
                    f"warm {fmt_ms(stats(row['warm']))} ms, seq {fmt_ms(stats(row['seq']))} ms, "
                    f"queries {qc['cold']}")
    finally:
        stop_proxies(procs)


def account():
    """Issue 16: whole-account discovery (every source at once) against each source it needs
    alone, cold, through the DNS delay proxy at each RTT; the documents and the ISPDB come
    from the testbed's nginx on loopback (no injected delay: the HTTPS fetches cost their
    DNS lookups' round trips plus local TLS)."""
    procs = []
    first = PPORT + len(RTTS)
    try:
        start_proxies(first, procs)
        for i, rtt in enumerate(RTTS):
            for address, what in ACCOUNTS:
                p = subprocess.run([sys.executable, os.path.join(HERE, "mailsrv_account.py"), f"{PADDR}:{first + i}",
                                    ANCHOR, CA, ISPDB, str(RUNS), address], capture_output=True, text=True)
                if p.returncode != 0:
                    raise SystemExit(f"bench: account discovery of {address} failed: {p.stderr.strip()}")
                r = json.loads(p.stdout)
                single = {src: stats(v) for src, v in r["single"].items()}
                slowest = max(single, key=lambda src: single[src]["median"])
                whole = stats(r["all"])
                R["account"][f"{address}/{rtt}"] = {
                    "address": address, "what": what, "rtt_ms": rtt, "winner": r["winner"], "needed": r["needed"],
                    "all": whole, "single": single, "single_found": r["single_found"], "slowest": slowest,
                    "ratio": whole["median"] / single[slowest]["median"],
                }
                log(f"account {address} rtt={rtt}: all {fmt_ms(whole)} ms, slowest needed {slowest} "
                    f"{fmt_ms(single[slowest])} ms, ratio {whole['median'] / single[slowest]['median']:.2f}")
    finally:
        stop_proxies(procs)


def authenticity():
    p = subprocess.run([sys.executable, os.path.join(HERE, "workers.py"), "auth", NS, ANCHOR, CA,
                        "hosted.test", "imaps", "mail.example.net", str(IMAPS_PORT), str(max(RUNS, 5))],
                       capture_output=True, text=True, check=True)
    r = json.loads(p.stdout)
    R["auth"] = {"verdict": r["verdict"], "evidence": r["evidence"], "target_verified": r["target_verified"],
                 "concurrent": stats(r["concurrent"]), "sequential": stats(r["sequential"]), "by_rtt": {}}
    log("authenticity", R["auth"])
    # The overlap only shows with network latency: the same runs through a TCP delay proxy in
    # front of dovecot's IMAPS port (loopback only), reached as mail.example.net:PROXY.
    proxy_port = int(os.environ.get("BENCH_TCP_PROXY_PORT", "18999"))
    for rtt in (20, 80):
        proxy = subprocess.Popen([sys.executable, os.path.join(HERE, "tcp_delay_proxy.py"), "127.0.0.1",
                                  str(proxy_port), "127.0.0.1", str(IMAPS_PORT), str(rtt)])
        try:
            time.sleep(0.5)
            p = subprocess.run([sys.executable, os.path.join(HERE, "workers.py"), "auth", NS, ANCHOR, CA,
                                "hosted.test", "imaps", "mail.example.net", str(proxy_port), str(max(RUNS, 5))],
                               capture_output=True, text=True, check=True)
            r = json.loads(p.stdout)
            R["auth"]["by_rtt"][str(rtt)] = {"concurrent": stats(r["concurrent"]),
                                             "sequential": stats(r["sequential"])}
            log(f"authenticity at {rtt} ms", R["auth"]["by_rtt"][str(rtt)])
        finally:
            proxy.send_signal(signal.SIGTERM)
            proxy.wait()


def certcheck():
    for chain, host in (("dnsid-mail-example-net.pem", "mail.example.net"),
                        ("nc-dns-inside.pem", "mail.example.net")):
        runs = []
        for _ in range(3):
            p = subprocess.run([os.path.join(BIN, "certcheck_bench"), CA, os.path.join(CERTS, chain), host, "2"],
                               capture_output=True, text=True, check=True)
            runs.append(json.loads(p.stdout))
        R["cert"].append({"chain": chain, "host": host, "chain_len": runs[0]["chain_len"],
                          "mailsrv": stats([r["mailsrv_per_s"] for r in runs]),
                          "openssl": stats([r["openssl_per_s"] for r in runs]),
                          "ratio": stats([r["ratio"] for r in runs])})
        log("certcheck", R["cert"][-1])


def timed(cmd, stdout=subprocess.DEVNULL):
    """Runs cmd under /usr/bin/time -v; returns (elapsed s, peak RSS kB, stdout)."""
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    el = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", p.stderr).group(1)
    secs = 0.0
    for part in el.split(":"):
        secs = secs * 60 + float(part)
    return secs, rss, p.stdout, p.returncode


def scale():
    domains = ["example.com", "insecure.test", "hosted.test", "example.test", "xn--bcher-kva.example"]
    base = timed([sys.executable, "-c", "import sys; sys.path.insert(0, %r); import mailsrv" %
                  os.path.join(ROOT, "bindings", "python")])[1]
    R["scale"]["python_baseline_rss_kb"] = base
    for n in SCALE:
        secs, rss, out, rc = timed([sys.executable, os.path.join(HERE, "workers.py"), "loop", NS, ANCHOR,
                                    str(n), "64", *domains])
        r = json.loads(out)
        R["scale"][f"loop/{n}"] = {"n": n, "per_s": r["per_s"], "seconds": r["seconds"], "rss_kb": rss,
                                   "failed_services": r["failed_services"]}
        log("scale loop", n, R["scale"][f"loop/{n}"])
    # Issue 18: the repeated domains above come from the answer cache after the first round;
    # distinct names (dNNN.example.com, six NSEC-proven NXDOMAIN each) are all asked and
    # validated, the audit-style bulk case.
    for n in SCALE:
        secs, rss, out, rc = timed([sys.executable, os.path.join(HERE, "workers.py"), "distinct", NS, ANCHOR,
                                    str(n), "64", "example.com"])
        r = json.loads(out)
        R["scale"][f"distinct/{n}"] = {"n": n, "per_s": r["per_s"], "seconds": r["seconds"], "rss_kb": rss,
                                       "failed_services": r["failed_services"]}
        log("scale distinct", n, R["scale"][f"distinct/{n}"])
    # Where the time of a discovery goes: a CPU profile of the first loop size.
    if shutil.which("perf"):
        data = os.path.join(WORK, "perf.data")
        subprocess.run(["perf", "record", "-q", "-F", "999", "-o", data, "--", sys.executable,
                        os.path.join(HERE, "workers.py"), "loop", NS, ANCHOR, str(SCALE[0]), "64", *domains],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,symbol",
                            "--percent-limit", "1.5"], capture_output=True, text=True)
        R["scale"]["profile"] = [l for l in p.stdout.splitlines() if l.strip() and not l.startswith("#")][:25]
        p = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso"],
                           capture_output=True, text=True)
        R["scale"]["profile_dso"] = [l for l in p.stdout.splitlines() if l.strip() and not l.startswith("#")][:8]
    # `mailsrv audit`: discovery plus a TLS probe and reconnect per service found (dovecot and
    # postfix on loopback do the handshakes), on the first size only.
    n = SCALE[0]
    path = os.path.join(WORK, f"domains{n}.txt")
    with open(path, "w") as f:
        for i in range(n):
            f.write(domains[i % len(domains)] + "\n")
    secs, rss, out, rc = timed([CLI, "audit", path, "--concurrency", "32", "--json", "--nameserver", NS,
                                "--trust-anchor", ANCHOR, "--ca-file", CA])
    R["scale"][f"audit/{n}"] = {"n": n, "per_s": n / secs, "seconds": secs, "rss_kb": rss, "exit": rc,
                                "lines": out.count("\n")}
    log("scale audit", n, R["scale"][f"audit/{n}"])


def footprint():
    so = os.path.realpath(LIB)
    stripped = os.path.join(WORK, "libmailsrv.stripped.so")
    shutil.copy(so, stripped)
    subprocess.run(["strip", stripped], check=False)
    p = subprocess.run([os.path.join(BIN, "footprint"), NS, ANCHOR, "example.com", "1000"],
                       capture_output=True, text=True, check=True)
    R["footprint"] = {"so_bytes": os.path.getsize(so), "so_stripped_bytes": os.path.getsize(stripped),
                      **json.loads(p.stdout)}
    log("footprint", R["footprint"])


# ---------------------------------------------------------------- report
def met(ok):
    return "**met**" if ok else "**not met**"


def report():
    D = R["discovery"]
    L = []
    w = L.append
    m = R["meta"]
    w("# mailsrv benchmarks\n")
    w(f"Generated by `make bench` on {m['date']} ({m['cpus']} CPUs, load average before the run "
      f"{m['load']}; {m.get('runs', RUNS)} runs per point: median (min–max)). Everything on loopback: knotd serving "
      f"the testbed's signed zones under a private root, dovecot and postfix, and "
      f"`bench/delay_proxy.py` in front of knotd adding one injected RTT per DNS exchange "
      f"(the kernel has no netem). {m['version']}, release build. The machine is shared: "
      f"wall times carry its noise; query and round-trip counts from the proxy log do not.\n")
    w("## Targets\n")
    w("| target (docs/design.md §7, issue 8) | measured | status |\n|---|---|---|")
    worst = {}
    for key, d in D.items():
        if d["rtt_ms"]:
            worst[key] = d["cold"]["median"] / d["limit_s"]
    for key in sorted(worst, key=lambda k: (k.split("/")[0], int(k.split("/")[1]))):
        d = D[key]
        r = worst[key]
        w(f"| discovery, {key.split('/')[0]} ({d['domain']}), cold, RTT {d['rtt_ms']} ms ≤ 1.1 × limit (2 RTT) "
          f"| {r:.2f}× ({d['cold']['median'] * 1000:.0f} ms vs {d['limit_s'] * 1000:.0f} ms) | {met(r <= TARGET_RATIO)} |")
    for key in sorted(worst, key=lambda k: (k.split("/")[0], int(k.split("/")[1]))):
        d = D[key]
        r = d["warm"]["median"] / d["limit_s"]
        w(f"| discovery, {key.split('/')[0]} ({d['domain']}), warm, RTT {d['rtt_ms']} ms ≤ 1.1 × limit (2 RTT) "
          f"| {r:.2f}× ({d['warm']['median'] * 1000:.0f} ms vs {d['limit_s'] * 1000:.0f} ms) | {met(r <= TARGET_RATIO)} |")
    for key in sorted(worst, key=lambda k: (k.split("/")[0], int(k.split("/")[1]))):
        d = D[key]
        qw = max(d["queries"]["warm"])
        w(f"| discovery, {key.split('/')[0]} ({d['domain']}), warm within the TTL, RTT {d['rtt_ms']} ms: "
          f"0 RTT (issue 18, answer cache) | {qw} queries, {d['warm']['median'] * 1000:.1f} ms | {met(qw == 0)} |")
    for key in sorted(worst, key=lambda k: (k.split("/")[0], int(k.split("/")[1]))):
        d = D[key]
        qc = max(d["queries"]["cold"])
        w(f"| queries per cold six-service discovery, {key.split('/')[0]}, RTT {d['rtt_ms']} ms: "
          f"fewer than 31 (issue 18) | {qc} | {met(qc < 31)} |")
    for key in sorted(worst, key=lambda k: (k.split("/")[0], int(k.split("/")[1]))):
        d = D[key]
        rt = d["round_trips"]["cold"]
        w(f"| DNS round trips on the critical path, {key.split('/')[0]}, cold, RTT {d['rtt_ms']} ms: 2 "
          f"| {', '.join(map(str, rt))} (proxy log) | {met(max(rt) <= 2)} |")
    for key in sorted(worst, key=lambda k: (k.split("/")[0], int(k.split("/")[1]))):
        d = D[key]
        if not key.startswith("signed") or "duplicate_queries" not in d:
            continue
        extra = max(d["round_trips"]["cold"]) - 2
        w(f"| roadblock detection on a capable path, {key.split('/')[0]}, cold, RTT {d['rtt_ms']} ms: "
          f"0 extra rounds | {extra} extra rounds; {max(d['duplicate_queries'])} repeated queries, "
          f"root DNSKEY asked {max(d['root_dnskey_queries'])}× (proxy log) | {met(extra <= 0)} |")
    for key, d in R.get("account", {}).items():
        if not d["rtt_ms"]:
            continue
        w(f"| whole-account discovery, {d['address']} ({d['what']}; {d['winner']} taken, needs "
          f"{', '.join(d['needed'])}), cold, RTT {d['rtt_ms']} ms ≤ 1.1 × the slowest source needed (issue 16) "
          f"| {d['ratio']:.2f}× ({d['all']['median'] * 1000:.0f} ms vs {d['slowest']} alone "
          f"{d['single'][d['slowest']]['median'] * 1000:.0f} ms) | {met(d['ratio'] <= TARGET_RATIO)} |")
    a = R["auth"]
    ar = a["concurrent"]["median"] / a["sequential"]["median"]
    w(f"| authenticity (probe + reconnect), loopback without delay (CPU-bound, information) "
      f"| {ar:.2f}× two sequential connects | — |")
    for rtt, v in sorted(a.get("by_rtt", {}).items(), key=lambda kv: int(kv[0])):
        rr = v["concurrent"]["median"] / v["sequential"]["median"]
        w(f"| authenticity (probe + reconnect) close to one handshake round, not two, TCP RTT {rtt} ms: "
          f"< 0.75 × two sequential connects | {rr:.2f}× ({v['concurrent']['median'] * 1000:.0f} vs "
          f"{v['sequential']['median'] * 1000:.0f} ms) | {met(rr < 0.75)} |")
    for c in R["cert"]:
        w(f"| cert check throughput ≥ 1.0 × OpenSSL, chain of {c['chain_len']} ({c['chain']}) | "
          f"{c['ratio']['median']:.2f}× | {met(c['ratio']['median'] >= TARGET_CERT)} |")
    loops = [v for k, v in R["scale"].items() if k.startswith("loop/")]
    if loops:
        rate = min(v["per_s"] for v in loops)
        w(f"| scale: thousands of six-service discoveries per second (2 cores) | {rate:.0f}/s (lowest size) "
          f"| {met(rate >= 1000)} |")
        flat = max(v["rss_kb"] for v in loops) <= 1.2 * min(v["rss_kb"] for v in loops)
        w(f"| scale: flat memory | peak RSS {', '.join(str(v['rss_kb'] // 1024) + ' MB' for v in loops)} "
          f"for {', '.join(str(v['n']) for v in loops)} domains | {met(flat)} |")
    dist = [v for k, v in R["scale"].items() if k.startswith("distinct/")]
    if dist:
        rate = min(v["per_s"] for v in dist)
        w(f"| scale (issue 18): ≥ 5,000 six-service discoveries/s, distinct names (dNNN.example.com, "
          f"none from the answer cache), 2 cores | {rate:.0f}/s (lowest size) | {met(rate >= 5000)} |")
        flat = max(v["rss_kb"] for v in dist) <= 1.2 * min(v["rss_kb"] for v in dist)
        w(f"| scale (issue 18): flat memory, distinct names | peak RSS "
          f"{', '.join(str(v['rss_kb'] // 1024) + ' MB' for v in dist)} "
          f"for {', '.join(str(v['n']) for v in dist)} domains | {met(flat)} |")
    w("")
    w("## 1. Discovery latency (ms) and 2. DNS queries / round trips\n")
    w("The six services of the domain, all answered, with the targets' addresses. *Limit*: 2 RTT "
      "(one for the six SRV queries sent together with every DS/DNSKEY/NS the validation may need, "
      "one for the targets' A/AAAA and their zones' keys). *Cold*: a fresh process and context. "
      "*Warm*: a second discovery in the same context (DNSKEY/DS/NS and negative answers cached; mailsrv "
      "keeps no answer cache, so SRV and A/AAAA go out again and the limit stays 2 RTT). *Sequential*: the "
      "queries mailsrv sent cold, replayed one after the other with dnspython (DO bit, no validation). "
      "*dnspython*: `dns.resolver` asking the six SRV, then AAAA and A of each target, one after another, "
      "no DNSSEC. Round trips: queries grouped by arrival time in windows of RTT/2 (not counted at RTT 0).\n")
    w("| domain | RTT | limit | mailsrv cold | ratio | mailsrv warm | ratio | sequential | dnspython | "
      "queries cold / warm | round trips cold / warm | dnspython queries / RTs |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key, d in D.items():
        lim = d["limit_s"]
        rc = f"{d['cold']['median'] / lim:.2f}×" if lim else "–"
        rw = f"{d['warm']['median'] / lim:.2f}×" if lim else "–"
        q = f"{'/'.join(map(str, d['queries']['cold']))} / {'/'.join(map(str, d['queries']['warm']))}"
        rt = (f"{'/'.join(map(str, d['round_trips']['cold']))} / {'/'.join(map(str, d['round_trips']['warm']))}"
              if d["rtt_ms"] else "–")
        w(f"| {d['domain']} | {d['rtt_ms']} | {lim * 1000:.0f} | {fmt_ms(d['cold'])} | {rc} | {fmt_ms(d['warm'])} "
          f"| {rw} | {fmt_ms(d['seq'])} | {fmt_ms(d['plain'])} | {q} | {rt} | {d['plain_queries']} / "
          f"{d['plain_round_trips'] if d['plain_round_trips'] is not None else '–'} |")
    w("")
    w("One DNS exchange through the proxy (dnspython, median (min–max) ms), the floor every client here "
      "pays per round trip: " + ", ".join(f"RTT {k}: {fmt_ms(v)}" for k, v in R["discovery_exchange"].items())
      + ". mailsrv cold at RTT 0 is its local cost (process-independent: context creation excluded, "
      "validation CPU and proxy included); at RTT r it pays roughly 2 r plus that.\n")
    if os.path.exists(os.path.join(ROOT, "docs", "bench.png")):
        w("![discovery latency](bench.png)\n")
    else:
        w("(No plot: matplotlib is not installed.)\n")
    w("Cold query log of mailsrv at the largest RTT (ms after the first query, from the proxy log):\n")
    for kind in DOMAINS:
        key = f"{kind}/{max(RTTS)}"
        if key in D:
            w(f"<details><summary>{D[key]['domain']} ({kind})</summary>\n\n```\n" + "\n".join(D[key]["cold_query_list"]) +
              "\n```\n</details>\n")
    if R.get("account"):
        w("## 2b. Whole-account discovery against the slowest source it needs (issue 16)\n")
        w(account_section())
    w("## 3. Authenticity (probe + reconnect)\n")
    w(f"`mailsrv_verify_srv_authenticity(hosted.test, imaps, mail.example.net:{IMAPS_PORT})` (unsigned "
      f"zone, so the TLS probe decides; verdict {a['verdict']}, evidence {a['evidence']}, target verified "
      f"{a['target_verified']}; includes re-reading the SRV RRset at RTT 0) vs two sequential "
      f"`mailsrv_connect_with_sni` handshakes (SNI hosted.test with its SRV-ID, then SNI "
      f"mail.example.net), same context, warm. Loopback TLS without injected latency: the handshakes "
      f"are CPU-bound on both sides, so the overlap is limited by the 2 cores shared with dovecot.\n")
    w("| probe + reconnect (concurrent) | two sequential handshakes | ratio |\n|---|---|---|")
    w(f"| {fmt_ms(a['concurrent'])} ms | {fmt_ms(a['sequential'])} ms | {ar:.2f}× |\n")
    w("## 4. Certificate check throughput\n")
    w("`bench/certcheck_bench.c`: the same DER chain, the same single trusted CA (the testbed CA), the "
      "same DNS-ID `mail.example.net`; mailsrv_cert_check vs a fresh `X509_STORE_CTX` + "
      "`X509_verify_cert` (purpose SSL server) + `X509_check_host` per check. 3 runs of 2 s, alternating.\n")
    w("| chain | mailsrv checks/s | OpenSSL checks/s | ratio |\n|---|---|---|---|")
    for c in R["cert"]:
        w(f"| {c['chain']} ({c['chain_len']} sent) | {c['mailsrv']['median']:.0f} ({c['mailsrv']['min']:.0f}–"
          f"{c['mailsrv']['max']:.0f}) | {c['openssl']['median']:.0f} ({c['openssl']['min']:.0f}–"
          f"{c['openssl']['max']:.0f}) | {c['ratio']['median']:.2f}× |")
    w("")
    w("## 5. Scale\n")
    w("Discovery loop: `bench/workers.py loop`, one context, 64 threads calling `mailsrv_srv_discover` "
      "(six services each) over the five testbed domains repeated, straight to knotd (RTT 0). Peak RSS "
      f"from `/usr/bin/time -v`, including the Python interpreter ({R['scale']['python_baseline_rss_kb'] // 1024} MB "
      "with the bindings imported). `mailsrv audit` adds, per service found, a TLS probe and reconnect "
      "against dovecot/postfix on the same 2 cores.\n")
    w("| workload | domains | seconds | per second | peak RSS | failed lookups |\n|---|---|---|---|---|---|")
    for k, v in R["scale"].items():
        if isinstance(v, dict) and "n" in v:
            w(f"| {k.split('/')[0]} | {v['n']} | {v['seconds']:.1f} | {v['per_s']:.0f} | {v['rss_kb'] // 1024} MB | "
              f"{v.get('failed_services', 'exit ' + str(v.get('exit')))} |")
    w("")
    if R["scale"].get("profile"):
        w(f"CPU profile of the {SCALE[0]}-domain loop (`perf record -F 999`, self time, by object; then "
          "symbols above 1.5 %):\n")
        tidy = [re.sub(r"[\s-]+$", "", re.sub(r" {3,}", "  ", x)) for x in R["scale"]["profile_dso"] + [""] + R["scale"]["profile"]]
        w("```\n" + "\n".join(tidy) + "\n```\n")
    f = R["footprint"]
    w("## 6. Footprint\n")
    w(f"| libmailsrv.so | stripped | process RSS before ctx | context at rest | after 1 discovery | after {f['n']} more |")
    w("|---|---|---|---|---|---|")
    w(f"| {f['so_bytes'] / 1e6:.1f} MB | {f['so_stripped_bytes'] / 1e6:.1f} MB | {f['rss_base_kb']} kB | "
      f"{f['rss_ctx_rest_kb']} kB (+{f['rss_ctx_rest_kb'] - f['rss_base_kb']}) | {f['rss_after_1_kb']} kB | "
      f"{f['rss_after_n_kb']} kB (+{(f['rss_after_n_kb'] - f['rss_after_1_kb']) * 1024 / f['n']:.0f} B/request) |\n")
    w(open(os.path.join(HERE, "NOTES.md")).read() if os.path.exists(os.path.join(HERE, "NOTES.md")) else "")
    with open(os.path.join(ROOT, "docs", "BENCHMARKS.md"), "w") as fh:
        fh.write("\n".join(L) + "\n")


def account_section():
    """The account rows as a table (the report's section, and what BENCH_ONLY=account logs)."""
    L = ["`mailsrv_account_discover` (Python `Context.discover_account`, every source) against the same "
         "call with one source, for each source the answer needs: the one taken and every source ranked "
         "above it (a lower-ranked answer waits until every higher-ranked source failed). Each call on a "
         "fresh context (cold: no cached answer or key), verdicts included, median (min–max) ms over "
         f"{R['meta'].get('runs', RUNS)} runs. DNS through the delay proxy at the RTT; the documents and "
         "the ISPDB from nginx on loopback. Target (RTT > 0): whole ≤ 1.1 × the slowest needed source "
         "alone, because the sources run in parallel.\n",
         "| address | RTT | taken | whole-account | each needed source alone | slowest | ratio |",
         "|---|---|---|---|---|---|---|"]
    for key, d in R["account"].items():
        alone = "; ".join(f"{src} {fmt_ms(v)}{'' if d['single_found'].get(src) else ' (fails)'}"
                          for src, v in d["single"].items())
        L.append(f"| {d['address']} | {d['rtt_ms']} | {d['winner']} | {fmt_ms(d['all'])} | {alone} | "
                 f"{d['slowest']} | {d['ratio']:.2f}× |")
    return "\n".join(L) + "\n"


def plot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    D = R["discovery"]
    fig, axes = plt.subplots(1, len(DOMAINS), figsize=(11, 4.2), sharey=True)
    series = [("limit (2 RTT)", None), ("mailsrv cold", "cold"), ("mailsrv warm", "warm"),
              ("sequential replay", "seq"), ("dnspython", "plain")]
    for ax, kind in zip(axes, DOMAINS):
        width = 0.16
        for j, (label, k) in enumerate(series):
            xs, ys, lo, hi = [], [], [], []
            for i, rtt in enumerate(RTTS):
                d = D[f"{kind}/{rtt}"]
                xs.append(i + (j - 2) * width)
                if k is None:
                    ys.append(d["limit_s"] * 1000); lo.append(0); hi.append(0)
                else:
                    s = d[k]
                    ys.append(s["median"] * 1000)
                    lo.append((s["median"] - s["min"]) * 1000); hi.append((s["max"] - s["median"]) * 1000)
            ax.bar(xs, ys, width, yerr=[lo, hi], label=label, capsize=2)
        ax.set_xticks(range(len(RTTS)), [f"RTT {r} ms" for r in RTTS])
        ax.set_title(f"{DOMAINS[kind]} ({kind})")
        ax.set_ylabel("discovery of six services, ms")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(ROOT, "docs", "bench.png"), dpi=110)


def main():
    if sys.argv[1:] == ["--report-only"]:  # re-render docs/BENCHMARKS.md from bench/results.json
        R.update(json.load(open(os.path.join(HERE, "results.json"))))
        report()
        return
    R["meta"] = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpus": os.cpu_count(),
                 "load": " ".join(open("/proc/loadavg").read().split()[:3]),
                 "runs": RUNS, "version": subprocess.run([CLI, "version"], capture_output=True, text=True).stdout.strip()}
    os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
    only = {"discovery": discovery, "account": account}.get(ENV.get("BENCH_ONLY", ""))
    if only:
        try:
            only()
            out = f"results-{ENV['BENCH_ONLY']}.json"
            with open(os.path.join(HERE, out), "w") as f:
                json.dump(R, f, indent=1)
            if R["account"]:
                print(account_section())
            log(f"wrote bench/{out}")
        finally:
            shutil.rmtree(WORK, ignore_errors=True)
        return
    try:
        discovery()
        account()
        authenticity()
        certcheck()
        scale()
        footprint()
        with open(os.path.join(HERE, "results.json"), "w") as f:
            json.dump(R, f, indent=1)
        plot()
        report()
        log("wrote docs/BENCHMARKS.md" + (" and docs/bench.png" if os.path.exists(os.path.join(ROOT, "docs", "bench.png")) else ""))
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
