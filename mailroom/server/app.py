"""The running server: HTTP and HTTPS listeners for EWS, the worker pool, start-up and shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

from aiohttp import web

from mailroom.access.auth import CHALLENGE, Authenticator, parse_basic
from mailroom.access.identity import Identity
from mailroom.ews import endpoint
from mailroom.store import Store

from .config import Config, split_listen
from .tls import ensure_self_signed, server_context

log = logging.getLogger(__name__)

EWS_PATH = "/ews/exchange.asmx"
_SCHEMA_FILES = {"/ews/services.wsdl": "Services.wsdl", "/ews/messages.xsd": "messages.xsd",
                 "/ews/types.xsd": "types.xsd"}
_XML = "text/xml; charset=utf-8"


class EWSServer:
    """Owns the store, the worker threads and the aiohttp application."""

    def __init__(self, store: Store, workers: int = 8,
                 on_response: Callable[[bytes, int, bytes], None] | None = None) -> None:
        self.store = store
        self.on_response = on_response  # tests hook in here to validate every response
        self.auth = Authenticator(store)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ews")
        endpoint.load_operations()
        self._schema_bytes = {path: resources.files("mailroom.ews").joinpath(f"schema/{name}").read_bytes()
                              for path, name in _SCHEMA_FILES.items()}

    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        # Paths are matched case-insensitively, as IIS does for Exchange.
        path = request.path.lower()
        if path == EWS_PATH:
            if request.method == "POST":
                return await self.ews(request)
            if request.method == "GET":
                return web.Response(status=200, text="mailroom Exchange Web Services endpoint. POST SOAP here.")
            return web.Response(status=405, headers={"Allow": "GET, POST"})
        if path in self._schema_bytes and request.method in ("GET", "HEAD"):
            return web.Response(body=self._schema_bytes[path], content_type="text/xml", charset="utf-8")
        return web.Response(status=404, text="Not found")

    async def ews(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization")
        loop = asyncio.get_running_loop()
        identity = None
        creds = parse_basic(header)
        if creds is not None:
            cached = self.auth.cache.get(*creds)
            if cached is not None:
                identity = Identity.owner(cached)
            else:
                identity = await loop.run_in_executor(self.pool, self.auth.authenticate, header)
        if identity is None:
            await request.read()
            return web.Response(status=401, headers={"WWW-Authenticate": CHALLENGE}, text="Unauthorized")
        body = await request.read()
        base_url = f"{request.scheme}://{request.host}"
        status, payload = await loop.run_in_executor(self.pool, endpoint.process, self.store, identity, body,
                                                     base_url)
        if self.on_response is not None:
            self.on_response(body, status, payload)
        return web.Response(status=status, body=payload, headers={"Content-Type": _XML})

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.store.close()


async def serve(config: Config, stop: asyncio.Event | None = None,
                ready: Callable[[list[str]], None] | None = None,
                on_response: Callable[[bytes, int, bytes], None] | None = None) -> None:
    """Run until SIGINT/SIGTERM (or ``stop``). Prints the URLs it listens on once every listener
    is bound, and hands them to ``ready``."""
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(config.database_url, pool_size=config["ews.workers"])
    server = EWSServer(store, workers=config["ews.workers"], on_response=on_response)
    runner = web.AppRunner(server.application(), access_log=None, handle_signals=False)
    await runner.setup()
    urls: list[str] = []
    http = split_listen(config["ews.http_listen"], "ews.http_listen")
    if http:
        site = web.TCPSite(runner, http[0], http[1], reuse_address=True)
        await site.start()
        urls.append(f"http://{_host(http[0])}:{_bound_port(site)}/EWS/Exchange.asmx")
    https = split_listen(config["ews.https_listen"], "ews.https_listen")
    if https:
        cert, key = _certificate(config, data_dir, https[0])
        site = web.TCPSite(runner, https[0], https[1], ssl_context=server_context(cert, key), reuse_address=True)
        await site.start()
        urls.append(f"https://{_host(https[0])}:{_bound_port(site)}/EWS/Exchange.asmx")
    print(f"mailroom ready ({store.backend} store, data in {data_dir.resolve()})", flush=True)
    for url in urls:
        print(f"  EWS  {url}", flush=True)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(urls)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        server.close()


def _certificate(config: Config, data_dir: Path, host: str) -> tuple[Path, Path]:
    if config["tls.cert_file"]:
        return Path(config["tls.cert_file"]), Path(config["tls.key_file"])
    return ensure_self_signed(data_dir / "tls", ["localhost", "127.0.0.1", "::1", host])


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # noqa: SLF001 - aiohttp exposes the bound socket only here
    return int(server.sockets[0].getsockname()[1]) if server and server.sockets else 0
