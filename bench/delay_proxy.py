#!/usr/bin/env python3
"""A user-space DNS latency proxy (the kernel here has no netem): UDP and TCP on LADDR:LPORT,
forwarded to TADDR:TPORT, each exchange delayed by MS milliseconds (one simulated RTT).
With --log FILE it appends one line per query: time, transport, name, type. Standard
library only. Stops on SIGTERM/SIGINT.

    delay_proxy.py LADDR LPORT TADDR TPORT MS [--log FILE]
"""
import asyncio
import struct
import sys
import time

QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 28: "AAAA", 33: "SRV", 43: "DS", 46: "RRSIG",
          47: "NSEC", 48: "DNSKEY", 52: "TLSA"}


def question(msg):
    """(name, type) of a DNS query, or ("?", "?")."""
    try:
        i, labels = 12, []
        while msg[i]:
            n = msg[i]
            labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += n + 1
        qtype = struct.unpack("!H", msg[i + 1:i + 3])[0]
        return ".".join(labels) + ".", QTYPES.get(qtype, str(qtype))
    except Exception:
        return "?", "?"


class Proxy:
    def __init__(self, target, delay, log):
        self.target, self.delay, self.log = target, delay, log

    def record(self, transport, msg):
        if self.log:
            name, qtype = question(msg)
            with open(self.log, "a") as f:
                f.write(f"{time.time():.6f} {transport} {name} {qtype}\n")


class Udp(asyncio.DatagramProtocol):
    def __init__(self, proxy):
        self.proxy = proxy

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.proxy.record("udp", data)
        asyncio.ensure_future(self.forward(data, addr))

    async def forward(self, data, addr):
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.proxy.delay)
        fut = loop.create_future()

        class Once(asyncio.DatagramProtocol):
            def datagram_received(self, d, a):
                if not fut.done():
                    fut.set_result(d)

        t, _ = await loop.create_datagram_endpoint(Once, remote_addr=self.proxy.target)
        try:
            t.sendto(data)
            reply = await asyncio.wait_for(fut, 5)
            self.transport.sendto(reply, addr)
        except asyncio.TimeoutError:
            pass
        finally:
            t.close()


async def tcp_client(proxy, reader, writer):
    try:
        while True:
            head = await reader.readexactly(2)
            body = await reader.readexactly(struct.unpack("!H", head)[0])
            proxy.record("tcp", body)
            await asyncio.sleep(proxy.delay)
            r, w = await asyncio.open_connection(*proxy.target)
            w.write(head + body)
            await w.drain()
            rhead = await r.readexactly(2)
            rbody = await r.readexactly(struct.unpack("!H", rhead)[0])
            w.close()
            writer.write(rhead + rbody)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    args = sys.argv[1:]
    log = None
    if "--log" in args:
        i = args.index("--log")
        log = args[i + 1]
        del args[i:i + 2]
    laddr, lport, taddr, tport, ms = args
    proxy = Proxy((taddr, int(tport)), int(ms) / 1000.0, log)
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Udp(proxy), local_addr=(laddr, int(lport)))
    server = await asyncio.start_server(lambda r, w: tcp_client(proxy, r, w), laddr, int(lport))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
