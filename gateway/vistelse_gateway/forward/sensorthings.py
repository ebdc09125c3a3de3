"""OGC SensorThings API 1.1, as FROST-Server (the reference implementation) behaves.

Per device: one Thing (with its Location when the registry has one), one
FeatureOfInterest per zone and line (the zone's or line's geometry from the
registry, else the node's location), and one Datastream per metric. One
Sensor ("Vistelse node") and one ObservedProperty per metric are created once
per sink and reused by every Datastream. All ids are assigned by the server
(FROST's default idGenerationMode ServerGeneratedOnly ignores a client's
@iot.id: PostgresPersistenceManager.useClientSuppliedId) and remembered in
the store (sink_state).

Every Observation names its FeatureOfInterest: FROST can only generate one
from the Thing's Location and otherwise answers 400 "No FeatureOfInterest
provided, and none can be generated" (TableImpObservations, pre-insert hook).

Idempotency without client ids: each Observation carries
parameters.vistelse_id = "{dev_eui}:{seq}:{metric}". After any failure (a
timeout may have created the entity all the same) and after a restart, the
sink asks the server whether an Observation with that vistelse_id exists
(`$filter=parameters/vistelse_id eq '...'`) before posting it again; in
normal operation it posts straight away. The id of the last report fully
delivered is kept in the store, so a report is not posted twice when only
the outbox cursor failed to move.

Counts are OM_CountObservation (integer results), person-seconds
OM_Measurement, the dwell-time histogram OM_Observation (an array);
units are UCUM codes with their OGC URI (http://www.opengis.net/def/uom/UCUM/).
"""
import json
import urllib.parse

from ..location import point
from ..timeutil import iso, iso_interval
from .base import PermanentError, Sink, TransientError

OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
UCUM = "http://www.opengis.net/def/uom/UCUM/0/"
COUNT = ("{person}", "person", OM + "OM_CountObservation")
METRICS_ZONE = (
    ("visits", "Visits started", "Number of visits that started in the zone during the interval") + COUNT,
    ("person_s", "Person-seconds", "Integral of the number of people present over the interval",
     "s", "second", OM + "OM_Measurement"),
    ("max_occupancy", "Maximum occupancy", "Most people present in the zone at once") + COUNT,
    ("dwell_hist", "Dwell-time histogram",
     "Visits ended in the interval, by duration; bins start at 0, 5, 15, 60, 300, 900, 3600 s") + (
        "{person}", "person", OM + "OM_Observation"),
)
METRICS_LINE = (
    ("in", "Crossings in", "People who crossed the line in its 'in' direction") + COUNT,
    ("out", "Crossings out", "People who crossed the line in its 'out' direction") + COUNT,
)


def unit(code, name):
    return {"name": name, "symbol": code, "definition": UCUM + urllib.parse.quote(code, safe="")}


def _meta(items, k):
    return items[k] if isinstance(items, list) and k < len(items) and isinstance(items[k], dict) else {}


