"""The sink interface and what all sinks share (HTTP, the report JSON)."""
import json
import urllib.error
import urllib.request

from ..timeutil import iso, iso_interval


class TransientError(Exception):
    """Try again later (5xx, 429, timeout, connection refused...)."""


class PermanentError(Exception):
    """The sink refuses this item for good (a 4xx other than 408/409/425/429)."""


class Sink:
    """A destination. `deliver(items)` returns when every item is durably accepted
    by the destination, or raises. It must be idempotent: after a crash the same
    items (same ids) may be delivered again. It may return {item id: reason}
    for items the destination refused for good while taking the others."""
    max_batch = 50

    def __init__(self, name, cfg, store):
        self.name = name
        self.cfg = cfg
        self.store = store
        self.timeout = float(cfg.get("timeout_s", 10))
        self.headers = dict(cfg.get("headers", {}))
        if cfg.get("token"):
            self.headers["Authorization"] = "Bearer " + cfg["token"]
        self.max_batch = int(cfg.get("batch", self.max_batch))

    def deliver(self, items):
        raise NotImplementedError

    def close(self):
        pass

    # helpers -----------------------------------------------------------
    def http(self, method, url, body=None, content_type="application/json", headers=None, ok_extra=()):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        hdrs = dict(self.headers)
        if data is not None:
            hdrs["Content-Type"] = content_type
        hdrs.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read()[:300].decode("utf-8", "replace")
            if exc.code in ok_extra:
                return exc.code, exc.headers, text.encode()
            if exc.code in (408, 425, 429) or exc.code >= 500:
                raise TransientError("HTTP %d %s" % (exc.code, text)) from None
            raise PermanentError("HTTP %d %s" % (exc.code, text)) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise TransientError("%s: %s" % (type(exc).__name__, getattr(exc, "reason", exc))) from None


def report_id(item):
    return "vistelse:%s:%d" % (item["dev_eui"], item["seq"])


def report_json(item):
    """The gateway's own JSON form of one stored interval (MQTT and webhook sinks)."""
    meta = item.get("device_meta") or {}
    zones_meta = meta.get("zones") or []
    lines_meta = meta.get("lines") or []
    data = item["data"]
    zones = []
    for k, z in enumerate(data["zones"]):
        zm = zones_meta[k] if k < len(zones_meta) and isinstance(zones_meta[k], dict) else {}
        zones.append(dict(z, index=k, name=zm.get("name", "zone %d" % k),
                          mean_occupancy=round(z["person_s"] / (item["span"] * item["interval_s"]), 4)))
    lines = []
    for k, l in enumerate(data["lines"]):
        lm = lines_meta[k] if k < len(lines_meta) and isinstance(lines_meta[k], dict) else {}
        lines.append(dict(l, index=k, name=lm.get("name", "line %d" % k)))
    out = {
        "id": report_id(item), "dev_eui": item["dev_eui"], "device": item.get("device_name") or "",
        "site": item.get("site") or "", "seq": item["seq"], "span": item["span"], "interval_s": item["interval_s"],
        "start": iso(item["start_at"]), "end": iso(item["end_at"]),
        "observed": iso_interval(item["start_at"], item["end_at"]),
        "time_estimated": bool(item["time_estimated"]), "config_version": item.get("config_version"),
        "zones": zones, "lines": lines,
    }
    if "height_classes" in data:
        out["height_classes"] = data["height_classes"]
    return out
