#!/usr/bin/env python3
"""Lets containers reach services that listen on the host's loopback (moto, the vendor
simulator) without rebinding them to every interface: listens on ADDRESS (Docker's bridge
gateway, which a container reaches) for each PORT and copies bytes both ways to 127.0.0.1:PORT.
`sam local invoke` cannot share the host's network (SAM maps the emulator's port, which host
networking forbids), so this is how an invoked function reaches the local stack.

    scripts/docker-bridge.py ADDRESS PORT [PORT...]     (runs until killed)
"""
import asyncio
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def forwarder(port):
    async def handle(client_reader, client_writer):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, writer), pipe(reader, client_writer))

    return handle


async def main(address, ports):
    servers = [await asyncio.start_server(forwarder(p), address, p) for p in ports]
    print(f"docker-bridge: {address} ports {' '.join(map(str, ports))} -> 127.0.0.1", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], [int(p) for p in sys.argv[2:]]))
