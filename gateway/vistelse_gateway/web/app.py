"""The gateway's HTTP surface: Starlette on uvicorn (see docs/gateway.md, "HTTP server").

Routes (add new pages to `WebApp.routes`):

    GET  /healthz                       no auth: pipeline alive, store reachable
    GET  /register, /register.json      no auth: the public sensor register
    GET  /context.jsonld                no auth: the JSON-LD @context of our NGSI-LD terms
    GET  /metrics                       Prometheus text (prometheus_client)
    GET  /status, /api/status           devices, last seen, battery, health, problems, rejected uplinks
    GET  /data                          plots for planners (inline SVG)
    GET  /export.csv                    report intervals as CSV (written to the access log)
    GET  /access-log                    the access log and its verification
    POST /admin/devices/{eui}/{retire|activate}    Bearer token only, same-origin only
    POST /ingest/chirpstack?event=up    ChirpStack v4 HTTP integration (ingest token)
    POST /ingest/tts[/up|/join]         The Things Stack v3 webhook (ingest token)

Tokens: `Authorization: Bearer TOKEN`; for reading pages also HTTP Basic
with the token as password (so a browser can open them). State-changing
routes refuse Basic (a browser resends Basic credentials to cross-site
requests; a Bearer header needs a CORS preflight we never grant) and refuse
requests whose Origin or Sec-Fetch-Site names another site: together that is
the protection against cross-site request forgery.

Store access runs on one fixed pool of threads (`http.store_threads`), each
holding one store connection for the life of the gateway: the number of
connections and open files does not grow with requests.
"""
import asyncio
import base64
import concurrent.futures
import csv
import datetime as dt
import hmac
import io
import json
import logging
import os
import re

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .. import metrics as metrics_mod
from ..ingest.spool import Spool, SpoolFull
from ..timeutil import iso, today_utc
from . import pages
from .server import ServerThread

log = logging.getLogger("vistelse.web")

SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"content-security-policy",
     b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'; form-action 'self'"),
]
HEX = re.compile(r"^[0-9a-fA-F]{16}$")
CONTEXT_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "forward", "vistelse-context.jsonld")


class HttpError(Exception):
    def __init__(self, status, text, headers=None):
        Exception.__init__(self, text)
        self.status, self.text, self.headers = status, text, headers or {}


def security_headers(app):
    """Pure ASGI middleware: the same headers on every answer, errors included."""
    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k for k, _ in message.get("headers", [])}
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in names]
            await send(message)
        return await app(scope, receive, send_with_headers)
    return wrapped


