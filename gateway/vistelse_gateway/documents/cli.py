"""`vistelse documents`: write a site's legal documents, record a yearly review.

    vistelse documents write --config /etc/vistelse/gateway.toml --out /srv/vistelse/documents [--dev DEVEUI]
    vistelse documents review --config /etc/vistelse/gateway.toml DEVEUI --by "Anna Berg, DPO" \
        --decision continue [--date 2026-04-01] [--next 2027-04-01] [--note "..."]

`write` makes, per registered sensor, <out>/<deveui>/{dpia,sign,review}.{sv,en}.{html,pdf} and an
index.html; the gateway also serves them at /documents/<deveui>/ (linked from /register).
"""
import argparse
import datetime as dt
import os
import sys

from .. import config as config_mod
from ..store import open_store
from .facts import site_facts
from .render import DOCUMENTS, LANGS, render, to_pdf
from .review import DECISIONS, record_review

TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}


def index_html(dev_eui):
    links = "".join('<li>%s: <a href="%s.sv.html">svenska</a> (<a href="%s.sv.pdf">PDF</a>) · '
                    '<a href="%s.en.html">English</a> (<a href="%s.en.pdf">PDF</a>)</li>' % ((k,) + (k,) * 4)
                    for k in DOCUMENTS)
    return ('<!doctype html><html><head><meta charset="utf-8"><title>Documents %s</title></head><body>'
            '<h1>Documents of sensor %s</h1><ul>%s</ul><p><a href="/register">Sensor register</a></p></body></html>'
            % (dev_eui, dev_eui, links))


def document(store, cfg, dev_eui, name):
    """(bytes, content type) of one file of a sensor's documents, or None.
    name: "" or "index.html", or "<kind>.<lang>.<html|pdf>"."""
    if store.get_device(dev_eui.lower()) is None:
        return None
    if name in ("", "index.html"):
        return index_html(dev_eui.lower()).encode(), TYPES["html"]
    parts = name.split(".")
    if len(parts) != 3 or parts[0] not in DOCUMENTS or parts[1] not in LANGS or parts[2] not in TYPES:
        return None
    html = render(parts[0], parts[1], site_facts(store, cfg, dev_eui))
    return (html.encode() if parts[2] == "html" else to_pdf(html)), TYPES[parts[2]]


def write_all(store, cfg, out, devices=None, pdf=True):
    """Write every document of the given (default: all registered) sensors; -> paths."""
    paths = []
    for d in store.list_devices():
        dev = d["dev_eui"]
        if devices and dev not in devices:
            continue
        folder = os.path.join(out, dev)
        os.makedirs(folder, exist_ok=True)
        facts = site_facts(store, cfg, dev)
        with open(os.path.join(folder, "index.html"), "w") as f:
            f.write(index_html(dev))
        for kind in DOCUMENTS:
            for lang in LANGS:
                html = render(kind, lang, facts)
                base = os.path.join(folder, "%s.%s" % (kind, lang))
                with open(base + ".html", "w") as f:
                    f.write(html)
                paths.append(base + ".html")
                if pdf:
                    with open(base + ".pdf", "wb") as f:
                        f.write(to_pdf(html))
                    paths.append(base + ".pdf")
    return paths


def _date(text, what):
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise SystemExit("vistelse documents: %s must be a date YYYY-MM-DD, not %r" % (what, text))


def _parser():
    p = argparse.ArgumentParser(prog="vistelse documents", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="write the DPIA draft, sign text and review record of each sensor")
    w.add_argument("--config", required=True, help="the gateway's configuration (gateway.toml)")
    w.add_argument("--out", required=True, help="folder to write into")
    w.add_argument("--dev", action="append", help="only this DevEUI (repeatable)")
    w.add_argument("--no-pdf", action="store_true", help="HTML only")
    r = sub.add_parser("review", help="record the yearly review of a sensor in the access log")
    r.add_argument("--config", required=True)
    r.add_argument("dev_eui")
    r.add_argument("--by", required=True, help="who reviewed (name and role)")
    r.add_argument("--decision", required=True, choices=DECISIONS)
    r.add_argument("--date", help="review date, default today")
    r.add_argument("--next", help="next review due, default a year later")
    r.add_argument("--note", default="")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    cfg = config_mod.load_for("vistelse documents", args.config)
    if cfg is None:
        return 2
    store = open_store(cfg["store"])
    try:
        if args.command == "write":
            devices = [d.lower() for d in args.dev] if args.dev else None
            paths = write_all(store, cfg, args.out, devices, pdf=not args.no_pdf)
            print("%d files in %s" % (len(paths), args.out))
            return 0
        on = _date(args.date, "--date") if args.date else None
        nxt = _date(args.next, "--next") if args.next else None
        actor = "cli:%s" % os.environ.get("USER", os.getuid())
        try:
            detail = record_review(store, actor, args.dev_eui, args.by, args.decision, on, nxt, args.note)
        except ValueError as exc:
            sys.stderr.write("vistelse documents: %s\n" % exc)
            return 2
        print("review of %s recorded: %s, next due %s" % (detail["dev_eui"], detail["decision"], detail["next_due"]))
        return 0
    finally:
        store.close()
