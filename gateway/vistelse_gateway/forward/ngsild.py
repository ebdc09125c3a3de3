"""NGSI-LD: CrowdFlowObserved entities (Smart Data Models), one per zone and one per line.

Entity model (docs/gateway.md, "NGSI-LD"): each zone and each counting line
of a node is one entity with a stable id
  urn:ngsi-ld:CrowdFlowObserved:vistelse:{dev_eui}:zone{k} / ...:line{k}
that is replaced each interval by batch upsert. Every measured attribute
carries `observedAt` (the end of the interval), so the broker's temporal API
(Orion-LD with TRoE, Scorpio, Stellio) keeps the history on the time the
people were counted, not the delivery time. This is the usual FIWARE shape;
a new entity per interval would make ~864 entities per device and day.

Smart Data Models terms: dateObserved (ISO 8601 interval), dateObservedFrom,
dateObservedTo, peopleCount, occupancy (zones), peopleCountTowards /
peopleCountAway (lines: towards = the line's "in" side), direction (only when
the registry says how the walkway runs relative to the city centre),
location, name, refDevice, dataProvider.
Our own terms are defined in vistelse-context.jsonld (served by the gateway
at /context.jsonld, or sent inline): averageOccupancy, maxOccupancy,
personSeconds, dwellTimeHistogram, heightClasses, cumulativeCountTowards,
cumulativeCountAway, timeEstimated, binEdges. Ordered lists (histograms and
their bin edges) are ListProperty (NGSI-LD 1.8, clause 4.5.16) so their
order survives JSON-LD processing.

A `207 Multi-Status` answer lists per entity what failed (ETSI GS CIM 009,
BatchOperationResult: success[], errors[{entityId, error: ProblemDetails}]).
Entities refused for a reason that will not change (BadRequestData,
InvalidRequest, ...) set their report aside with the broker's reason; any
other error retries the batch (upsert is idempotent).
"""
import json
import os

from ..location import point
from ..timeutil import iso, iso_interval
from .base import Sink, TransientError

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
SDM_CONTEXT = "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/context.jsonld"
CONTEXT_FILE = os.path.join(os.path.dirname(__file__), "vistelse-context.jsonld")
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
# ProblemDetails types that mean "this entity will never be accepted as sent" (CIM 009, 5.5.2)
PERMANENT = {"BadRequestData", "InvalidRequest", "OperationNotSupported", "AlreadyExists", "TooComplexQuery",
             "TooManyResults", "NonexistentTenant"}


def own_context():
    with open(CONTEXT_FILE, encoding="utf-8") as f:
        return json.load(f)["@context"]


def _attr(kind, key, value, observed, unit, sub):
    prop = {"type": kind, key: value}
    if observed:
        prop["observedAt"] = observed
    if unit:
        prop["unitCode"] = unit
    prop.update(sub)
    return prop


def _p(value, observed=None, unit=None, **sub):
    return _attr("Property", "value", value, observed, unit, sub)


def _list(values, observed=None, unit=None, **sub):
    """Ordered values (NGSI-LD ListProperty): JSON-LD keeps the order of a valueList."""
    return _attr("ListProperty", "valueList", list(values), observed, unit, sub)


def _dt(ts):
    return _p({"@type": "DateTime", "@value": iso(ts)})


def _meta(items, k):
    return items[k] if isinstance(items, list) and k < len(items) and isinstance(items[k], dict) else {}


