"""OGC SensorThings API: one Thing per device, Datastreams per zone/line metric,
one Observation per metric and interval.

On first use the sink creates the Thing with its Datastreams (deep insert)
and remembers their ids. Observations carry a client-chosen `@iot.id`
derived from device, seq and metric, so a redelivery is answered with 409
(or the same entity) and counts as delivered; servers that generate ids
themselves (`client_ids = false`) may then receive a duplicate after a crash.
"""
import hashlib
import json

from ..timeutil import iso, iso_interval
from .base import PermanentError, Sink, TransientError

METRICS_ZONE = (
    ("visits", "Visits started", "count", "{person}"),
    ("person_s", "Person-seconds", "s", "s"),
    ("max_occupancy", "Maximum occupancy", "count", "{person}"),
    ("dwell_hist", "Dwell-time histogram (bins 0,5,15,60,300,900,3600 s)", "counts", "{person}"),
)
METRICS_LINE = (("in", "Crossings in", "count", "{person}"), ("out", "Crossings out", "count", "{person}"))
OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
OM_OBSERVATION = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation"


def observation_id(eui, seq, stream):
    return "vistelse-" + hashlib.sha256(("%s:%d:%s" % (eui, seq, stream)).encode()).hexdigest()[:32]


class SensorThingsSink(Sink):
    max_batch = 20

    def __init__(self, name, cfg, store):
        Sink.__init__(self, name, cfg, store)
        if not cfg.get("url"):
            raise ValueError("sink %r: url (the service root, e.g. .../v1.1) is required" % name)
        self.url = cfg["url"].rstrip("/")
        self.client_ids = bool(cfg.get("client_ids", True))

    def _streams(self, item):
        data = item["data"]
        names = []
        for k in range(len(data["zones"])):
            names += [("zone%d.%s" % (k, m), "zone %d: %s" % (k, label), unit, sym)
                      for m, label, unit, sym in METRICS_ZONE]
        for k in range(len(data["lines"])):
            names += [("line%d.%s" % (k, m), "line %d: %s" % (k, label), unit, sym)
                      for m, label, unit, sym in METRICS_LINE]
        return names

    def _ensure(self, item):
        """-> {stream key: Datastream @iot.id}, creating the Thing and missing Datastreams."""
        eui = item["dev_eui"]
        known = self.store.sink_state(self.name, "streams:" + eui) or {}
        wanted = self._streams(item)
        missing = [w for w in wanted if w[0] not in known]
        if not missing:
            return known
        thing_id = self.store.sink_state(self.name, "thing:" + eui)
        if thing_id is None:
            thing = {"name": "Vistelse %s" % (item.get("device_name") or eui),
                     "description": "Vistelse people-counting node at %s" % (item.get("site") or "?"),
                     "properties": {"dev_eui": eui, "site": item.get("site") or ""}}
            loc = (item.get("device_meta") or {}).get("location")
            if isinstance(loc, dict) and "lat" in loc:
                thing["Locations"] = [{"name": item.get("site") or eui, "description": "installation",
                                       "encodingType": "application/geo+json",
                                       "location": {"type": "Point", "coordinates": [loc["lon"], loc["lat"]]}}]
            status, headers, body = self.http("POST", self.url + "/Things", thing)
            thing_id = _created_id(headers, body)
            self.store.sink_state(self.name, "thing:" + eui, thing_id)
        for key, label, unit, sym in missing:
            ds = {"name": "%s %s" % (eui, key), "description": label,
                  "observationType": OM_OBSERVATION if key.endswith("dwell_hist") else OM_MEASUREMENT,
                  "unitOfMeasurement": {"name": unit, "symbol": sym, "definition": "http://unitsofmeasure.org/ucum.html"},
                  "Thing": {"@iot.id": thing_id},
                  "Sensor": {"name": "Vistelse node", "description": "on-device people counting",
                             "encodingType": "text/html", "metadata": "https://example.invalid/vistelse"},
                  "ObservedProperty": {"name": label, "description": label,
                                       "definition": "urn:vistelse:metric:" + key.split(".", 1)[1]}}
            status, headers, body = self.http("POST", self.url + "/Datastreams", ds)
            known[key] = _created_id(headers, body)
            self.store.sink_state(self.name, "streams:" + eui, known)
        return known

    def deliver(self, items):
        for item in items:
            streams = self._ensure(item)
            data = item["data"]
            phen = iso_interval(item["start_at"], item["end_at"])
            obs = []
            for k, z in enumerate(data["zones"]):
                obs += [("zone%d.visits" % k, z["visits"]), ("zone%d.person_s" % k, z["person_s"]),
                        ("zone%d.max_occupancy" % k, z["max_occupancy"])]
                if z["dwell_hist"]:
                    obs.append(("zone%d.dwell_hist" % k, z["dwell_hist"]["counts"]))
            for k, l in enumerate(data["lines"]):
                obs += [("line%d.in" % k, l["in"]), ("line%d.out" % k, l["out"])]
            for key, result in obs:
                doc = {"phenomenonTime": phen, "resultTime": iso(item["received_at"]), "result": result,
                       "Datastream": {"@iot.id": streams[key]},
                       "parameters": {"vistelse_id": "%s:%d:%s" % (item["dev_eui"], item["seq"], key),
                                      "time_estimated": bool(item["time_estimated"])}}
                if self.client_ids:
                    doc["@iot.id"] = observation_id(item["dev_eui"], item["seq"], key)
                self.http("POST", self.url + "/Observations", doc, ok_extra=(409,))


def _created_id(headers, body):
    loc = headers.get("Location") if headers else None
    if loc and "(" in loc:
        raw = loc[loc.rindex("(") + 1:loc.rindex(")")]
        return json.loads(raw) if not raw.startswith("'") else raw.strip("'")
    try:
        return json.loads(body)["@iot.id"]
    except (ValueError, KeyError, TypeError):
        raise TransientError("SensorThings server did not say what it created") from None


__all__ = ["SensorThingsSink", "PermanentError"]
