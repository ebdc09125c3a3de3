"""Test servers for the sinks, behaving like the real servers they stand for.

Neither an NGSI-LD broker (Orion-LD needs MongoDB, Scorpio and Stellio are JVM
services) nor FROST-Server (Java/Tomcat with PostGIS) can be installed from the
package registries this project uses, so these reproduce the documented and
source-level behaviour that matters to the gateway, with the source cited
where each rule is encoded. Failure modes for outage tests: fail_next(n,
status), slow_next(n, seconds), down() / up().
"""
import datetime as dt
import json
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from vistelse_gateway.testing import free_port

ERR = "https://uri.etsi.org/ngsi-ld/errors/"


def _is_datetime(text):
    try:
        dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        return "T" in str(text)
    except ValueError:
        return False


class _Server:
    def __init__(self):
        self.port = free_port()
        self.lock = threading.Lock()
        self.requests = 0
        self._fail, self._slow = [], []
        self.server = None
        self.up()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def fail_next(self, n, status=500):
        with self.lock:
            self._fail += [status] * n

    def slow_next(self, n, seconds):
        with self.lock:
            self._slow += [seconds] * n

    def up(self):
        owner = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _do(self, method):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner.lock:
                    owner.requests += 1
                    fail = owner._fail.pop(0) if owner._fail and method == "POST" else None
                    slow = owner._slow.pop(0) if owner._slow and method == "POST" else None
                if slow:
                    time.sleep(slow)
                if fail:
                    code, headers, out = fail, {}, b""
                else:
                    with owner.lock:
                        code, headers, out = owner.handle(method, self.path, self.headers, body)
                try:
                    self.send_response(code)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass                # the client gave up (its timeout): as a real server, carry on

            def do_POST(self):
                self._do("POST")

            def do_GET(self):
                self._do("GET")
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self):
        self.server.shutdown()
        self.server.server_close()


# -- NGSI-LD ------------------------------------------------------------------------
class NgsiLdBroker(_Server):
    """POST /ngsi-ld/v1/entityOperations/upsert as ETSI GS CIM 009 V1.8.1 clause 5.6.8 describes it
    and Orion-LD implements it (src/lib/orionld/serviceRoutines/orionldPostBatchUpsert.cpp):
    - Content-Type application/ld+json: every entity carries @context, else 400 BadRequestData
      (clause 6.3.5); the body is a JSON array (else 400).
    - each entity is checked on its own; a refused entity is reported in a 207 BatchOperationResult
      {"success": [ids], "errors": [{"entityId", "error": ProblemDetails}]} (clauses 5.2.16, 5.2.17)
      while the others are stored; all stored: 201 with the ids of new entities, else 204.
    - upsert without ?options=update replaces the entity (clause 5.6.8.4).
    - attributes: a Property needs "value", a Relationship "object", a GeoProperty a GeoJSON "value",
      a ListProperty "valueList" (clause 4.5.16); observedAt must be a DateTime (clause 4.8).
    Temporal history (what a broker with TRoE / Scorpio / Stellio keeps) is recorded per attribute
    instance with its observedAt (clause 4.5.x temporal representation)."""

    ATTR_TYPES = {"Property": "value", "Relationship": "object", "GeoProperty": "value", "ListProperty": "valueList",
                  "LanguageProperty": "languageMap", "VocabProperty": "vocab"}

    def __init__(self, refuse=None):
        self.entities = {}       # id -> entity as last upserted
        self.history = {}        # (id, attribute) -> [(observedAt, value)]
        self.refuse = refuse     # entity -> reason text or None: extra refusals (e.g. a broker's own rule)
        self.received = 0
        _Server.__init__(self)

    def _attr_errors(self, e):
        errors = []
        if not isinstance(e.get("id"), str) or ":" not in e["id"]:
            errors.append("entity id is not a URI")
        if not isinstance(e.get("type"), str):
            errors.append("entity type missing")
        for name, attr in e.items():
            if name in ("id", "type", "@context", "scope"):
                continue
            if not isinstance(attr, dict) or attr.get("type") not in self.ATTR_TYPES:
                errors.append("%s: not an attribute" % name)
                continue
            if self.ATTR_TYPES[attr["type"]] not in attr:
                errors.append("%s: %s without %s" % (name, attr["type"], self.ATTR_TYPES[attr["type"]]))
            if "observedAt" in attr and not _is_datetime(attr["observedAt"]):
                errors.append("%s: observedAt is not a DateTime" % name)
            for sub, value in attr.items():
                if isinstance(value, dict) and value.get("type") in self.ATTR_TYPES and \
                        self.ATTR_TYPES[value["type"]] not in value:
                    errors.append("%s.%s: %s without %s" % (name, sub, value["type"], self.ATTR_TYPES[value["type"]]))
        return errors

    def handle(self, method, path, headers, body):
        if method != "POST" or path.split("?")[0] != "/ngsi-ld/v1/entityOperations/upsert":
            return 404, {}, b""
        if "application/ld+json" not in headers.get("Content-Type", ""):
            return 415, {}, b""
        try:
            doc = json.loads(body)
        except ValueError:
            return 400, {"Content-Type": "application/json"}, json.dumps(
                {"type": ERR + "InvalidRequest", "title": "JSON parse error"}).encode()
        if not isinstance(doc, list):
            return 400, {"Content-Type": "application/json"}, json.dumps(
                {"type": ERR + "BadRequestData", "title": "payload body must be a JSON array"}).encode()
        success, errors, created = [], [], []
        for e in doc:
            self.received += 1
            problems = self._attr_errors(e) if isinstance(e, dict) else ["not a JSON object"]
            if isinstance(e, dict) and "@context" not in e:
                problems.append("@context missing in an application/ld+json payload")
            if not problems and self.refuse:
                reason = self.refuse(e)
                if reason:
                    problems.append(reason)
            eid = e.get("id") if isinstance(e, dict) else None
            if problems:
                errors.append({"entityId": eid, "error": {"type": ERR + "BadRequestData", "title": "Invalid entity",
                                                          "detail": "; ".join(problems), "status": 400}})
                continue
            if eid not in self.entities:
                created.append(eid)
            self.entities[eid] = e
            for name, attr in e.items():
                if isinstance(attr, dict) and "observedAt" in attr:
                    self.history.setdefault((eid, name), []).append(
                        (attr["observedAt"], attr.get("value", attr.get("valueList"))))
            success.append(eid)
        if errors:
            return 207, {"Content-Type": "application/json"}, json.dumps(
                {"success": success, "errors": errors}).encode()
        if created:
            return 201, {"Content-Type": "application/json"}, json.dumps(created).encode()
        return 204, {}, b""


