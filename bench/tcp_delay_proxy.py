#!/usr/bin/env python3
"""A user-space TCP latency proxy (the kernel here has no netem): LADDR:LPORT forwards to
TADDR:TPORT, every chunk delayed by MS/2 milliseconds in each direction, so one request and
its answer cost one MS round trip. Standard library only.

    tcp_delay_proxy.py LADDR LPORT TADDR TPORT MS
"""
import asyncio
import sys


async def pipe(reader, writer, delay):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    laddr, lport, taddr, tport, ms = sys.argv[1:6]
    half = int(ms) / 2000.0

    async def client(r, w):
        try:
            tr, tw = await asyncio.open_connection(taddr, int(tport))
        except OSError:
            w.close()
            return
        # Connection set-up costs one round trip too (SYN/SYN-ACK), as on a real path.
        await asyncio.sleep(2 * half)
        await asyncio.gather(pipe(r, tw, half), pipe(tr, w, half))

    server = await asyncio.start_server(client, laddr, int(lport))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
