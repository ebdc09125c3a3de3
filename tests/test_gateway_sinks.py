"""The sinks against servers that behave like the real ones (tests/sink_servers.py):
NGSI-LD as Orion-LD / ETSI CIM 009 answer, SensorThings as FROST-Server does; what is
sent is checked against the official Smart Data Models CrowdFlowObserved JSON Schema."""
import datetime as dt
import json
import pathlib
import time

import jsonschema
import pytest
import referencing
from sink_servers import FrostServer, NgsiLdBroker

from vistelse_gateway.forward import OutboxWorker, build_sinks
from vistelse_gateway.forward.ngsild import entities, own_context
from vistelse_gateway.forward.sensorthings import SensorThingsSink
from vistelse_gateway.metrics import Metrics
from vistelse_gateway.pipeline import Item, Pipeline
from vistelse_gateway.store.sqlite import SqliteStore
from vistelse_gateway.testing import APP_ID, KEY, chirpstack_uplink, cs_json, cs_topic, frame, report

DATA = pathlib.Path(__file__).parent / "data" / "smart-data-models"
EUI = bytes.fromhex("70b3d57ed0000031")
EUI_NOLOC = bytes.fromhex("70b3d57ed0000032")
EUI_BARE = bytes.fromhex("70b3d57ed0000033")
ZONE = {"type": "Polygon", "coordinates": [[[18.0, 59.3], [18.001, 59.3], [18.001, 59.301], [18.0, 59.3]]]}
LINE = {"type": "LineString", "coordinates": [[18.0, 59.3], [18.001, 59.3]]}


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "gw.sqlite")
    s.put_device({"dev_eui": EUI.hex(), "network": "chirpstack", "application": APP_ID, "site": "Torget",
                  "meta": {"zones": [{"name": "benches"}], "lines": [{"name": "north gate", "direction": "inbound"}],
                           "location": {"lat": 59.33, "lon": 18.06}}}, KEY, "test")
    s.put_device({"dev_eui": EUI_NOLOC.hex(), "network": "chirpstack", "application": APP_ID, "site": "Parken",
                  "meta": {"zones": [{"name": "lawn", "geometry": ZONE}],
                           "lines": [{"name": "path", "geometry": LINE}]}}, KEY, "test")
    s.put_device({"dev_eui": EUI_BARE.hex(), "network": "chirpstack", "application": APP_ID, "site": "Kajen"},
                 KEY, "test")
    yield s
    s.close()


def feed(store, eui, seqs, heights=True):
    pipe = Pipeline(store, Metrics())
    now = time.time()
    for k, seq in enumerate(seqs):
        msg = chirpstack_uplink(eui, frame(report(seq, visits=k, heights=heights), eui), seq + 1,
                                when=now - (len(seqs) - k) * 300)
        item = Item("chirpstack-mqtt", cs_topic(eui), cs_json(msg), "", None, now)
        pipe.process([item])
        assert item.result["outcome"] == "accepted", item.result


def fetch(store, sink_name="s", n=100):
    return store.outbox_fetch(sink_name, n)


