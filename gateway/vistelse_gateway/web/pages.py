"""HTML pages and their JSON twins."""
import datetime as dt
import time
from html import escape

from ..documents import review
from .. import location
from ..timeutil import iso
from . import plots

try:
    from zoneinfo import ZoneInfo
except ImportError:  # pragma: no cover
    ZoneInfo = None

CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%;margin:1em 0}th,td{border-bottom:1px solid #ddd;padding:4px 6px;
text-align:left;vertical-align:top}th{background:#f3f3f3}.bad{color:#b00020;font-weight:bold}.ok{color:#1b6e20}
.warn{color:#a05a00}nav a{margin-right:1em}section{margin:2em 0}small{color:#666}"""
NAV = '<nav><a href="/status">Status</a><a href="/data">Data</a><a href="/register">Register</a>' \
      '<a href="/metrics">Metrics</a><a href="/export.csv">CSV export</a></nav>'
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DWELL_LABELS = ("0-5 s", "5-15 s", "15-60 s", "1-5 min", "5-15 min", "15-60 min", ">= 1 h")


def _page(title, body, nav=True):
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title>"
            "<meta name=\"viewport\" content=\"width=device-width\"><style>%s</style></head><body>%s<h1>%s</h1>%s"
            "</body></html>" % (escape(title), CSS, NAV if nav else "", escape(title), body))


def _ago(ts, now):
    if not ts:
        return "never"
    s = now - ts
    if s < 120:
        return "%d s ago" % s
    if s < 7200:
        return "%d min ago" % (s // 60)
    if s < 172800:
        return "%.1f h ago" % (s / 3600)
    return "%d days ago" % (s // 86400)


# -- status -------------------------------------------------------------------
def stale_after(interval_s):
    """Three missed intervals and ten minutes of grace."""
    return 3 * interval_s + 600


def status_data(app):
    """Devices with their state, and every problem the page marks, listed once under "problems".

    Staleness is judged on the clock the data was made on: a device is stale when
    its newest data lags the newest data of the gateway (all devices) by more than
    three intervals, or when the gateway has heard nothing from it for that long.
    (A demo on simulated time, or a network server replaying old uplinks, is
    therefore not "stale" merely because its data lies in the past.)"""
    now = time.time()
    overview = app.store.overview()
    data_now = max([d["state"].get("last_seen") or 0 for d in overview] or [0])
    devices, problems = [], list(app.health())
    for d in overview:
        st = d["state"]
        stale = False
        if st.get("last_seen") and st.get("interval_s") and d["status"] == "active":
            limit = stale_after(st["interval_s"])
            heard = st.get("received", st["last_seen"])
            stale = data_now - st["last_seen"] > limit or now - heard > limit
        label = "device %s (%s)" % (d["name"] or d["dev_eui"], d["site"] or "no site")
        if stale:
            problems.append("%s: no report for more than %d intervals (last data %s)" % (
                label, 3, iso(st["last_seen"])))
        if st.get("health"):
            problems.append("%s: health flags %s" % (label, ", ".join(st["health"])))
        if st.get("fcnt_warning_at"):
            problems.append("%s: frame counter went back without a join (%s)" % (label, iso(st["fcnt_warning_at"])))
        devices.append({
            "dev_eui": d["dev_eui"], "name": d["name"], "site": d["site"], "status": d["status"],
            "network": d["network"], "application": d["application"],
            "last_seen": iso(st["last_seen"]) if st.get("last_seen") else None, "stale": bool(stale),
            "battery_mv": st.get("battery_mv"), "health": st.get("health", []),
            "config_version": st.get("config_version"), "reset_cause": st.get("reset_cause"),
            "rssi": st.get("rssi"), "snr": st.get("snr"), "uplinks": st.get("uplinks", 0),
            "rejected": d["rejected"], "downlink": d["downlink"],
            "fcnt_warning": bool(st.get("fcnt_warning_at")),
        })
    outbox = app.store.outbox_stats([s.name for s in app.sinks], now) if app.sinks else {}
    for w in app.workers:
        if w.sink.name in outbox:
            outbox[w.sink.name]["last_error"] = w.last_error
    for name, s in outbox.items():
        if s["dead"]:
            problems.append("sink %s: %d report(s) refused by the platform" % (name, s["dead"]))
        if s.get("last_error"):
            problems.append("sink %s: %s" % (name, s["last_error"]))
    by_reason = app.store.quarantine_counts()
    if by_reason:
        problems.append("rejected uplinks: %s" % ", ".join("%s %d" % kv for kv in sorted(by_reason.items())))
    overdue = [s for s in register_data(app.store, app.cfg)["sensors"] if s.get("review_overdue")]
    for s in overdue:
        problems.append("yearly review of %s (%s) overdue since %s" % (s["name"] or s["id"], s["id"], s["review_due"]))
    return {"now": iso(now), "data_clock": iso(data_now) if data_now else None, "devices": devices,
            "rejected": app.store.quarantine(50), "outbox": outbox, "rejections_by_reason": by_reason,
            "problems": problems, "reviews_overdue": [s["id"] for s in overdue]}


def status_html(app):
    data = status_data(app)
    rows = []
    for d in data["devices"]:
        flags = ", ".join(d["health"]) or "-"
        cls = "bad" if d["health"] or d["stale"] else "ok"
        dl = d["downlink"]
        dl_text = "-" if not dl else "v%d %s" % (dl["config_version"], dl["status"])
        last = d["last_seen"]
        rows.append("<tr><td><code>%s</code><br><small>%s</small></td><td>%s</td><td>%s</td><td class=\"%s\">%s</td>"
                    "<td>%s</td><td class=\"%s\">%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
                        d["dev_eui"], escape(d["name"]), escape(d["site"]), d["status"],
                        "bad" if d["stale"] else "", escape(last or "never") + (" (stale)" if d["stale"] else ""),
                        "-" if d["battery_mv"] is None else "%.2f V" % (d["battery_mv"] / 1000),
                        cls, escape(flags) + (" fcnt-reset" if d["fcnt_warning"] else ""),
                        d["config_version"] if d["config_version"] is not None else "-", escape(dl_text),
                        d["rejected"]))
    rej = "".join("<tr><td>%s</td><td>%s</td><td><code>%s</code></td><td class=\"bad\">%s</td><td>%s</td></tr>" % (
        iso(r["at"]), escape(r["source"] or ""), escape(r["dev_eui"] or "?"), escape(r["reason"]),
        escape(r["detail"] or "")) for r in data["rejected"])
    ob = "".join("<tr><td>%s</td><td>%d</td><td>%.0f s</td><td>%d</td><td>%s</td></tr>" % (
        escape(name), s["depth"], s["age_s"], s["dead"], escape(s.get("last_error", ""))) for name, s in data["outbox"].items())
    problems = "".join("<li class=\"bad\">%s</li>" % escape(p) for p in data["problems"]) or "<li class=\"ok\">none</li>"
    body = ("<p><small>%s</small></p><section><h2>Problems</h2><ul>%s</ul></section>"
            "<section><h2>Devices</h2><table><tr><th>DevEUI</th><th>Site</th><th>Status</th><th>Last seen</th>"
            "<th>Battery</th><th>Health flags</th><th>Config</th><th>Downlink</th><th>Rejected</th></tr>%s</table></section>"
            "<section><h2>Outbox</h2><table><tr><th>Sink</th><th>Waiting</th><th>Oldest</th><th>Refused</th>"
            "<th>Last error</th></tr>%s</table></section>"
            "<section><h2>Rejected uplinks (latest 50)</h2><table><tr><th>Time</th><th>Source</th><th>DevEUI</th>"
            "<th>Reason</th><th>Detail</th></tr>%s</table></section>") % (
        escape(data["now"]), problems, "".join(rows) or "<tr><td colspan=9>no devices registered</td></tr>",
        ob or "<tr><td colspan=5>no sinks configured</td></tr>", rej or "<tr><td colspan=5>none</td></tr>")
    return _page("Vistelse gateway status", body)


# -- data view -----------------------------------------------------------------
def _tz(app):
    name = app.cfg.get("gateway", {}).get("timezone", "Europe/Stockholm")
    if ZoneInfo is not None:
        try:
            return ZoneInfo(name)
        except Exception:
            pass
    return dt.timezone.utc


def aggregate(reports, tz, days):
    """-> dict of the series the data view plots (also used by tests)."""
    hour_sum, hour_n = [0.0] * 24, [0] * 24
    heat_sum = [[0.0] * 24 for _ in range(7)]
    heat_n = [[0] * 24 for _ in range(7)]
    dwell = [0] * 7
    dwell_n = 0
    per_day = {}
    for r in reports:
        start = dt.datetime.fromtimestamp(r["start_at"], tz)
        duration = r["span"] * r["interval_s"]
        zones = r["data"]["zones"]
        day = start.date().isoformat()
        d = per_day.setdefault(day, {"in": 0, "out": 0, "children": 0, "adults": 0, "visits": 0})
        # A record the node merged over quiet hours (docs/privacy.md) is one
        # observation over its whole span: it says nothing about any one hour
        # in it, so only records within one clock hour go into the hourly
        # means (weighted by their length); none is spread over hours.
        last = dt.datetime.fromtimestamp(r["start_at"] + duration - 1, tz)
        if zones and (last - start).total_seconds() < 3600 and last.hour == start.hour:
            occ = sum(z["person_s"] for z in zones)
            hour_sum[start.hour] += occ
            hour_n[start.hour] += duration
            heat_sum[start.weekday()][start.hour] += occ
            heat_n[start.weekday()][start.hour] += duration
        for z in zones:
            d["visits"] += z["visits"]
            if z["dwell_hist"]:
                dwell_n += 1
                for k, c in enumerate(z["dwell_hist"]["counts"]):
                    dwell[k] += c
        for l in r["data"]["lines"]:
            d["in"] += l["in"]
            d["out"] += l["out"]
        hc = r["data"].get("height_classes")
        if hc:
            d["children"] += hc["counts"][0]
            d["adults"] += hc["counts"][1]
    days_sorted = sorted(per_day)[-days:]
    return {
        "occupancy_by_hour": [hour_sum[h] / hour_n[h] if hour_n[h] else None for h in range(24)],
        "occupancy_heatmap": [[heat_sum[w][h] / heat_n[w][h] if heat_n[w][h] else None for h in range(24)]
                              for w in range(7)],
        "dwell_counts": dwell, "dwell_histograms": dwell_n,
        "days": days_sorted,
        "in_per_day": [per_day[d]["in"] for d in days_sorted],
        "out_per_day": [per_day[d]["out"] for d in days_sorted],
        "children_share": [(per_day[d]["children"] / (per_day[d]["children"] + per_day[d]["adults"]))
                           if per_day[d]["children"] + per_day[d]["adults"] else None for d in days_sorted],
    }


def data_html(app, days, site=None):
    since = time.time() - days * 86400
    reports = [r for r in app.store.reports(since=since) if site is None or r["site"] == site]
    sites = sorted({d["site"] for d in app.store.list_devices()})
    agg = aggregate(reports, _tz(app), days)
    parts = ["<p>Last %d days%s: %d report intervals. Times in %s. <small>Sites: %s</small></p>" % (
        days, (" at " + escape(site)) if site else "", len(reports), escape(str(_tz(app))),
        " ".join('<a href="/data?site=%s&amp;days=%d">%s</a>' % (escape(s), days, escape(s or "(none)")) for s in sites))]
    if not reports:
        parts.append("<p>No data yet.</p>")
        return _page("Vistelse data", "".join(parts))
    parts.append("<section>%s</section>" % plots.bars(
        "Mean number of people present, by hour of day", ["%02d" % h for h in range(24)],
        agg["occupancy_by_hour"], unit="people", label_every=2))
    parts.append("<section>%s</section>" % plots.heatmap(
        "Mean number of people present, by weekday and hour", list(WEEKDAYS), ["%02d" % h for h in range(24)],
        agg["occupancy_heatmap"], unit="people"))
    if agg["dwell_histograms"]:
        parts.append("<section>%s</section>" % plots.bars(
            "How long visits last (all zones)", list(DWELL_LABELS), agg["dwell_counts"], unit="visits"))
    labels = [d[5:] for d in agg["days"]]
    every = max(1, len(labels) // 14)
    if any(agg["in_per_day"]) or any(agg["out_per_day"]):
        parts.append("<section>%s</section>" % plots.bars(
            "Crossings in and out per day", labels, [agg["in_per_day"], agg["out_per_day"]], unit="people",
            names=["in", "out"], label_every=every))
    if any(v is not None for v in agg["children_share"]):
        parts.append("<section>%s</section>" % plots.line(
            "Share of children (shorter than 1.40 m) per day", labels, agg["children_share"], unit="share", ymax=1))
    return _page("Vistelse data", "".join(parts))


# -- public register --------------------------------------------------------
def _date(value):
    if not value:
        return None
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return None


def measures(meta):
    zones = meta.get("zones") or []
    lines = meta.get("lines") or []
    out = []
    if zones:
        out.append("in %d zone(s) (%s): visits, person-seconds, maximum occupancy, dwell-time distribution" % (
            len(zones), ", ".join(str(z.get("name", "zone %d" % k)) for k, z in enumerate(zones) if isinstance(z, dict))))
    if lines:
        out.append("across %d line(s) (%s): people crossing in and out" % (
            len(lines), ", ".join(str(l.get("name", "line %d" % k)) for k, l in enumerate(lines) if isinstance(l, dict))))
    if meta.get("height_classes"):
        out.append("counts of children (< 1.40 m) and adults")
    return "; ".join(out) or "people counts (aggregates)"


def register_data(store, cfg):
    reg_defaults = cfg.get("register", {})
    retention = cfg.get("retention", {})
    today = dt.date.today()
    items = []
    recorded = review.latest(store)          # yearly reviews in the access log (documents/review.py)
    for d in store.list_devices():
        try:
            items.append(_register_item(d, reg_defaults, retention, today, recorded.get(d["dev_eui"])))
        except Exception as exc:      # a registry mistake shows on its own row, not as a 500 for everyone
            items.append({"id": d["dev_eui"], "name": d.get("name") or "", "status": d.get("status", ""),
                          "error": "register entry cannot be shown: %s" % exc})
    return {"title": reg_defaults.get("title", "Sensor register"), "generated": iso(time.time()), "sensors": items}


def _register_item(d, reg_defaults, retention, today, done=None):
    """`done`: the latest yearly review recorded in the access log (documents/review.py), if any."""
    r = d["register"] or {}
    meta = d["meta"] or {}
    installed = _date(r.get("installed"))
    last_review = _date(r.get("last_review")) or installed
    due = _date(r.get("review_due"))
    if done:
        last_review, due = _date(done["date"]), _date(done["next_due"])
    if due is None and last_review:
        due = last_review + dt.timedelta(days=reg_defaults.get("review_interval_days", 365))
    return {
        "id": d["dev_eui"], "name": d["name"], "status": d["status"],
        "site": d["site"], "location": location.parse(meta.get("location")), "place": str(r.get("place", d["site"])),
        "sensor": r.get("sensor", meta.get("sensor", "")),
        "measures": r.get("measures") or measures(meta),
        "personal_data": r.get("personal_data", "none: the node turns sensor frames into counts and durations "
                                                "on the device and forgets the frames; only aggregates are sent"),
        "purpose": r.get("purpose") or reg_defaults.get("purpose", ""),
        "legal_basis": r.get("legal_basis") or reg_defaults.get("legal_basis", ""),
        "retention": r.get("retention") or "raw uplinks %s hours; aggregate counts %s" % (
            retention.get("raw_hours", 72), r.get("aggregate_retention", "kept as statistics")),
        "owner": r.get("owner") or reg_defaults.get("owner", ""),
        "contact": r.get("contact") or reg_defaults.get("contact", ""),
        "installed": installed.isoformat() if installed else None,
        "last_review": last_review.isoformat() if last_review else None,
        "review_due": due.isoformat() if due else None,
        "review_overdue": bool(due and due < today and d["status"] == "active"),
        "impact_assessment": r.get("impact_assessment", ""),
        "review": {"by": done["by"], "decision": done["decision"], "date": done["date"]} if done else None,
        "documents": "/documents/%s/" % d["dev_eui"],
    }


def _register_row(s):
    loc = s["location"]
    where = escape(s["place"] or "")
    if loc:
        where += "<br><small>%.5f, %.5f</small>" % (loc["lat"], loc["lon"])
    review = escape(s["review_due"] or "not set")
    if s["review_overdue"]:
        review = '<span class="bad">%s (overdue)</span>' % review
    if s["review"]:
        review += "<br><small>last: %s, %s (%s)</small>" % (
            escape(s["review"]["date"]), escape(s["review"]["by"]), escape(s["review"]["decision"]))
    review += ('<br><small><a href="%sdpia.sv.html">konsekvensbedömning</a> · <a href="%ssign.sv.html">skylt</a>'
               ' · <a href="%sdpia.en.html">DPIA</a> · <a href="%ssign.en.html">sign</a> · '
               '<a href="%s">all documents</a></small>') % ((escape(s["documents"]),) * 5)
    return ("<tr><td>%s<br><small><code>%s</code> %s</small></td><td>%s</td><td>%s<br><small>Personal data: %s"
            "</small></td><td>%s</td><td>%s</td><td>%s</td><td>%s<br><small>%s</small></td><td>%s</td>"
            "<td>%s</td></tr>" % (
                escape(s["name"] or s["id"]), s["id"], escape(s["status"]), where, escape(s["measures"]),
                escape(s["personal_data"]), escape(s["purpose"]), escape(s["legal_basis"]),
                escape(s["retention"]), escape(s["owner"]), escape(s["contact"]),
                escape(s["installed"] or "-"), review))


def register_html(store, cfg):
    data = register_data(store, cfg)
    rows = []
    for s in data["sensors"]:
        if "error" in s:
            rows.append('<tr><td>%s<br><small><code>%s</code> %s</small></td><td colspan=8 class="bad">%s</td></tr>'
                        % (escape(s["name"] or s["id"]), escape(s["id"]), escape(s["status"]), escape(s["error"])))
            continue
        try:
            rows.append(_register_row(s))
        except Exception as exc:
            rows.append('<tr><td><code>%s</code></td><td colspan=8 class="bad">register entry cannot be shown: %s'
                        '</td></tr>' % (escape(s["id"]), escape(str(exc))))
    body = ("<p>Every sensor this gateway receives data from: what it measures, where, why, on what legal basis, how "
            "long data is kept, who is responsible and when it is next reviewed. Machine-readable: "
            "<a href=\"/register.json\">register.json</a>.</p><table><tr><th>Sensor</th><th>Where</th><th>Measures</th>"
            "<th>Purpose</th><th>Legal basis</th><th>Retention</th><th>Owner / contact</th><th>Installed</th>"
            "<th>Review due</th></tr>%s</table>") % ("".join(rows) or "<tr><td colspan=9>no sensors</td></tr>")
    return _page(data["title"], body, nav=False)
