"""Routes:

    GET  /healthz                       no auth: pipeline alive, store reachable
    GET  /register, /register.json      no auth: the public sensor register
    GET  /metrics                       Prometheus text
    GET  /status, /api/status           devices, last seen, battery, health, rejected uplinks
    GET  /data                          plots for planners (inline SVG)
    GET  /export.csv                    report intervals as CSV (written to the access log)
    GET  /access-log                    the access log and its verification
    POST /admin/devices/{eui}/{retire|activate}
    POST /ingest/chirpstack?event=up    ChirpStack v4 HTTP integration (ingest token)
    POST /ingest/tts[/up|/join]         The Things Stack v3 webhook (ingest token)

Tokens: `Authorization: Bearer TOKEN`, or HTTP Basic with the token as
password (so a browser can open the pages).
"""
import base64
import csv
import hmac
import io
import json
import logging
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .. import metrics as metrics_mod
from ..timeutil import iso, today_utc
from . import pages

log = logging.getLogger("vistelse.web")
MAX_INGEST = 256 * 1024


class WebApp:
    def __init__(self, cfg, store, pipeline, metrics, sinks=(), workers=(), sources=()):
        self.cfg, self.store, self.pipeline, self.metrics = cfg, store, pipeline, metrics
        self.sinks, self.workers, self.sources = list(sinks), list(workers), list(sources)
        self.tokens = cfg["auth"]["tokens"]
        app = self

        class Handler(_Handler):
            pass
        Handler.app = app
        self.server = ThreadingHTTPServer((cfg["http"]["host"], cfg["http"]["port"]), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever, name="web", daemon=True)
        self._thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def authenticate(self, header, role):
        """-> actor name or None."""
        if not header:
            return None
        token = None
        if header.startswith("Bearer "):
            token = header[7:].strip()
        elif header.startswith("Basic "):
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

    def health(self):
        problems = []
        if self.pipeline is not None and not self.pipeline.alive():
            problems.append("pipeline stopped")
        if self.pipeline is not None and not self.pipeline.healthy:
            problems.append("store commits failing")
        try:
            self.store.count("reports")
        except Exception as exc:
            problems.append("store: %s" % exc)
        for w in self.workers:
            if not w.alive():
                problems.append("outbox worker %s stopped" % w.sink.name)
        return problems


