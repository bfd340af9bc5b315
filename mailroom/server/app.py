"""The running server: HTTP and HTTPS listeners for EWS, the worker pool, start-up and shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, aclosing, suppress
from importlib import resources
from pathlib import Path

import uvloop
from aiohttp import web

from mailroom.access.auth import CHALLENGE, Authenticator, parse_basic
from mailroom.access.identity import Identity
from mailroom.autodiscover import POX_PATH, SOAP_PATH, base_url, pox, soap
from mailroom.ews import endpoint
from mailroom.ews.errors import SOAPFault
from mailroom.ews.push import Pusher
from mailroom.ews.streaming import Stream
from mailroom.notify import guard, listener, optout, subscriptions
from mailroom.notify.settings import Settings
from mailroom.store import Store
from mailroom.throttling.budget import Throttled, Ticket
from mailroom.throttling.throttle import Throttle
from mailroom.transport import metrics as transport_metrics
from mailroom.transport import pickup, smtp_receive
from mailroom.transport.agents import AgentLoadError, Agents, MailItem, TransportAgent
from mailroom.transport.backpressure import BackPressure, Thresholds, standard_resources
from mailroom.transport.envelope import Submission
from mailroom.transport.headers import read_headers
from mailroom.transport.metrics import TransportMetrics
from mailroom.transport.outbound import Outbound
from mailroom.transport.queue_admin import QueueAdmin
from mailroom.transport.service import Settings as TransportSettings
from mailroom.transport.service import TransportService
from mailroom.transport.tracking import MessageTrackingLog, TrackingEvent

from .config import Config, ConfigError, default, split_listen
from .tls import ensure_self_signed, server_context

log = logging.getLogger(__name__)

EWS_PATH = "/ews/exchange.asmx"
_SCHEMA_FILES = {"/ews/services.wsdl": "Services.wsdl", "/ews/messages.xsd": "messages.xsd",
                 "/ews/types.xsd": "types.xsd"}
_XML = "text/xml; charset=utf-8"


class EWSServer:
    """Owns the store, the worker threads and the aiohttp application."""

    def __init__(self, store: Store, workers: int = 8, max_request_bytes: int = 64 * 1024 * 1024,
                 on_response: Callable[[bytes, int, bytes], None] | None = None, public_url: str = "",
                 autodiscover: bool = True, audit_owner: bool = False, throttle: Throttle | None = None,
                 max_message_bytes: int = default("transport.max_message_bytes")) -> None:
        self.store = store
        self.audit_owner = audit_owner
        self.throttle = throttle or Throttle(store)
        self.public_url = public_url
        self.max_request_bytes = max_request_bytes
        self.on_response = on_response  # tests hook in here to validate every response
        self.submit: Callable[[Submission], str] | None = None  # EWS sending's way into the transport
        self.max_message_bytes = max_message_bytes  # the transport's message size limit (MailTips)
        self.auth = Authenticator(store)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ews")
        endpoint.load_operations()
        self._schema_bytes = {path: resources.files("mailroom.ews").joinpath(f"schema/{name}").read_bytes()
                              for path, name in _SCHEMA_FILES.items()}
        self._autodiscover = {POX_PATH: pox.answer, SOAP_PATH: soap.answer} if autodiscover else {}

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.max_request_bytes)
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
        if path in self._autodiscover:
            return await self.autodiscover(request, self._autodiscover[path])
        if path in self._schema_bytes and request.method in ("GET", "HEAD"):
            return web.Response(body=self._schema_bytes[path], content_type="text/xml", charset="utf-8")
        return web.Response(status=404, text="Not found")

    async def ews(self, request: web.Request) -> web.StreamResponse:
        """Authenticate, admit the request to the caller's budget (held from receipt until the
        response is sent in full), read the body within the size limit, and answer it from a worker
        thread. An unread body is drained by aiohttp after the answer, so an early reply is safe."""
        identity = await self._identity(request)
        if identity is None:
            return _challenge()
        try:
            ticket = await self._admit(identity)
        except Throttled as exc:
            return await self._send(request, self._reply(b"", *endpoint.fault(endpoint.throttled_fault(exc))))
        status = 500
        try:
            body = await self._body(request)
            if body is None:
                too_big = SOAPFault("ErrorRequestStreamTooBig",
                                    f"The request is larger than the limit of {self.max_request_bytes} bytes.")
                status, payload = endpoint.fault(too_big)
                return await self._send(request, self._reply(b"", status, payload))
            if ticket.delay:
                await asyncio.sleep(ticket.delay)
            notifications = not optout.session_opted_out(request.headers.get(optout.SESSION_HEADER))
            status, payload = await asyncio.get_running_loop().run_in_executor(
                self.pool, endpoint.process, self.store, identity, body,
                endpoint.Request(client_ip=request.remote or "", audit_owner=self.audit_owner,
                                 notifications=notifications, submit=self.submit, ticket=ticket,
                                 max_message_bytes=self.max_message_bytes))
            if isinstance(payload, Stream):
                ticket.budget.release_connection(ticket)  # a stream is held by the hanging-connection limit
                return await self._stream(request, payload)
            return await self._send(request, self._reply(body, status, payload))
        except ConnectionResetError:  # while its body was being read: nobody to answer
            log.debug("EWS client went away before its request was read")
            return web.Response(status=400)
        finally:
            self.throttle.end(ticket, status)

    @staticmethod
    async def _send(request: web.Request, response: web.Response) -> web.Response:
        """Send the whole response now (not after the handler returns), so the budget is held until it is."""
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionResetError:
            log.debug("EWS client went away before its answer was sent")
        return response

    async def _admit(self, identity: Identity) -> Ticket:
        """The caller's budget hold: the authenticated account's (an impersonating service account
        spends its own), under its policy (read in a worker when not cached)."""
        caller = identity.caller
        policy = self.throttle.cached(caller.id)
        if policy is None:
            policy = await asyncio.get_running_loop().run_in_executor(self.pool, self.throttle.load, caller.id)
        return self.throttle.begin(caller, policy)

    async def _stream(self, request: web.Request, stream: Stream) -> web.StreamResponse:
        """Send a stream's envelopes in one chunked response as they fall due (its store reads run in
        the worker pool); a client that hangs up just ends it."""
        response = web.StreamResponse(headers={"Content-Type": _XML})
        response.enable_chunked_encoding()
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        try:
            async with aclosing(stream.envelopes(lambda next_: loop.run_in_executor(self.pool, next_))) as envelopes:
                async for envelope in envelopes:
                    await response.write(envelope)
            await response.write_eof()
        except ConnectionResetError:
            log.debug("streaming client went away")
        return response

    async def autodiscover(self, request: web.Request,
                           answer: Callable[[Store, Identity, bytes, str], tuple[int, bytes]]) -> web.Response:
        """POX or SOAP Autodiscover: Basic authentication as for EWS (clients probe for the 401), then
        the answer from a worker thread. Not passed to ``on_response``: these are not EWS responses."""
        identity = await self._identity(request)
        if identity is None:
            return _challenge()
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST"})
        body = await self._body(request)
        if body is None:
            return web.Response(status=413, text="Request too large")
        base = base_url(self.public_url, f"{request.scheme}://{request.host}")
        status, payload = await asyncio.get_running_loop().run_in_executor(
            self.pool, answer, self.store, identity, body, base)
        return web.Response(status=status, body=payload, headers={"Content-Type": _XML})

    async def _identity(self, request: web.Request) -> Identity | None:
        header = request.headers.get("Authorization")
        creds = parse_basic(header)
        if creds is None:
            return None
        cached = self.auth.cache.get(*creds)
        if cached is not None:
            return Identity.owner(cached)
        return await asyncio.get_running_loop().run_in_executor(self.pool, self.auth.authenticate, header)

    async def _body(self, request: web.Request) -> bytes | None:
        """The request body, or None when it is over ``max_request_bytes``."""
        if request.content_length is not None and request.content_length > self.max_request_bytes:
            return None
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return None

    def _reply(self, body: bytes, status: int, payload: bytes) -> web.Response:
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
    throttle = Throttle(store, config["throttling.policy_cache_seconds"], config["throttling.policy_cache_max_seconds"],
                        config["throttling.hanging_connection_limit"])
    server = EWSServer(store, workers=config["ews.workers"], max_request_bytes=config["ews.max_request_bytes"],
                       on_response=on_response, public_url=config["ews.public_url"],
                       autodiscover=config["autodiscover.enabled"], audit_owner=config["audit.log_owner_actions"],
                       throttle=throttle, max_message_bytes=config["transport.max_message_bytes"])
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
    edge = AsyncExitStack()
    try:
        shown = await _start_transport(config, server, edge)
        await _start_notifications(config, server, edge)
    except BaseException:  # e.g. a ConfigError: close what is open, so nothing is left bound
        await _close(runner, edge, server)
        raise
    print(f"mailroom ready ({store.backend} store, data in {data_dir.resolve()})", flush=True)
    for url in urls:
        print(f"  EWS  {url}", flush=True)
    for label, url, role in shown:
        print(f"  {label} {url}{role}", flush=True)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(urls + [url for _, url, _ in shown])
    try:
        await stop.wait()
    finally:
        await _close(runner, edge, server)


def run(config: Config) -> None:
    """Serve until SIGINT or SIGTERM, on uvloop (libuv's event loop): every EWS request and SMTP
    message costs less of the loop's CPU than on asyncio's own (bench/README.md)."""
    uvloop.run(serve(config))


async def _close(runner: web.AppRunner, edge: AsyncExitStack, server: EWSServer) -> None:
    await runner.cleanup()  # EWS first: a send in progress still reaches the transport
    await edge.aclose()
    server.close()


async def _start_transport(config: Config, server: EWSServer, stack: AsyncExitStack) -> list[tuple[str, str, str]]:
    """The transport's edge on this event loop (store calls in the EWS worker pool): the message
    tracking log, back pressure, metrics, the SMTP listeners and the pickup directory. Returns
    what to print: (label, url, role)."""
    data_dir = config.data_dir
    hostname = socket.getfqdn()
    tracking = MessageTrackingLog.configured(config)
    stack.callback(tracking.close)
    agents = _agents(config, tracking, hostname)
    metrics = TransportMetrics()
    outbound = Outbound(config, hostname) if config["transport.remote_delivery"] else None
    if outbound is not None:
        stack.push_async_callback(outbound.close)
    submitter = TransportService(server.store, data_dir, TransportSettings.from_config(config, hostname), tracking,
                                 server.pool, remote=outbound, metrics=metrics, agents=agents)
    await submitter.start()
    stack.push_async_callback(submitter.stop)
    server.submit = submitter.submit_threadsafe
    admin = QueueAdmin(data_dir)
    stack.callback(admin.close)
    metrics.register_queue_lengths(lambda: {q.identity: q.message_count for q in admin.queues()})
    metrics.messages_processing.set_function(submitter.processing)
    pressure = BackPressure(standard_resources(data_dir, _thresholds(config), submitter.submission_queue_length,
                                               submitter.pending_commits),
                            metrics, config["backpressure.interval_seconds"])
    if config["backpressure.enabled"]:
        pressure.meter()  # before the listeners open, so they start at the right level
        _background(stack, pressure.run())
    shown: list[tuple[str, str, str]] = []
    for role, key in (("inbound", "transport.inbound_listen"), ("submission", "transport.submission_listen")):
        listen = split_listen(config[key], key)
        if not listen:
            continue
        spec = smtp_receive.Listener(role, role == "submission", config["transport.max_recipients"], hostname)
        handler = smtp_receive.ReceiveHandler(spec, store=server.store, executor=server.pool, submitter=submitter,
                                              auth=server.auth, backpressure=pressure, tracking=tracking,
                                              metrics=metrics, agents=agents)
        tls = server_context(*_certificate(config, data_dir, listen[0]))
        smtp = await smtp_receive.start(handler, listen[0], listen[1], tls=tls,
                                        max_message_bytes=config["transport.max_message_bytes"])
        stack.callback(smtp.close)
        shown.append(("SMTP", f"smtp://{_host(listen[0])}:{smtp.sockets[0].getsockname()[1]}", f" ({role})"))
    if config["transport.pickup_dir"]:
        directory = pickup.PickupDirectory(
            data_dir / config["transport.pickup_dir"], submitter, tracking=tracking, metrics=metrics,
            backpressure=pressure, hostname=hostname, interval=config["transport.pickup_interval_seconds"],
            max_per_minute=config["transport.pickup_max_messages_per_minute"],
            max_header_bytes=config["transport.pickup_max_header_bytes"],
            max_recipients=config["transport.pickup_max_recipients"])
        _background(stack, directory.run())
    metrics_listen = split_listen(config["metrics.listen"], "metrics.listen")
    if metrics_listen:
        runner = web.AppRunner(transport_metrics.application(metrics), access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, metrics_listen[0], metrics_listen[1], reuse_address=True)
        await site.start()
        shown.append(("metrics", f"http://{_host(metrics_listen[0])}:{_bound_port(site)}/metrics", ""))
    return shown


def _agents(config: Config, tracking: MessageTrackingLog, hostname: str) -> Agents:
    """The configured transport agents, loaded once; one that cannot be loaded stops start-up. An
    agent failing on a message is an AGENTINFO record in the message tracking log."""
    def failed(agent: TransportAgent, event: str, exc: Exception, item: MailItem | None) -> None:
        tracking.record(TrackingEvent(
            "AGENTINFO", "AGENT", internal_message_id=item.internal_id if item else "",
            message_id=read_headers(item.raw).message_id if item else "", sender_address=item.mail_from if item else "",
            recipient_address=[r.address for r in item.recipients] if item else [], server_hostname=hostname,
            message_info=f"{agent.name} failed in {event}: {type(exc).__name__}: {exc}"))

    try:
        return Agents.load(config["agents.enabled"], config.agent_settings, on_error=failed)
    except AgentLoadError as exc:
        raise ConfigError(f"{config.source('agents.enabled')}: agents.enabled: {exc}") from exc


def _thresholds(config: Config) -> dict[str, Thresholds]:
    """The back-pressure thresholds from the ``backpressure.*`` options (four numbers each)."""
    found = {}
    for name in ("database_used_space", "private_bytes", "system_memory", "submission_queue_length",
                 "version_buckets"):
        key = f"backpressure.{name}"
        values = config[key]
        try:
            found[name] = Thresholds(*(float(v) for v in values))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{config.source(key)}: {key}: expected [LowToMedium, MediumToHigh, HighToMedium, "
                              f"MediumToLow], got {values!r} ({exc})") from exc
    return found


def _background(stack: AsyncExitStack, work: Coroutine[object, object, None]) -> None:
    """Run ``work`` as a task until the stack closes."""
    task = asyncio.get_running_loop().create_task(work)

    async def cancel() -> None:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(cancel)


async def _start_notifications(config: Config, server: EWSServer, stack: AsyncExitStack) -> None:
    """Push delivery on this event loop, with the configured settings; on PostgreSQL, the listener
    that brings other processes' commits to this one's streams and pushes."""
    settings = Settings.from_config(config)
    try:
        guard.from_settings(settings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    registry = subscriptions.registry(server.store)
    registry.settings = settings
    pusher = Pusher(server.store, server.pool, settings)
    stack.push_async_callback(pusher.close)
    registry.start_push = pusher.start
    if server.store.backend == "postgresql":
        listening = await listener.start(server.store)
        stack.callback(listening.cancel)


def _challenge() -> web.Response:
    return web.Response(status=401, headers={"WWW-Authenticate": CHALLENGE}, text="Unauthorized")


def _certificate(config: Config, data_dir: Path, host: str) -> tuple[Path, Path]:
    if config["tls.cert_file"]:
        return Path(config["tls.cert_file"]), Path(config["tls.key_file"])
    return ensure_self_signed(data_dir / "tls", ["localhost", "127.0.0.1", "::1", host])


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # noqa: SLF001 - aiohttp exposes the bound socket only here
    return int(server.sockets[0].getsockname()[1]) if server and server.sockets else 0
