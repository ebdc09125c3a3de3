"""NGSI-LD: batch upsert of CrowdFlowObserved entities (Smart Data Models).

One entity per zone and interval, and per line direction and interval
(`direction` is single-valued in the model). Entity ids are stable
(...:{dev_eui}:zone{k}:{seq}), so redelivery after a crash overwrites the
same entities: upsert is idempotent.

Standard properties: dateObserved (ISO 8601 interval "start/end"),
dateObservedFrom, dateObservedTo, peopleCount, occupancy (zones), direction
(lines), location (when the device has one), name.
Extension properties (documented in docs/gateway.md, UN/CEFACT unit codes):
  averageOccupancy  mean people present (person-seconds / duration), unitCode "IE" (person)
  maxOccupancy      most people present at once, unitCode "IE"
  personSeconds     integral of occupancy, unitCode "SEC"
  dwellTimeHistogram  counts of visits by dwell time; sub-property binEdges (lower bin edges, "SEC")
  heightClasses     [children, adults] of everyone counted at the sensor in the interval;
                    sub-property binEdges (lower edges, "MMT")
  cumulativeCount   line total since installation (gateway-extended counter)
  timeEstimated     true when the node lost its clock and the gateway estimated the interval
  refDevice         Relationship to urn:ngsi-ld:Device:vistelse:{dev_eui}
"""
from ..timeutil import iso, iso_interval
from .base import Sink, TransientError

DEFAULT_CONTEXT = [
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/context.jsonld",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
]


def _p(value, unit=None, **sub):
    prop = {"type": "Property", "value": value}
    if unit:
        prop["unitCode"] = unit
    prop.update(sub)
    return prop


def _dt(ts):
    return _p({"@type": "DateTime", "@value": iso(ts)})


def entities(item, prefix="urn:ngsi-ld:CrowdFlowObserved:vistelse", context=None, provider=None):
    eui, seq, data = item["dev_eui"], item["seq"], item["data"]
    start, end = item["start_at"], item["end_at"]
    duration = item["span"] * item["interval_s"]
    meta = item.get("device_meta") or {}
    zones_meta, lines_meta = meta.get("zones") or [], meta.get("lines") or []
    common = {
        "type": "CrowdFlowObserved",
        "dateObserved": _p(iso_interval(start, end)),
        "dateObservedFrom": _dt(start),
        "dateObservedTo": _dt(end),
        "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:vistelse:%s" % eui},
    }
    if item["time_estimated"]:
        common["timeEstimated"] = _p(True)
    loc = meta.get("location")
    if isinstance(loc, dict) and "lat" in loc and "lon" in loc:
        common["location"] = {"type": "GeoProperty",
                              "value": {"type": "Point", "coordinates": [float(loc["lon"]), float(loc["lat"])]}}
    if provider:
        common["dataProvider"] = _p(provider)
    hc = data.get("height_classes")
    if hc:
        common["heightClasses"] = _p(hc["counts"], "IE", binEdges=_p(hc["edges_mm"], "MMT"))
    out = []
    for k, z in enumerate(data["zones"]):
        zm = zones_meta[k] if k < len(zones_meta) and isinstance(zones_meta[k], dict) else {}
        e = {"id": "%s:%s:zone%d:%d" % (prefix, eui, k, seq)}
        e.update(common)
        mean = z["person_s"] / duration
        e.update({
            "name": _p(zm.get("name", "zone %d" % k)),
            "peopleCount": _p(z["visits"]),
            "occupancy": _p(round(min(1.0, mean), 4)),
            "averageOccupancy": _p(round(mean, 4), "IE"),
            "maxOccupancy": _p(z["max_occupancy"], "IE"),
            "personSeconds": _p(z["person_s"], "SEC"),
        })
        if z["dwell_hist"]:
            e["dwellTimeHistogram"] = _p(z["dwell_hist"]["counts"], "IE",
                                         binEdges=_p(z["dwell_hist"]["edges_s"], "SEC"))
        out.append(e)
    for k, l in enumerate(data["lines"]):
        lm = lines_meta[k] if k < len(lines_meta) and isinstance(lines_meta[k], dict) else {}
        in_is = lm.get("in", "inbound")
        for side, count, total in (("in", l["in"], l.get("total_in_ext", l["total_in"])),
                                   ("out", l["out"], l.get("total_out_ext", l["total_out"]))):
            direction = in_is if side == "in" else ("outbound" if in_is == "inbound" else "inbound")
            e = {"id": "%s:%s:line%d-%s:%d" % (prefix, eui, k, side, seq)}
            e.update(common)
            e.update({"name": _p("%s (%s)" % (lm.get("name", "line %d" % k), side)),
                      "peopleCount": _p(count), "direction": _p(direction),
                      "cumulativeCount": _p(total, "IE")})
            out.append(e)
    if context:
        for e in out:
            e["@context"] = context
    return out


class NgsiLdSink(Sink):
    max_batch = 50

    def __init__(self, name, cfg, store):
        Sink.__init__(self, name, cfg, store)
        if not cfg.get("url"):
            raise ValueError("sink %r: url (the context broker's base URL) is required" % name)
        self.url = cfg["url"].rstrip("/") + "/ngsi-ld/v1/entityOperations/upsert"
        self.context = cfg.get("context", DEFAULT_CONTEXT)
        self.prefix = cfg.get("id_prefix", "urn:ngsi-ld:CrowdFlowObserved:vistelse")
        self.provider = cfg.get("data_provider")
        if cfg.get("tenant"):
            self.headers["NGSILD-Tenant"] = cfg["tenant"]

    def deliver(self, items):
        batch = []
        for item in items:
            batch.extend(entities(item, self.prefix, self.context, self.provider))
        if not batch:
            return
        status, _, body = self.http("POST", self.url, batch, content_type="application/ld+json")
        if status == 207:  # some entities failed: upsert is idempotent, so retry the whole batch
            raise TransientError("partial failure (207): %s" % body[:300].decode("utf-8", "replace"))