class SensorThingsSink(Sink):
    max_batch = 20

    def __init__(self, name, cfg, store):
        Sink.__init__(self, name, cfg, store)
        if not cfg.get("url"):
            raise ValueError("sink %r: url (the service root, e.g. .../v1.1) is required" % name)
        self.url = cfg["url"].rstrip("/")
        self.uncertain = True        # until one item went through cleanly: check before posting

    # -- entities created once --------------------------------------------------
    def _state(self, key, create):
        value = self.store.sink_state(self.name, key)
        if value is None:
            value = create()
            self.store.sink_state(self.name, key, value)
        return value

    def _create(self, path, doc):
        _, headers, body = self.http("POST", self.url + "/" + path, doc)
        return created_id(headers, body)

    def _sensor(self):
        return self._state("sensor", lambda: self._create("Sensors", {
            "name": "Vistelse node", "description": "On-device people counting; sends aggregates only",
            "encodingType": "text/plain",
            "metadata": "Vistelse people-counting node (radar or time-of-flight); counts on the device, sends "
                        "aggregates over LoRaWAN; see the gateway documentation, docs/gateway.md"}))

    def _observed_property(self, metric, label, description):
        return self._state("op:" + metric, lambda: self._create("ObservedProperties", {
            "name": label, "description": description, "definition": "urn:vistelse:metric:" + metric}))

    def _thing(self, item):
        eui = item["dev_eui"]

        def create():
            thing = {"name": "Vistelse %s" % (item.get("device_name") or eui),
                     "description": "Vistelse people-counting node at %s" % (item.get("site") or "?"),
                     "properties": {"dev_eui": eui, "site": item.get("site") or ""}}
            where = point((item.get("device_meta") or {}).get("location"))
            if where:
                thing["Locations"] = [{"name": item.get("site") or eui, "description": "installation",
                                       "encodingType": "application/geo+json", "location": where}]
            return self._create("Things", thing)
        return self._state("thing:" + eui, create)

    def _feature(self, item, kind, k):
        """FeatureOfInterest of one zone or line: its geometry, else the node's location."""
        eui = item["dev_eui"]
        meta = item.get("device_meta") or {}
        part = _meta(meta.get(kind + "s"), k)
        geometry = part.get("geometry") if isinstance(part.get("geometry"), dict) else point(meta.get("location"))
        if geometry is None:
            raise PermanentError("device %s has no location and %s %d no geometry in the registry: SensorThings "
                                 "needs a FeatureOfInterest for every Observation" % (eui, kind, k))

        def create():
            return self._create("FeaturesOfInterest", {
                "name": "%s %s" % (item.get("site") or eui, part.get("name", "%s %d" % (kind, k))),
                "description": "%s %d of Vistelse node %s" % (kind, k, eui),
                "encodingType": "application/geo+json", "feature": geometry})
        return self._state("foi:%s:%s%d" % (eui, kind, k), create)

    def _streams(self, item):
        """-> {"zone0.visits": (datastream id, feature id), ...}, creating what is missing."""
        eui, data = item["dev_eui"], item["data"]
        out = {}
        for kind, n, metrics in (("zone", len(data["zones"]), METRICS_ZONE),
                                 ("line", len(data["lines"]), METRICS_LINE)):
            for k in range(n):
                foi = self._feature(item, kind, k)
                for metric, label, description, code, uname, otype in metrics:
                    key = "%s%d.%s" % (kind, k, metric)

                    def create():
                        return self._create("Datastreams", {
                            "name": "%s %s" % (eui, key), "description": "%s %d: %s" % (kind, k, description),
                            "observationType": otype, "unitOfMeasurement": unit(code, uname),
                            "Thing": {"@iot.id": self._thing(item)}, "Sensor": {"@iot.id": self._sensor()},
                            "ObservedProperty": {"@iot.id": self._observed_property(metric, label, description)}})
                    out[key] = (self._state("ds:%s:%s" % (eui, key), create), foi)
        return out

    # -- delivery -----------------------------------------------------------
    def _exists(self, ds, vistelse_id):
        query = urllib.parse.urlencode({"$filter": "parameters/vistelse_id eq '%s'" % vistelse_id,
                                        "$select": "id", "$top": "1"}, quote_via=urllib.parse.quote)
        _, _, body = self.http("GET", "%s/Datastreams(%s)/Observations?%s" % (self.url, _key(ds), query))
        try:
            return bool(json.loads(body)["value"])
        except (ValueError, KeyError, TypeError):
            raise TransientError("SensorThings server gave no list of Observations") from None

    def deliver(self, items):
        through = self.store.sink_state(self.name, "delivered_through") or 0
        try:
            for item in items:
                if item["id"] <= through:         # delivered, but the outbox cursor did not move (store error)
                    continue
                self._deliver(item)
                self.store.sink_state(self.name, "delivered_through", item["id"])
                self.uncertain = False
        except BaseException:
            self.uncertain = True
            raise

    def _deliver(self, item):
        streams = self._streams(item)
        data = item["data"]
        phen = iso_interval(item["start_at"], item["end_at"])
        obs = []
        for k, z in enumerate(data["zones"]):
            obs += [("zone%d.visits" % k, z["visits"]), ("zone%d.person_s" % k, z["person_s"]),
                    ("zone%d.max_occupancy" % k, z["max_occupancy"])]
            if z["dwell_hist"]:
                obs.append(("zone%d.dwell_hist" % k, list(z["dwell_hist"]["counts"])))
        for k, l in enumerate(data["lines"]):
            obs += [("line%d.in" % k, l["in"]), ("line%d.out" % k, l["out"])]
        for key, result in obs:
            ds, foi = streams[key]
            vistelse_id = "%s:%d:%s" % (item["dev_eui"], item["seq"], key)
            if self.uncertain and self._exists(ds, vistelse_id):
                continue
            self.http("POST", self.url + "/Observations", {
                "phenomenonTime": phen, "resultTime": iso(item["received_at"]), "result": result,
                "Datastream": {"@iot.id": ds}, "FeatureOfInterest": {"@iot.id": foi},
                "parameters": {"vistelse_id": vistelse_id, "time_estimated": bool(item["time_estimated"])}})


def _key(value):
    """An @iot.id in a URL: numbers bare, strings quoted (OData)."""
    return str(value) if isinstance(value, int) else "'%s'" % str(value).replace("'", "''")


def created_id(headers, body):
    """The id the server assigned: from the Location header (FROST answers 201 with it), else the body."""
    loc = headers.get("Location") if headers else None
    if loc and "(" in loc:
        raw = loc[loc.rindex("(") + 1:loc.rindex(")")]
        return raw[1:-1].replace("''", "'") if raw.startswith("'") else json.loads(raw)
    try:
        return json.loads(body)["@iot.id"]
    except (ValueError, KeyError, TypeError):
        raise TransientError("SensorThings server did not say what it created") from None


__all__ = ["SensorThingsSink", "PermanentError"]