# -- SensorThings ---------------------------------------------------------------------
class FrostServer(_Server):
    """SensorThings API 1.1 as FROST-Server v2.x implements it (github.com/FraunhoferIOSB/FROST-Server):
    - ids are generated by the server; with the default persistence.idGenerationMode
      ServerGeneratedOnly a client's @iot.id is ignored (PostgresPersistenceManager.useClientSuppliedId,
      docs/settings/settings.md). With ServerAndClientGenerated a duplicate id violates the primary key
      and the insert fails with 500 (id_generation="client").
    - 201 Created with a Location header .../Things(id) (SensorThings 1.1, 10.2.1).
    - a Datastream needs a Thing, a Sensor, an ObservedProperty, unitOfMeasurement and observationType;
      nested Sensor/ObservedProperty objects without @iot.id are created anew (deep insert, 10.2.1.1).
    - an Observation needs a Datastream and a result; without a FeatureOfInterest one is generated from
      the Thing's first GeoJSON Location (reused afterwards), else 400 "No FeatureOfInterest provided,
      and none can be generated." (Plugins/CoreModel/.../TableImpObservations.java, pre-insert hook,
      generateFeatureOfInterest).
    - GET .../Datastreams(id)/Observations?$filter=parameters/KEY eq 'VALUE' filters on a JSON
      property (FROST supports filtering inside parameters/properties).
    """

    ENTITY_SETS = ("Things", "Locations", "Sensors", "ObservedProperties", "Datastreams", "Observations",
                   "FeaturesOfInterest")

    def __init__(self, id_generation="server"):
        self.id_generation = id_generation
        self.db = {k: {} for k in self.ENTITY_SETS}
        self.next_id = 1
        self.generated_foi = {}  # location id -> FeatureOfInterest id
        self.received = 0
        _Server.__init__(self)

    def _new(self, kind, doc):
        client = doc.get("@iot.id")
        if self.id_generation == "client" and client is not None:
            if client in self.db[kind]:
                raise _Refused(500, "Failed to store %s: duplicate key value violates unique constraint" % kind)
            eid = client
        else:
            eid = self.next_id
            self.next_id += 1
        stored = {k: v for k, v in doc.items() if k != "@iot.id"}
        self.db[kind][eid] = stored
        return eid

    def _ref(self, kind, value, create):
        if isinstance(value, dict) and "@iot.id" in value and len(value) == 1:
            if value["@iot.id"] not in self.db[kind]:
                raise _Refused(400, "No such entity '%s' with id %s" % (kind, value["@iot.id"]))
            return value["@iot.id"]
        if isinstance(value, dict):
            return create(value)
        raise _Refused(400, "Missing %s" % kind)

    def _thing(self, doc):
        locations = [self._ref("Locations", loc, lambda l: self._new("Locations", l)) for loc in doc.get("Locations", [])]
        tid = self._new("Things", dict({k: v for k, v in doc.items() if k != "Locations"}, locations=locations))
        return tid

    def _simple(self, kind, required):
        def create(doc):
            for r in required:
                if r not in doc:
                    raise _Refused(400, "Missing required property '%s'" % r)
            return self._new(kind, doc)
        return create

    def _datastream(self, doc):
        for r in ("name", "description", "unitOfMeasurement", "observationType"):
            if r not in doc:
                raise _Refused(400, "Missing required property '%s'" % r)
        thing = self._ref("Things", doc.get("Thing"), self._thing)
        sensor = self._ref("Sensors", doc.get("Sensor"),
                           self._simple("Sensors", ("name", "description", "encodingType", "metadata")))
        op = self._ref("ObservedProperties", doc.get("ObservedProperty"),
                       self._simple("ObservedProperties", ("name", "definition", "description")))
        rest = {k: v for k, v in doc.items() if k not in ("Thing", "Sensor", "ObservedProperty")}
        return self._new("Datastreams", dict(rest, thing=thing, sensor=sensor, observedProperty=op))

    def _observation(self, doc):
        ds = self._ref("Datastreams", doc.get("Datastream"), self._datastream)
        if "result" not in doc:
            raise _Refused(400, "Missing required property 'result'")
        if "FeatureOfInterest" in doc:
            foi = self._ref("FeaturesOfInterest", doc["FeatureOfInterest"],
                            self._simple("FeaturesOfInterest", ("name", "encodingType", "feature")))
        else:
            thing = self.db["Things"][self.db["Datastreams"][ds]["thing"]]
            geo = [l for l in thing["locations"] if "geo+json" in str(self.db["Locations"][l].get("encodingType"))
                   or "vnd.geo+json" in str(self.db["Locations"][l].get("encodingType"))]
            if not geo:
                raise _Refused(400, "No FeatureOfInterest provided, and none can be generated.")
            foi = self.generated_foi.get(geo[0])
            if foi is None:
                loc = self.db["Locations"][geo[0]]
                foi = self._new("FeaturesOfInterest", {"name": loc.get("name"), "encodingType": loc["encodingType"],
                                                       "feature": loc["location"]})
                self.generated_foi[geo[0]] = foi
        if self.db["Datastreams"][ds]["observationType"].endswith("OM_CountObservation") and \
                not isinstance(doc["result"], int):
            raise _Refused(400, "OM_CountObservation needs an integer result")
        self.received += 1
        rest = {k: v for k, v in doc.items() if k not in ("Datastream", "FeatureOfInterest")}
        return self._new("Observations", dict(rest, datastream=ds, featureOfInterest=foi))

    def handle(self, method, path, headers, body):
        url = urllib.parse.urlsplit(path)
        parts = url.path.split("/")
        if len(parts) < 3 or parts[1] != "v1.1":
            return 404, {}, b""
        try:
            if method == "GET":
                return self._get(url)
            doc = json.loads(body)
            kind = parts[2]
            create = {"Things": self._thing, "Datastreams": self._datastream, "Observations": self._observation,
                      "Sensors": self._simple("Sensors", ("name", "description", "encodingType", "metadata")),
                      "ObservedProperties": self._simple("ObservedProperties", ("name", "definition", "description")),
                      "FeaturesOfInterest": self._simple("FeaturesOfInterest", ("name", "encodingType", "feature")),
                      }.get(kind)
            if create is None:
                return 404, {}, b""
            eid = create(doc)
            return 201, {"Location": "%s/v1.1/%s(%s)" % (self.url, kind, json.dumps(eid))}, b""
        except _Refused as exc:
            return exc.code, {"Content-Type": "application/json"}, json.dumps(
                {"code": exc.code, "type": "error", "message": exc.message}).encode()
        except ValueError:
            return 400, {}, b"not JSON"

    def _get(self, url):
        m = re.match(r"^/v1\.1/Datastreams\((\d+)\)/Observations$", url.path)
        if not m:
            return 404, {}, b""
        ds = int(m.group(1))
        q = urllib.parse.parse_qs(url.query)
        f = re.match(r"^parameters/(\w+) eq '(.*)'$", q.get("$filter", [""])[0])
        rows = [dict(o, **{"@iot.id": i}) for i, o in self.db["Observations"].items() if o["datastream"] == ds]
        if f:
            rows = [o for o in rows if str((o.get("parameters") or {}).get(f.group(1))) == f.group(2).replace("''", "'")]
        elif "$filter" in q:
            return 400, {}, b"filter not supported by this test server"
        return 200, {"Content-Type": "application/json"}, json.dumps({"value": rows}).encode()

    def observations(self):
        return list(self.db["Observations"].values())


class _Refused(Exception):
    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code, self.message = code, message


# -- webhook --------------------------------------------------------------------------
class WebhookReceiver(_Server):
    """A platform's webhook that keeps one copy per report id (the Idempotency-Key contract)."""

    def __init__(self):
        self.store = {}
        self.received = 0
        self.arrivals = []       # item ids in the order they arrived, redeliveries included
        _Server.__init__(self)

    def handle(self, method, path, headers, body):
        doc = json.loads(body)
        for item in doc["items"]:
            self.received += 1
            self.store[item["id"]] = item
            self.arrivals.append(item["id"])
        return 200, {}, b"{}"