class WebApp:
    def __init__(self, cfg, store, pipeline, metrics, sinks=(), workers=(), sources=()):
        self.cfg, self.store, self.pipeline, self.metrics = cfg, store, pipeline, metrics
        self.sinks, self.workers, self.sources = list(sinks), list(workers), list(sources)
        self.tokens = cfg["auth"]["tokens"]
        http = cfg["http"]
        self.limits = http
        self.executor = concurrent.futures.ThreadPoolExecutor(http["store_threads"], thread_name_prefix="web-store")
        self.spool = Spool(os.path.join(cfg["gateway"]["state_dir"], "ingest-spool"), http["spool_max_bytes"])
        self.routes = [
            Route("/", _to_status),
            Route("/healthz", self.healthz, methods=["GET", "HEAD"]),
            Route("/register", self.register_page, methods=["GET", "HEAD"]),
            Route("/register.json", self.register_json, methods=["GET", "HEAD"]),
            Route("/context.jsonld", self.context, methods=["GET", "HEAD"]),
            # public, like the register they are linked from
            Route("/documents/{dev_eui}/{name}", self.document, methods=["GET", "HEAD"]),
            Route("/metrics", self.metrics_page, methods=["GET", "HEAD"]),
            Route("/api/status", self.api_status, methods=["GET", "HEAD"]),
            Route("/status", self.status_page, methods=["GET", "HEAD"]),
            Route("/data", self.data_page, methods=["GET", "HEAD"]),
            Route("/export.csv", self.export_csv, methods=["GET", "HEAD"]),
            Route("/access-log", self.access_log, methods=["GET", "HEAD"]),
            Route("/admin/devices/{eui}/{action}", self.admin_device, methods=["POST"]),
            Route("/ingest/chirpstack", self.ingest_chirpstack, methods=["POST"]),
            Route("/ingest/tts", self.ingest_tts, methods=["POST"]),
            Route("/ingest/tts/{what}", self.ingest_tts, methods=["POST"]),
        ]
        self.asgi = Starlette(routes=self.routes, exception_handlers={HttpError: _http_error, 500: _internal_error})
        self.server = ServerThread(security_headers(self.asgi), http["host"], http["port"],
                                   header_timeout_s=http["header_timeout_s"], keep_alive_s=http["keep_alive_s"],
                                   max_connections=http["max_connections"],
                                   max_header_bytes=http["max_header_bytes"])
        self.port = self.server.port

    def start(self):
        self.server.start()
        self.resubmit_spool()

    def stop(self):
        self.server.stop()
        self.executor.shutdown(wait=True)

    def resubmit_spool(self):
        """Messages accepted before a crash but not yet committed go in again."""
        pending = self.spool.pending()
        for path, kind, where, ctype, body, received in pending:
            self.pipeline.submit(kind, where, body, ctype, ack=lambda _r, p=path: self.spool.done(p),
                                 received=received)
        if pending:
            log.info("ingest spool: %d message(s) from before the restart submitted again", len(pending))

    async def run(self, fn, *args):
        """Blocking store work on the fixed store-thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # -- authentication --------------------------------------------------------
    def authenticate(self, header, role, allow_basic=True):
        """-> actor name or None."""
        if not header:
            return None
        token = None
        if header.startswith("Bearer "):
            token = header[7:].strip()
        elif header.startswith("Basic ") and allow_basic:
            try:
                token = base64.b64decode(header[6:]).decode("utf-8").partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                return None
        if not token:
            return None
        for known, (name, r) in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()) and r == role:
                return name
        return None

    def require(self, request, role="operator", allow_basic=True):
        actor = self.authenticate(request.headers.get("authorization", ""), role, allow_basic)
        if actor is None:
            raise HttpError(401, "authentication required\n",
                            {"WWW-Authenticate": 'Basic realm="vistelse-gateway"'} if allow_basic else
                            {"WWW-Authenticate": 'Bearer realm="vistelse-gateway"'})
        return actor

    def same_origin(self, request):
        """Refuse cross-site state changes (browsers send Origin / Sec-Fetch-Site on POST)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise HttpError(403, "cross-site request refused\n")
        origin = request.headers.get("origin")
        if origin is not None:
            host = request.headers.get("host", "")
            allowed = {"http://" + host, "https://" + host}
            public = self.cfg["http"].get("public_url", "").rstrip("/")
            if public:
                allowed.add("/".join(public.split("/")[:3]))
            if origin not in allowed:
                raise HttpError(403, "cross-site request refused (Origin %s)\n" % origin[:100])

    async def read_body(self, request, limit):
        """The whole body (chunked or not), bounded in size and in time."""
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise HttpError(400, "bad Content-Length\n")
            if int(length) > limit:
                raise HttpError(413, "body too large (at most %d bytes)\n" % limit)
        chunks, size = [], 0

        async def collect():
            nonlocal size
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HttpError(413, "body too large (at most %d bytes)\n" % limit)
                chunks.append(chunk)
        try:
            await asyncio.wait_for(collect(), self.limits["body_timeout_s"])
        except asyncio.TimeoutError:
            raise HttpError(408, "request body not received in time\n") from None
        return b"".join(chunks)

    def health(self):
        problems = []
        if self.pipeline is not None and not self.pipeline.alive():
            problems.append("pipeline stopped")
        if self.pipeline is not None and not self.pipeline.healthy:
            problems.append("store commits failing")
        try:
            # constant time on both backends (an index lookup), however large the store has grown
            current, expected = self.store.schema_version()
            if current != expected:
                problems.append("store: schema version %d, this gateway runs version %d" % (current, expected))
        except Exception as exc:
            problems.append("store: %s" % exc)
        for w in self.workers:
            if not w.alive():
                problems.append("outbox worker %s stopped" % w.sink.name)
        return problems

    # -- public ------------------------------------------------------------------
    async def healthz(self, request):
        problems = await self.run(self.health)
        return JSONResponse({"ok": not problems, "problems": problems, "instance": self.cfg["gateway"].get("instance")},
                            503 if problems else 200)

    async def register_page(self, request):
        return _html(await self.run(pages.register_html, self.store, self.cfg))

    async def register_json(self, request):
        return _json(await self.run(pages.register_data, self.store, self.cfg))

    async def document(self, request):
        from ..documents import cli as documents_cli     # the documents import these pages
        found = await self.run(documents_cli.document, self.store, self.cfg, request.path_params["dev_eui"],
                               request.path_params["name"])
        if found is None:
            raise HttpError(404, "no such document\n")
        return Response(found[0], media_type=found[1])

    async def context(self, request):
        with open(CONTEXT_FILE, "rb") as f:
            return Response(f.read(), media_type="application/ld+json",
                            headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=86400"})

    # -- operator (read) ------------------------------------------------------------
    async def metrics_page(self, request):
        self.require(request)
        body = await self.run(metrics_mod.render, self.metrics, self.store, self.sinks)
        return Response(body, media_type=metrics_mod.CONTENT_TYPE)

    async def api_status(self, request):
        self.require(request)
        return _json(await self.run(pages.status_data, self))

    async def status_page(self, request):
        self.require(request)
        return _html(await self.run(pages.status_html, self))

    async def data_page(self, request):
        self.require(request)
        days = _int(request.query_params.get("days"), 28, 1, 3660)
        return _html(await self.run(pages.data_html, self, days, request.query_params.get("site")))

    async def access_log(self, request):
        self.require(request)

        def read():
            return {"verification": self.store.verify_access_log(), "entries": self.store.access_log(500)}
        return _json(await self.run(read))

    async def export_csv(self, request):
        actor = self.require(request)
        q = request.query_params
        since = _date(q.get("from"), "from")
        until = _date(q.get("to"), "to", end=True)
        if since is not None and until is not None and until <= since:
            raise HttpError(400, "to must not be before from\n")
        dev = q.get("dev_eui")
        if dev is not None and not HEX.match(dev):
            raise HttpError(400, "dev_eui must be 16 hex digits\n")
        client = request.client.host if request.client else ""
        text = await self.run(export_csv, self.store, actor, since, until, dev,
                              {"from": q.get("from"), "to": q.get("to"), "client": client})
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="vistelse-%s.csv"' % today_utc()})

    # -- operator (change) -----------------------------------------------------------
    async def admin_device(self, request):
        self.same_origin(request)
        actor = self.require(request, allow_basic=False)
        await self.read_body(request, 4096)
        eui, action = request.path_params["eui"].lower(), request.path_params["action"]
        if action not in ("retire", "activate") or not HEX.match(eui):
            raise HttpError(404, "not found\n")
        status = "retired" if action == "retire" else "active"
        try:
            await self.run(self.store.set_device_status, eui, status, actor)
        except Exception as exc:
            raise HttpError(404, "%s\n" % exc) from None
        return JSONResponse({"dev_eui": eui, "status": status})

    # -- ingest -------------------------------------------------------------------
    async def ingest_chirpstack(self, request):
        return await self._ingest(request, "chirpstack-http", request.query_params.get("event", ""))

    async def ingest_tts(self, request):
        return await self._ingest(request, "tts-webhook", request.path_params.get("what", ""))

    async def _ingest(self, request, kind, where):
        self.require(request, "ingest")
        body = await self.read_body(request, self.limits["max_ingest_bytes"])
        ctype = request.headers.get("content-type", "")
        try:
            path = await self.run(self.spool.put, kind, where, ctype, body)
        except SpoolFull as exc:
            self.metrics.inc("vistelse_gateway_http_ingest_total", outcome="refused")
            raise HttpError(503, "%s; send again later\n" % exc, {"Retry-After": "30"}) from None
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def ack(result):         # on the pipeline thread, after the commit
            self.spool.done(path)
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(result))
        await self.run(self.pipeline.submit, kind, where, body, ctype, ack)
        try:
            result = await asyncio.wait_for(asyncio.shield(done), self.limits["ingest_wait_s"])
        except asyncio.TimeoutError:
            # on disk already: it will be committed (after a restart too); the network server must not resend
            self.metrics.inc("vistelse_gateway_http_ingest_total", outcome="spooled")
            return JSONResponse({"outcome": "queued", "detail": "stored on disk; the store commits it shortly"})
        self.metrics.inc("vistelse_gateway_http_ingest_total", outcome="committed")
        return _json(result)


