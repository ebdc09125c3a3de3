"""The Grafana dashboard and the Prometheus alert rules in gateway/ops/ refer only to
metrics the gateway exports (so they cannot drift from the code), and are well formed."""
import json
import pathlib
import re

import yaml

from vistelse_gateway import metrics as metrics_mod
from vistelse_gateway.metrics import Metrics
from vistelse_gateway.store.sqlite import SqliteStore

OPS = pathlib.Path(__file__).resolve().parents[1] / "gateway" / "ops"
PROMQL_WORDS = {"sum", "by", "rate", "increase", "delta", "max", "min", "count", "time", "vector", "or", "and",
                "on", "group_left", "sort", "sort_desc", "absent", "up", "job", "outcome", "reason", "sink",
                "instance", "gateway_instance", "dev_eui", "site", "h", "m", "s"}


def exported(tmp_path):
    store = SqliteStore(tmp_path / "gw.sqlite")
    m = Metrics(instance="a")

    class Sink:
        name = "web"
    text = metrics_mod.render(m, store, [Sink()]).decode()
    store.close()
    return set(re.findall(r"^# HELP (\S+)", text, re.M))


def names_in(expr):
    expr = re.sub(r'"[^"]*"', "", expr)          # label values
    expr = re.sub(r"\[[^\]]*\]", "", expr)        # ranges
    return {w for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr) if w not in PROMQL_WORDS}


def test_dashboard_uses_exported_metrics(tmp_path):
    known = exported(tmp_path)
    dash = json.loads((OPS / "grafana/dashboards/vistelse-gateway.json").read_text())
    assert dash["uid"] == "vistelse-gateway"
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 12
    for expr in exprs:
        assert names_in(expr) <= known, expr
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for subject in ("outcome", "rejections", "outbox depth", "oldest", "silent", "battery"):
        assert subject in titles


def test_alert_rules_use_exported_metrics_and_say_what_to_do(tmp_path):
    known = exported(tmp_path)
    doc = yaml.safe_load((OPS / "prometheus/vistelse-gateway-alerts.yml").read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert len(rules) >= 8
    for rule in rules:
        assert names_in(rule["expr"]) <= known, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook"]
    provisioning = yaml.safe_load((OPS / "grafana/provisioning/dashboards/vistelse.yaml").read_text())
    assert provisioning["providers"][0]["type"] == "file"