class _Handler(BaseHTTPRequestHandler):
    app = None
    server_version = "vistelse-gateway"
    sys_version = ""

    def log_message(self, fmt, *args):
        log.debug("%s %s", self.address_string(), fmt % args)

    # -- plumbing -----------------------------------------------------------
    def _send(self, code, body, ctype="text/plain; charset=utf-8", headers=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code, obj):
        self._send(code, json.dumps(obj, indent=1, default=str), "application/json")

    def _auth(self, role="operator"):
        actor = self.app.authenticate(self.headers.get("Authorization", ""), role)
        if actor is None:
            self._send(401, "authentication required\n",
                       headers={"WWW-Authenticate": 'Basic realm="vistelse-gateway"'})
        return actor

    def _route(self):
        url = urllib.parse.urlsplit(self.path)
        return url.path.rstrip("/") or "/", urllib.parse.parse_qs(url.query)

    # -- GET ----------------------------------------------------------------
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path, q = self._route()
        app = self.app
        try:
            if path == "/healthz":
                problems = app.health()
                return self._json(503 if problems else 200, {"ok": not problems, "problems": problems,
                                                             "instance": app.cfg["gateway"].get("instance")})
            if path == "/register.json":
                return self._json(200, pages.register_data(app.store, app.cfg))
            if path == "/register":
                return self._send(200, pages.register_html(app.store, app.cfg), "text/html; charset=utf-8")
            if path.startswith("/documents/"):      # public, like the register they are linked from
                from ..documents import cli as documents_cli     # documents import these pages
                dev, _, name = path[len("/documents/"):].partition("/")
                found = documents_cli.document(app.store, app.cfg, dev, name)
                if found is None:
                    return self._send(404, "no such document\n")
                return self._send(200, found[0], found[1])
            if path == "/":
                return self._send(302, "", headers={"Location": "/status"})
            actor = self._auth()
            if actor is None:
                return
            if path == "/metrics":
                return self._send(200, metrics_mod.render(app.metrics, app.store, app.sinks),
                                  "text/plain; version=0.0.4; charset=utf-8")
            if path == "/api/status":
                return self._json(200, pages.status_data(app))
            if path == "/status":
                return self._send(200, pages.status_html(app), "text/html; charset=utf-8")
            if path == "/data":
                days = _int(q.get("days", ["28"])[0], 28, 1, 3660)
                site = q.get("site", [None])[0]
                return self._send(200, pages.data_html(app, days, site), "text/html; charset=utf-8")
            if path == "/export.csv":
                return self._export(actor, q)
            if path == "/access-log":
                return self._json(200, {"verification": app.store.verify_access_log(),
                                        "entries": app.store.access_log(500)})
            return self._send(404, "not found\n")
        except BrokenPipeError:
            pass
        except Exception:
            log.exception("GET %s failed", path)
            self._send(500, "internal error\n")

    def _export(self, actor, q):
        since = _date(q.get("from", [None])[0])
        until = _date(q.get("to", [None])[0], end=True)
        dev = q.get("dev_eui", [None])[0]
        if dev is not None and (len(dev) != 16 or any(c not in "0123456789abcdefABCDEF" for c in dev)):
            return self._send(400, "dev_eui must be 16 hex digits\n")
        rows = self.app.store.reports(since=since, until=until, dev_eui=dev)
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
                w.writerow(base + ["zone", k, name, z["visits"], z["person_s"], z["max_occupancy"],
                                   round(z["person_s"] / (r["span"] * r["interval_s"]), 4), dwell,
                                   "", "", "", "", hc[0], hc[1]])
            for k, l in enumerate(r["data"]["lines"]):
                name = _name(meta.get("lines"), k, "line %d" % k)
                w.writerow(base + ["line", k, name, "", "", "", "", "", l["in"], l["out"],
                                   l.get("total_in_ext", l["total_in"]), l.get("total_out_ext", l["total_out"]),
                                   hc[0], hc[1]])
        self.app.store.log_access(actor, "export.csv", {"from": q.get("from", [None])[0],
                                                        "to": q.get("to", [None])[0], "dev_eui": dev,
                                                        "intervals": len(rows), "client": self.client_address[0]})
        self._send(200, out.getvalue(), "text/csv; charset=utf-8",
                   headers={"Content-Disposition": 'attachment; filename="vistelse-%s.csv"' % today_utc()})

    # -- POST ---------------------------------------------------------------
    def do_POST(self):
        path, q = self._route()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return self._send(400, "bad Content-Length\n")
        if length < 0 or length > MAX_INGEST:
            return self._send(413, "body too large\n")
        try:
            if path.startswith("/ingest/"):
                actor = self._auth("ingest")
                if actor is None:
                    return
                body = self.rfile.read(length)
                return self._ingest(path, q, body)
            actor = self._auth()
            if actor is None:
                return
            self.rfile.read(length)
            parts = path.strip("/").split("/")
            if len(parts) == 4 and parts[:2] == ["admin", "devices"] and parts[3] in ("retire", "activate"):
                status = "retired" if parts[3] == "retire" else "active"
                try:
                    self.app.store.set_device_status(parts[2].lower(), status, actor)
                except Exception as exc:
                    return self._send(404, "%s\n" % exc)
                return self._json(200, {"dev_eui": parts[2].lower(), "status": status})
            return self._send(404, "not found\n")
        except BrokenPipeError:
            pass
        except Exception:
            log.exception("POST %s failed", path)
            self._send(500, "internal error\n")

    def _ingest(self, path, q, body):
        ctype = self.headers.get("Content-Type", "")
        if path == "/ingest/chirpstack":
            event = q.get("event", [""])[0]
            result = self.app.pipeline.submit_and_wait("chirpstack-http", event, body, ctype)
        elif path == "/ingest/tts" or path.startswith("/ingest/tts/"):
            result = self.app.pipeline.submit_and_wait("tts-webhook", path[len("/ingest/tts"):].strip("/"), body)
        else:
            return self._send(404, "not found\n")
        if result is None:
            return self._send(503, "not committed in time; send again\n", headers={"Retry-After": "5"})
        return self._json(200, result)


def _int(text, default, lo, hi):
    try:
        return max(lo, min(hi, int(text)))
    except (TypeError, ValueError):
        return default


def _date(text, end=False):
    if not text:
        return None
    import datetime as dt
    try:
        d = dt.date.fromisoformat(text)
    except ValueError:
        return None
    ts = dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc).timestamp()
    return ts + 86400 if end else ts


def _name(items, k, default):
    if isinstance(items, list) and k < len(items) and isinstance(items[k], dict):
        return items[k].get("name", default)
    return default