# -- helpers ------------------------------------------------------------------------
async def _to_status(request):
    return RedirectResponse("/status", 302)


def _json(obj, status=200):
    return Response(json.dumps(obj, indent=1, default=str), status, media_type="application/json")


def _html(text):
    return Response(text, media_type="text/html; charset=utf-8")


async def _http_error(request, exc):
    return PlainTextResponse(exc.text, exc.status, headers=exc.headers)


async def _internal_error(request, exc):
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return PlainTextResponse("internal error\n", 500)


def _int(text, default, lo, hi):
    try:
        return max(lo, min(hi, int(text)))
    except (TypeError, ValueError):
        return default


def _date(text, name, end=False):
    """YYYY-MM-DD -> UTC timestamp (end: the day after); a bad date is an error, not "everything"."""
    if text is None or text == "":
        return None
    try:
        d = dt.date.fromisoformat(text)
    except ValueError:
        raise HttpError(400, "%s must be a date YYYY-MM-DD, not %r\n" % (name, text[:40])) from None
    ts = dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc).timestamp()
    return ts + 86400 if end else ts


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """Text that a spreadsheet would run as a formula gets a leading apostrophe
    (OWASP "CSV injection"); numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _name(items, k, default):
    if isinstance(items, list) and k < len(items) and isinstance(items[k], dict):
        return str(items[k].get("name", default))
    return default


def export_csv(store, actor, since, until, dev, detail):
    rows = store.reports(since=since, until=until, dev_eui=dev.lower() if dev else None)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["dev_eui", "site", "seq", "start", "end", "time_estimated", "kind", "index", "name",
                "visits", "person_s", "max_occupancy", "mean_occupancy", "dwell_counts",
                "in", "out", "total_in", "total_out", "children", "adults"])
    for r in rows:
        meta = r["device_meta"] or {}
        hc = (r["data"].get("height_classes") or {}).get("counts") or ["", ""]
        base = [r["dev_eui"], r["site"], r["seq"], iso(r["start_at"]), iso(r["end_at"]), int(r["time_estimated"])]
        for k, z in enumerate(r["data"]["zones"]):
            name = _name(meta.get("zones"), k, "zone %d" % k)
            dwell = " ".join(str(c) for c in z["dwell_hist"]["counts"]) if z["dwell_hist"] else ""
            w.writerow([csv_cell(v) for v in base + [
                "zone", k, name, z["visits"], z["person_s"], z["max_occupancy"],
                round(z["person_s"] / (r["span"] * r["interval_s"]), 4), dwell, "", "", "", "", hc[0], hc[1]]])
        for k, l in enumerate(r["data"]["lines"]):
            name = _name(meta.get("lines"), k, "line %d" % k)
            w.writerow([csv_cell(v) for v in base + [
                "line", k, name, "", "", "", "", "", l["in"], l["out"],
                l.get("total_in_ext", l["total_in"]), l.get("total_out_ext", l["total_out"]), hc[0], hc[1]]])
    store.log_access(actor, "export.csv", dict(detail, dev_eui=dev, intervals=len(rows)))
    return out.getvalue()