def entities(item, prefix="urn:ngsi-ld:CrowdFlowObserved:vistelse", context=None, provider=None):
    """-> [entity] in NGSI-LD normalised form, one per zone and line."""
    eui, data = item["dev_eui"], item["data"]
    start, end = item["start_at"], item["end_at"]
    at = iso(end)
    duration = item["span"] * item["interval_s"]
    meta = item.get("device_meta") or {}
    common = {
        "type": "CrowdFlowObserved",
        "dateObserved": _p(iso_interval(start, end), at),
        "dateObservedFrom": _dt(start),
        "dateObservedTo": _dt(end),
        "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:vistelse:%s" % eui},
        "timeEstimated": _p(bool(item["time_estimated"]), at),
    }
    where = point(meta.get("location"))
    if where:
        common["location"] = {"type": "GeoProperty", "value": where}
    if provider:
        common["dataProvider"] = _p(provider)
    hc = data.get("height_classes")
    if hc:
        common["heightClasses"] = _list(hc["counts"], at, "IE", binEdges=_list(hc["edges_mm"], unit="MMT"))
    out = []
    for k, z in enumerate(data["zones"]):
        zm = _meta(meta.get("zones"), k)
        e = {"id": "%s:%s:zone%d" % (prefix, eui, k)}
        e.update(common)
        mean = z["person_s"] / duration
        e.update({
            "name": _p(str(zm.get("name", "zone %d" % k))),
            "peopleCount": _p(z["visits"], at),
            "occupancy": _p(round(min(1.0, mean), 4), at),
            "averageOccupancy": _p(round(mean, 4), at, "IE"),
            "maxOccupancy": _p(z["max_occupancy"], at, "IE"),
            "personSeconds": _p(z["person_s"], at, "SEC"),
        })
        if z["dwell_hist"]:
            e["dwellTimeHistogram"] = _list(z["dwell_hist"]["counts"], at, "IE",
                                            binEdges=_list(z["dwell_hist"]["edges_s"], unit="SEC"))
        out.append(e)
    for k, l in enumerate(data["lines"]):
        lm = _meta(meta.get("lines"), k)
        e = {"id": "%s:%s:line%d" % (prefix, eui, k)}
        e.update(common)
        e.update({
            "name": _p(str(lm.get("name", "line %d" % k))),
            "peopleCount": _p(l["in"] + l["out"], at),
            "peopleCountTowards": _p(l["in"], at),
            "peopleCountAway": _p(l["out"], at),
            "cumulativeCountTowards": _p(l.get("total_in_ext", l["total_in"]), at, "IE"),
            "cumulativeCountAway": _p(l.get("total_out_ext", l["total_out"]), at, "IE"),
        })
        if lm.get("direction") in ("inbound", "outbound"):
            e["direction"] = _p(lm["direction"])
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
        self.context = cfg.get("context") or default_context(cfg.get("public_url", ""))
        self.prefix = cfg.get("id_prefix", "urn:ngsi-ld:CrowdFlowObserved:vistelse")
        self.provider = cfg.get("data_provider")
        if cfg.get("tenant"):
            self.headers["NGSILD-Tenant"] = cfg["tenant"]

    def deliver(self, items):
        """-> {report id: reason} for reports the broker refused for good."""
        seen = {}
        rounds = []                  # an entity id at most once per request: later intervals in later requests
        for item in items:
            for e in entities(item, self.prefix, self.context, self.provider):
                n = seen[e["id"]] = seen.get(e["id"], -1) + 1
                if n == len(rounds):
                    rounds.append({})
                rounds[n][e["id"]] = (e, item)
        refused = {}
        for batch in rounds:
            status, _, body = self.http("POST", self.url, [e for e, _ in batch.values()],
                                        content_type="application/ld+json")
            if status != 207:
                continue
            transient = []
            for err in _errors(body):
                kind = str((err.get("error") or {}).get("type", "")).replace(ERRORS, "")
                text = "%s: %s" % (kind or "error", (err.get("error") or {}).get("detail")
                                   or (err.get("error") or {}).get("title") or "")
                if kind in PERMANENT and err.get("entityId") in batch:
                    item = batch[err["entityId"]][1]
                    refused.setdefault(item["id"], "entity %s refused: %s" % (err["entityId"], text))
                else:
                    transient.append(text)
            if transient:
                raise TransientError("broker failed %d entit%s: %s" % (
                    len(transient), "y" if len(transient) == 1 else "ies", transient[0][:200]))
        return refused


def default_context(public_url=""):
    """Our terms first (served by the gateway when it has a public address, else inline), then
    Smart Data Models' Transportation context, then the NGSI-LD core context."""
    ours = public_url.rstrip("/") + "/context.jsonld" if public_url else own_context()
    return [ours, SDM_CONTEXT, CORE_CONTEXT]


def _errors(body):
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        raise TransientError("207 answer is not JSON: %r" % body[:200]) from None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        raise TransientError("207 answer without an errors list: %r" % body[:200])
    return [e for e in errors if isinstance(e, dict)]
