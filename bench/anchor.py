"""The anchor for the EWS benchmark: the same HTTP stack (aiohttp, same runner settings) serving
a trivial, constant SOAP response, on the same event loop (uvloop). Run as
``python -m bench.anchor PORT``."""

from __future__ import annotations

import asyncio
import sys

import uvloop
from aiohttp import web

BODY = (b'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<s:Header/><s:Body/></s:Envelope>")


async def trivial(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, headers={"Content-Type": "text/xml; charset=utf-8"})


async def main(port: int) -> None:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", trivial)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    await site.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
