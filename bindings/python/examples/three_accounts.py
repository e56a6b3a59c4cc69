"""Three accounts at once with asyncio: discover, connect (verified TLS), LOGIN, SELECT.

    python3 three_accounts.py PASSWORD ADDRESS... [--nameserver IP:PORT] [--trust-anchor F] [--ca-file F]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import List, Optional

import mailsrv


async def check(actx: mailsrv.AsyncContext, address: str, password: str) -> str:
    try:
        imap = (await actx.discover(address, "imaps|imap")).preferred(mailsrv.Purpose.ACCESS)
        if imap is None:
            return f"{address}: no IMAP server published"
        e = imap.endpoints[0]
        reader, writer = await actx.open_connection(e.target, e.port, mailsrv.Security.for_service(imap.service))
        try:
            for tag, cmd in (("a1", f'LOGIN "{address}" "{password}"'), ("a2", "SELECT INBOX"), ("a3", "LOGOUT")):
                writer.write(f"{tag} {cmd}\r\n".encode())
                while not (line := await asyncio.wait_for(reader.readline(), 10)).startswith(tag.encode()):
                    if not line:
                        raise ConnectionError("closed by the server")
                if not line.startswith(f"{tag} OK".encode()):
                    return f"{address}: {cmd.split()[0]} refused: {line.decode().strip()}"
        finally:
            writer.close()
            await writer.wait_closed()
        return f"{address}: OK ({imap.service} {e.target}:{e.port})"
    except TimeoutError:
        return f"{address}: timed out"
    except ValueError as err:  # a bad address (InvalidArgument) or a refused certificate
        return f"{address}: {err}"
    except ConnectionError as err:
        return f"{address}: connection failed: {err}"


async def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("password")
    p.add_argument("addresses", nargs="+")
    p.add_argument("--nameserver", action="append", default=[])
    p.add_argument("--trust-anchor")
    p.add_argument("--ca-file")
    a = p.parse_args(argv)
    async with mailsrv.AsyncContext(a.nameserver, trust_anchor_file=a.trust_anchor, ca_file=a.ca_file) as actx:
        results = await asyncio.gather(*(check(actx, addr, a.password) for addr in a.addresses))
    print("\n".join(results))
    return 0 if all(": OK " in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
