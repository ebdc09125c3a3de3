"""The documents the law asks for (gateway/vistelse_gateway/documents/):
written by `vistelse documents`, served from the register page, holding
every fact of the register entry and the node's configuration they claim;
the yearly review kept in the access log, overdue reviews flagged."""
import datetime as dt
import html
import os
import re
import urllib.request

import pypdf
import pytest

from vistelse_gateway import config as config_mod
from vistelse_gateway.documents import render as doc_render
from vistelse_gateway.documents.facts import site_facts
from vistelse_gateway.documents.review import reviews
from vistelse_gateway.service import Gateway
from vistelse_gateway.store import open_store
from vistelse_gateway.testing import APP_ID, KEY, free_port
from vistelse_gateway.web import pages
from vistelse_tools import cli

TOKEN = "operator-token-0123456789"
DEV = "70b3d57ed0000021"
LATE = "70b3d57ed0000022"

CONFIG = """[gateway]
state_dir = "%(dir)s"
[http]
listen = "127.0.0.1:%(port)d"
[[auth.operator]]
name = "ops"
token = "%(token)s"
[register]
owner = "Sundbybergs stad, stadsbyggnadsnämnden"
contact = "dataskydd@example.se"
purpose = "Underlag för planering av torget: hur många vistas här, hur länge och när"
legal_basis = "GDPR art. 6.1 e (uppgift av allmänt intresse)"
"""


@pytest.fixture
def site(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG % {"dir": tmp_path, "port": free_port(), "token": TOKEN})
    cfg = config_mod.load(str(path))
    store = open_store(cfg["store"])
    store.put_device({"dev_eui": DEV, "network": "chirpstack", "application": APP_ID, "site": "Stationstorget",
                      "name": "torget-norr",
                      "meta": {"sensor": "ld2450", "zones": [{"name": "bänkarna", "polygon_mm": [[-2500, 800], [2500, 800],
                                                                                           [2500, 5000], [-2500, 5000]]}],
                               "lines": [{"name": "gångvägen", "a_mm": [0, 5000], "b_mm": [0, 800]}],
                               "config": {"config_version": 0, "interval_s": 300, "min_count": 5}},
                      "register": {"installed": "2026-01-15", "review_due": "2027-01-15", "retention": "72 h rådata",
                                   "place": "Stationstorget, norra delen"}}, KEY, "test")
    store.put_device({"dev_eui": LATE, "network": "chirpstack", "application": APP_ID, "site": "Parken", "name": "parken",
                      "register": {"installed": "2024-03-01", "review_due": "2025-03-01"}}, KEY, "test")
    # a downlink the node confirmed: k raised to 7, 10-minute intervals
    store.add_downlink({"dev_eui": DEV, "config_version": 3, "config": {"config_version": 3, "min_count": 7,
                                                                        "interval_s": 600},
                        "via": "chirpstack", "status": "applied", "actor": "test"})
    store.close()
    return str(path), cfg


def _wrapped(item, printed):
    """A long value a table cell wrapped over lines (and hyphenation-free
    joins): every word of it is printed, in order."""
    words = item.split()
    at = 0
    for w in words:
        at = printed.find(w, at)
        if at < 0:
            return False
        at += len(w)
    return True