# -- NGSI-LD ---------------------------------------------------------------------------
def _validator():
    common = json.loads((DATA / "common-schema.json").read_text())
    schema = json.loads((DATA / "CrowdFlowObserved.schema.json").read_text())
    registry = referencing.Registry().with_resource(common["$id"], referencing.Resource.from_contents(common))
    checker = jsonschema.FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _datetime(text):
        return not isinstance(text, str) or bool(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    return jsonschema.Draft202012Validator(schema, registry=registry, format_checker=checker)


def key_values(entity):
    """NGSI-LD normalised -> key-values (CIM 009 clause 4.5.4 "simplified representation")."""
    out = {}
    for name, attr in entity.items():
        if name in ("id", "type", "@context") or not isinstance(attr, dict):
            out[name] = attr
        elif attr.get("type") == "Relationship":
            out[name] = attr["object"]
        elif attr.get("type") == "ListProperty":
            out[name] = attr["valueList"]
        else:
            value = attr["value"]
            out[name] = value["@value"] if isinstance(value, dict) and "@value" in value else value
    return out


def test_entities_follow_the_official_crowdflowobserved_schema_in_both_forms(store):
    feed(store, EUI, [1])
    items = fetch(store)
    validator = _validator()
    sent = entities(items[0], context=["http://gw.example/context.jsonld"])
    assert {e["id"].rsplit(":", 1)[1] for e in sent} == {"zone0", "line0"}     # one entity per zone and line
    example = json.loads((DATA / "CrowdFlowObserved.example-normalized.jsonld").read_text())
    assert not list(validator.iter_errors(key_values(example)))          # the checker takes the model's own example
    for e in sent:
        errors = [er.message for er in validator.iter_errors(key_values(e))]
        assert not errors, (e["id"], errors)
    line = next(e for e in sent if e["id"].endswith("line0"))
    assert line["peopleCountTowards"]["value"] == 2 and line["peopleCountAway"]["value"] == 1
    assert line["peopleCount"]["value"] == 3 and line["direction"]["value"] == "inbound"
    # the schema catches what the old model sent: a direction per crossing side
    bad = dict(key_values(line), direction="in")
    assert list(validator.iter_errors(bad))


def test_every_measured_attribute_has_observed_at_and_every_term_a_context(store):
    feed(store, EUI, [1])
    item = fetch(store)[0]
    end = dt.datetime.fromtimestamp(item["end_at"], dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    sdm = json.loads((DATA / "Transportation.context.jsonld").read_text())["@context"]
    core = {"location", "observedAt", "unitCode"}         # NGSI-LD core context terms
    ours = own_context()
    assert not set(ours) & set(sdm), "our context must not redefine Smart Data Models terms"
    for e in entities(item, context=["x"]):
        for name, attr in e.items():
            if name in ("id", "type", "@context"):
                continue
            assert name in sdm or name in ours or name in core, "%s is in no @context we name" % name
            if name in ("peopleCount", "occupancy", "averageOccupancy", "maxOccupancy", "personSeconds",
                        "dwellTimeHistogram", "heightClasses", "peopleCountTowards", "peopleCountAway",
                        "cumulativeCountTowards", "cumulativeCountAway"):
                assert attr["observedAt"] == end, name
            for sub in attr if isinstance(attr, dict) else ():
                if sub not in ("value", "valueList") and isinstance(attr[sub], dict) and "type" in attr[sub]:
                    assert sub in ours or sub in sdm, "sub-property %s has no @context" % sub


def test_ordered_lists_are_list_properties(store):
    feed(store, EUI, [1])
    zone = next(e for e in entities(fetch(store)[0]) if e["id"].endswith("zone0"))
    hist = zone["dwellTimeHistogram"]
    assert hist["type"] == "ListProperty" and hist["valueList"] == [1, 1, 1, 1, 1, 0, 0]
    assert hist["binEdges"] == {"type": "ListProperty", "valueList": [0, 5, 15, 60, 300, 900, 3600],
                                "unitCode": "SEC"}
    assert zone["heightClasses"]["type"] == "ListProperty"


def test_one_entity_per_zone_updated_each_interval_history_on_observed_at(store):
    broker = NgsiLdBroker()
    try:
        feed(store, EUI, [1, 2, 3])
        sink = build_sinks([{"type": "ngsi-ld", "name": "s", "url": broker.url}], store)[0]
        sink.deliver(fetch(store))
        assert len(broker.entities) == 2
        zone_hist = broker.history[("urn:ngsi-ld:CrowdFlowObserved:vistelse:%s:zone0" % EUI.hex(), "peopleCount")]
        assert [v for _, v in zone_hist] == [0, 1, 2] and len({at for at, _ in zone_hist}) == 3
    finally:
        broker.down()


def test_207_sets_aside_the_refused_report_with_the_brokers_reason_and_delivers_the_rest(store):
    # the broker refuses one entity (here: its own rule on one interval), as Orion-LD does per entity
    broker = NgsiLdBroker(refuse=lambda e: "maxOccupancy too large" if e.get("maxOccupancy", {}).get("value") == 99
                          else None)
    try:
        feed(store, EUI, [1, 2])
        pipe = Pipeline(store, Metrics())
        rep = report(3)
        rep["intervals"][0]["zones"][0]["max_occupancy"] = 99
        msg = chirpstack_uplink(EUI, frame(rep, EUI), 10)
        pipe.process([Item("chirpstack-mqtt", cs_topic(EUI), cs_json(msg), "", None, time.time())])
        feed(store, EUI, [4])
        sink = build_sinks([{"type": "ngsi-ld", "name": "s", "url": broker.url}], store)[0]
        metrics = Metrics()
        worker = OutboxWorker(store, sink, metrics)
        assert worker.step()
        assert not worker.step()                  # nothing left: the cursor moved past the refused report
        stats = store.outbox_stats(["s"], time.time())["s"]
        assert stats["depth"] == 0 and stats["dead"] == 1
        hist = broker.history[("urn:ngsi-ld:CrowdFlowObserved:vistelse:%s:line0" % EUI.hex(), "peopleCount")]
        assert len(hist) == 4                     # the line entity of the refused interval was taken
        zone = broker.history[("urn:ngsi-ld:CrowdFlowObserved:vistelse:%s:zone0" % EUI.hex(), "maxOccupancy")]
        assert [v for _, v in zone] == [3, 3, 3]
        reason = store._conn().execute("SELECT reason FROM outbox_dead").fetchone()[0]
        assert "BadRequestData" in reason and "maxOccupancy too large" in reason
        assert metrics.get("vistelse_gateway_sink_deliveries_total", sink="s") == 3
    finally:
        broker.down()


# -- SensorThings ------------------------------------------------------------------------
def _sink(store, server):
    return SensorThingsSink("s", {"type": "sensorthings", "url": server.url + "/v1.1"}, store)


def test_every_observation_has_a_feature_of_interest(store):
    frost = FrostServer()
    try:
        feed(store, EUI, [1])
        feed(store, EUI_NOLOC, [1])
        items = fetch(store)
        _sink(store, frost).deliver(items)
        obs = frost.observations()
        assert len(obs) == 12 and all(o["featureOfInterest"] in frost.db["FeaturesOfInterest"] for o in obs)
        features = [f["feature"] for f in frost.db["FeaturesOfInterest"].values()]
        assert ZONE in features and LINE in features       # the registry's geometry for the node without location
        assert {"type": "Point", "coordinates": [18.06, 59.33]} in features
    finally:
        frost.down()


def test_a_device_without_any_geometry_is_refused_with_a_clear_reason(store):
    frost = FrostServer()
    try:
        feed(store, EUI_BARE, [1])
        worker = OutboxWorker(store, _sink(store, frost), Metrics())
        worker.step()
        reason = store._conn().execute("SELECT reason FROM outbox_dead").fetchone()[0]
        assert "no location" in reason and "FeatureOfInterest" in reason
        assert frost.observations() == []
    finally:
        frost.down()


def test_server_assigned_ids_and_no_duplicates_after_a_crash(store):
    for mode in ("server", "client"):       # FROST's ServerGeneratedOnly (default) and ServerAndClientGenerated
        frost = FrostServer(id_generation=mode)
        try:
            feed(store, EUI, [1, 2]) if mode == "server" else None
            items = store.outbox_fetch("s", 100)
            sink = _sink(store, frost) if mode == "server" else SensorThingsSink(
                "s2", {"type": "sensorthings", "url": frost.url + "/v1.1"}, store)
            sink.deliver(items[:1])
            # the process dies after the server took 4 of the second report's observations
            frost.fail_next(0)
            real_http = sink.http
            calls = {"n": 0}

            def dying(method, url, *a, **kw):
                if method == "POST" and url.endswith("/Observations"):
                    calls["n"] += 1
                    if calls["n"] > 4:
                        raise SystemExit("killed")
                return real_http(method, url, *a, **kw)
            sink.http = dying
            with pytest.raises(SystemExit):
                sink.deliver(items[1:])
            # a new process delivers the report again
            again = SensorThingsSink(sink.name, {"type": "sensorthings", "url": frost.url + "/v1.1"}, store)
            again.deliver(items[1:])
            again.deliver(items[1:])            # and once more (a redelivery from the outbox)
            ids = [o["parameters"]["vistelse_id"] for o in frost.observations()]
            assert len(ids) == len(set(ids)) == 12, mode
            assert all(isinstance(i, int) for i in frost.db["Observations"])      # the server chose the ids
        finally:
            frost.down()


def test_sensor_and_observed_properties_are_created_once_and_reused(store):
    frost = FrostServer()
    try:
        feed(store, EUI, [1])
        feed(store, EUI_NOLOC, [1])
        _sink(store, frost).deliver(fetch(store))
        assert len(frost.db["Sensors"]) == 1
        assert len(frost.db["ObservedProperties"]) == 6
        assert len(frost.db["Datastreams"]) == 12 and len(frost.db["Things"]) == 2
        types = {d["name"].split(".")[-1]: d for d in frost.db["Datastreams"].values()}
        om = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
        for metric in ("visits", "max_occupancy", "in", "out"):
            assert types[metric]["observationType"] == om + "OM_CountObservation"
            assert types[metric]["unitOfMeasurement"]["definition"] == \
                "http://www.opengis.net/def/uom/UCUM/0/%7Bperson%7D"
        assert types["person_s"]["observationType"] == om + "OM_Measurement"
        assert types["person_s"]["unitOfMeasurement"]["definition"] == "http://www.opengis.net/def/uom/UCUM/0/s"
        assert types["dwell_hist"]["observationType"] == om + "OM_Observation"
    finally:
        frost.down()


def test_frost_double_refuses_what_frost_refuses():
    """The test server itself: an Observation of a Thing without Location and without
    FeatureOfInterest is refused with FROST's message (what the old sink ran into)."""
    import urllib.error
    import urllib.request
    frost = FrostServer()

    def post(path, doc):
        req = urllib.request.Request(frost.url + "/v1.1/" + path, json.dumps(doc).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.headers.get("Location"), b""
        except urllib.error.HTTPError as exc:
            return exc.code, None, exc.read()
    try:
        _, loc, _ = post("Things", {"name": "t", "description": "d", "@iot.id": "mine"})
        assert loc.endswith("Things(1)")                                  # client id ignored
        code, loc, _ = post("Datastreams", {
            "name": "d", "description": "d", "observationType": "x", "unitOfMeasurement": {},
            "Thing": {"@iot.id": 1}, "Sensor": {"name": "s", "description": "d", "encodingType": "t", "metadata": "m"},
            "ObservedProperty": {"name": "o", "definition": "d", "description": "d"}})
        code, _, text = post("Observations", {"result": 1, "Datastream": {"@iot.id": int(loc[-2])}})
        assert code == 400 and b"No FeatureOfInterest provided, and none can be generated." in text
    finally:
        frost.down()
    # with client ids enabled (ServerAndClientGenerated) a repeated @iot.id fails in the database: 500,
    # which the old sink retried for ever
    frost = FrostServer(id_generation="client")
    try:
        assert post("Things", {"name": "t", "description": "d", "@iot.id": "node-1"})[0] == 201
        assert post("Things", {"name": "t", "description": "d", "@iot.id": "node-1"})[0] == 500
    finally:
        frost.down()


def test_our_context_is_named_by_the_gateways_address_or_sent_inline(store):
    feed(store, EUI, [1])
    item = fetch(store)[0]
    with_url = build_sinks([{"type": "ngsi-ld", "name": "a", "url": "http://broker",
                             "public_url": "https://gw.example.se"}], store)[0]
    inline = build_sinks([{"type": "ngsi-ld", "name": "b", "url": "http://broker"}], store)[0]
    assert entities(item, context=with_url.context)[0]["@context"][0] == "https://gw.example.se/context.jsonld"
    assert entities(item, context=inline.context)[0]["@context"][0] == own_context()
    assert inline.context[-1].startswith("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context")
