"""A small TCP forwarder: ``python -m tests.support.forward LISTEN_HOST:PORT=TARGET_HOST:PORT ...``.

The multi-host tests run hosts in network namespaces; Redis and PostgreSQL listen on this
machine's loopback only, which no namespace can reach. This process, in the root namespace,
makes them reachable on an address the namespaces can route to, as a real network would."""

from __future__ import annotations

import asyncio
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def _handler(host: str, port: int):
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(host, port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))

    return handle


async def main(routes: list[str]) -> None:
    servers = []
    for route in routes:
        listen, target = route.split("=")
        listen_host, listen_port = listen.rsplit(":", 1)
        target_host, target_port = target.rsplit(":", 1)
        servers.append(
            await asyncio.start_server(
                _handler(target_host, int(target_port)), listen_host, int(listen_port)
            )
        )
    print("forwarding", " ".join(routes), flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
