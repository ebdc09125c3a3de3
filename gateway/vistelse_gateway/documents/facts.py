"""What the gateway knows about one sensor, for its legal documents.

The facts come from three places and nowhere else:

* the public register entry (`web/pages.register_data`: purpose, legal
  basis, retention, owner, contact, installation and review dates);
* the node's configuration in force: the factory configuration recorded at
  provisioning (device meta `config`, zones and lines), the configuration
  downlinks the node has reported as applied, and the version it reports;
* the yearly reviews recorded in the access log (`record_review`).

Every document states the facts it claims (`CLAIMS` in documents/render.py);
tests/test_documents.py checks each is in the rendered text.
"""
import datetime as dt

from ..web import pages
from .review import reviews

# The node's defaults (firmware/vistelse_node/config.py DEFAULTS and
# release.py): what a node runs with when provisioning recorded nothing else.
NODE_DEFAULTS = {"config_version": 0, "interval_s": 300, "min_count": 5, "still_hold_s": 300}
K_MIN, K_MAX, MAX_HOLD_H = 3, 50, 24
def node_configuration(store, device):
    """The configuration in force on the node, as far as the gateway knows it."""
    meta = device["meta"] or {}
    cfg = dict(NODE_DEFAULTS)
    cfg.update(meta.get("config") or {})
    cfg["zones"] = [dict(z) if isinstance(z, dict) else {"polygon_mm": z} for z in meta.get("zones") or []]
    cfg["lines"] = [dict(ln) if isinstance(ln, dict) else {"segment_mm": ln} for ln in meta.get("lines") or []]
    state = {}
    for d in store.overview():
        if d["dev_eui"] == device["dev_eui"]:
            state = d["state"] or {}
    in_force = state.get("config_version")
    for dl in store.downlinks(device["dev_eui"]):
        if dl["status"] != "applied" or (in_force is not None and dl["config_version"] > in_force):
            continue
        c = dl["config"]
        for key in ("interval_s", "min_count", "sensor_mode", "still_hold_s"):
            if key in c:
                cfg[key] = c[key]
        cfg["config_version"] = dl["config_version"]
    if in_force is not None:
        cfg["config_version"] = in_force
    cfg["sensor"] = meta.get("sensor") or (device["register"] or {}).get("sensor") or ""
    cfg["k"] = min(max(cfg["min_count"], K_MIN), K_MAX)
    return cfg


def site_facts(store, gw_cfg, dev_eui):
    """Everything the documents of one sensor state."""
    dev_eui = dev_eui.lower()
    device = store.get_device(dev_eui)
    if device is None:
        raise ValueError("no device %s in the registry" % dev_eui)
    entry = None
    for s in pages.register_data(store, gw_cfg)["sensors"]:
        if s["id"] == dev_eui:
            entry = s
    node = node_configuration(store, device)
    return {"register": entry, "node": node, "reviews": reviews(store, dev_eui),
            "raw_hours": gw_cfg.get("retention", {}).get("raw_hours", 72),
            "generated": dt.date.today().isoformat()}
