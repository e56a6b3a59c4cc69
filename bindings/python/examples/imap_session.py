"""An IMAP session over mailsrv's asyncio streams: discover the user's IMAP server, connect
with verified TLS (implicit TLS or STARTTLS, as the SRV answer says), LOGIN, SELECT INBOX,
LOGOUT.

    python3 imap_session.py joe@example.com PASSWORD [--nameserver IP:PORT]
        [--trust-anchor FILE] [--ca-file FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import List, Optional

import mailsrv


async def command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tag: str, line: str) -> List[str]:
    """Sends one tagged IMAP command; returns the untagged lines and the tagged reply."""
    writer.write(f"{tag} {line}\r\n".encode())
    await writer.drain()
    lines: List[str] = []
    while True:
        reply = (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n")
        if not reply:
            raise ConnectionError(f"the server closed the connection during {line.split()[0]}")
        lines.append(reply)
        if reply.startswith(tag + " "):
            if not reply.startswith(f"{tag} OK"):
                raise RuntimeError(f"{line.split()[0]} failed: {reply}")
            return lines


async def session(actx: mailsrv.AsyncContext, address: str, password: str) -> int:
    """Logs in and selects INBOX; returns the number of messages in it."""
    d = await actx.discover(address)
    imap = d.preferred(mailsrv.Purpose.ACCESS)
    if imap is None or imap.service not in (mailsrv.Service.IMAPS, mailsrv.Service.IMAP):
        raise LookupError(f"no IMAP server published for {d.domain}")
    e = imap.endpoints[0]
    reader, writer = await actx.open_connection(e.target, e.port, mailsrv.Security.for_service(imap.service))
    stream: mailsrv.TlsStream = writer.get_extra_info("mailsrv_stream")
    print(f"{imap.service} {e.target}:{e.port} {stream.tls_version} {stream.matched_identity}")
    try:
        await command(reader, writer, "a1", f'LOGIN "{address}" "{password}"')
        exists: Optional[int] = None
        for line in await command(reader, writer, "a2", "SELECT INBOX"):
            if line.startswith("* ") and line.endswith(" EXISTS"):
                exists = int(line.split()[1])
        await command(reader, writer, "a3", "LOGOUT")
        return exists or 0
    finally:
        writer.close()
        await writer.wait_closed()


async def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("address")
    p.add_argument("password")
    p.add_argument("--nameserver", action="append", default=[])
    p.add_argument("--trust-anchor")
    p.add_argument("--ca-file")
    a = p.parse_args(argv)
    async with mailsrv.AsyncContext(a.nameserver, trust_anchor_file=a.trust_anchor, ca_file=a.ca_file) as actx:
        try:
            n = await session(actx, a.address, a.password)
        except TimeoutError as err:
            print(f"timed out: {err}", file=sys.stderr)
            return 1
        except mailsrv.CertificateError as err:
            print(f"certificate refused: {err}", file=sys.stderr)
            return 1
    print(f"INBOX: {n} messages")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
