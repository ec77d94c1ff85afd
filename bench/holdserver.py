"""A backend that holds connections open: it answers a client's first line with one banner line,
then reads (and discards) until the client closes. Used by the memory figure, so that every
connection through a proxy is identified, relayed both ways once, then idle.

Usage: python holdserver.py PORT   (binds 127.0.0.1 only)
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys

BANNER = b"SSH-2.0-benchhold\r\n"


def raise_nofile() -> None:
    """Lift the soft open-files limit to the hard limit: we hold thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reply once to the first line, then hold the connection until the client goes."""
    try:
        await reader.readline()
        writer.write(BANNER)
        await writer.drain()
        while await reader.read(65536):
            pass
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096, reuse_address=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    raise_nofile()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(int(sys.argv[1])))