def text_of(page):
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_documents_are_written_and_state_every_fact_they_claim(site, tmp_path):
    path, cfg = site
    assert cli.main(["documents", "review", "--config", path, DEV, "--by", "Eva Lind, dataskyddsombud",
                     "--decision", "continue", "--date", "2026-02-01", "--note", "ändamålet kvarstår"]) == 0
    out = tmp_path / "docs"
    assert cli.main(["documents", "write", "--config", path, "--out", str(out)]) == 0
    store = open_store(cfg["store"])
    try:
        facts = site_facts(store, cfg, DEV)
    finally:
        store.close()
    assert facts["node"]["k"] == 7 and facts["node"]["interval_s"] == 600 and facts["node"]["config_version"] == 3
    assert facts["register"]["last_review"] == "2026-02-01" and facts["register"]["review_due"] == "2027-02-01"
    for kind in doc_render.DOCUMENTS:
        for lang in doc_render.LANGS:
            base = out / DEV / ("%s.%s" % (kind, lang))
            page = text_of(open(str(base) + ".html").read())
            for claim in doc_render.CLAIMS[kind]:
                want = doc_render.value(facts, claim)
                for item in (want if isinstance(want, list) else [want]):
                    assert item in page, "%s.%s lacks %s = %r" % (kind, lang, claim, item)
            # the printable PDF states the same facts (text read back with pypdf)
            pdf = pypdf.PdfReader(str(base) + ".pdf")
            printed = " ".join(" ".join(p.extract_text().split()) for p in pdf.pages)
            for claim in doc_render.CLAIMS[kind]:
                want = doc_render.value(facts, claim)
                for item in (want if isinstance(want, list) else [want]):
                    assert " ".join(item.split()) in printed or _wrapped(item, printed), \
                        "%s.%s.pdf lacks %s = %r" % (kind, lang, claim, item)
    # every field of the register entry is claimed by the impact assessment
    entry_fields = set(facts["register"]) - {"location", "review_overdue", "impact_assessment", "review", "documents"}
    assert entry_fields <= {c.split(".", 1)[1] for c in doc_render.CLAIMS["dpia"] if c.startswith("register.")}
    assert set(doc_render.NODE_FIELDS) <= set(facts["node"])
    assert os.path.exists(out / LATE / "sign.sv.html") and os.path.exists(out / DEV / "index.html")


def test_the_sign_speaks_swedish_and_names_who_is_responsible(site):
    _, cfg = site
    store = open_store(cfg["store"])
    try:
        sign = text_of(doc_render.render("sign", "sv", site_facts(store, cfg, DEV)))
    finally:
        store.close()
    assert "Här mäts hur platsen används" in sign and "inga bilder" in sign and "besök, personsekunder" in sign
    assert "Sundbybergs stad" in sign and "kamerabevakningslagen (2018:1200)" in sign and "minst 7 personer" in sign


def test_review_is_kept_in_the_access_log_and_overdue_reviews_are_flagged(site):
    path, cfg = site
    store = open_store(cfg["store"])
    try:
        data = {s["id"]: s for s in pages.register_data(store, cfg)["sensors"]}
        assert data[LATE]["review_overdue"] and not data[DEV]["review_overdue"]
        with pytest.raises(ValueError, match="decision"):
            from vistelse_gateway.documents.review import record_review
            record_review(store, "test", LATE, "x", "maybe")
    finally:
        store.close()
    assert cli.main(["documents", "review", "--config", path, LATE, "--by", "Per Ek", "--decision", "change",
                     "--note", "zonen flyttas"]) == 0
    store = open_store(cfg["store"])
    try:
        data = {s["id"]: s for s in pages.register_data(store, cfg)["sensors"]}
        assert not data[LATE]["review_overdue"]
        assert data[LATE]["review_due"] == (dt.date.today() + dt.timedelta(days=365)).isoformat()
        got = reviews(store, LATE)
        assert [(r["by"], r["decision"], r["note"]) for r in got] == [("Per Ek", "change", "zonen flyttas")]
        assert store.verify_access_log()["ok"]
    finally:
        store.close()


def test_register_links_the_documents_and_the_status_page_flags_overdue(site):
    _, cfg = site
    gw = Gateway(cfg)
    gw.start()
    try:
        base = "http://127.0.0.1:%d" % gw.web.port
        with urllib.request.urlopen(base + "/register", timeout=10) as r:
            register = r.read().decode()
        assert '/documents/%s/dpia.sv.html' % DEV in register and '/documents/%s/' % LATE in register
        with urllib.request.urlopen(base + "/documents/%s/dpia.sv.html" % DEV, timeout=10) as r:
            assert "Konsekvensbedömning" in r.read().decode()
        with urllib.request.urlopen(base + "/documents/%s/sign.en.pdf" % DEV, timeout=30) as r:
            assert r.headers["Content-Type"] == "application/pdf" and r.read().startswith(b"%PDF-")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/documents/%s/secrets.txt" % DEV, timeout=10)
        assert err.value.code == 404
        req = urllib.request.Request(base + "/status", headers={"Authorization": "Bearer " + TOKEN})
        with urllib.request.urlopen(req, timeout=10) as r:
            status = r.read().decode()
        assert "yearly review of parken (%s) overdue since 2025-03-01" % LATE in status
    finally:
        gw.shutdown()
