"""The store interface on both backends, and what several instances on one
PostgreSQL database rely on: constraints, device locks, outbox claims, one
access-log chain, schema migrations."""
import threading
import time

import pytest

from vistelse_gateway.metrics import Metrics
from vistelse_gateway.pipeline import Item, Pipeline
from vistelse_gateway.store import StoreError, open_store
from vistelse_gateway.testing import APP_ID, KEY, chirpstack_uplink, cs_json, cs_topic, frame, report

EUIS = [bytes.fromhex("70b3d57ee00000%02x" % i) for i in range(1, 9)]


def register(store, euis=EUIS):
    for eui in euis:
        store.put_device({"dev_eui": eui.hex(), "network": "chirpstack", "application": APP_ID}, KEY, "test")


def uplink(eui, seq, f_cnt=None):
    body = cs_json(chirpstack_uplink(eui, frame(report(seq, visits=seq % 7), eui), seq + 1 if f_cnt is None else f_cnt))
    return Item("chirpstack-mqtt", cs_topic(eui), body, "", None, time.time())


def ingest(store, items):
    pipe = Pipeline(store, Metrics())
    pipe.process(items)
    return [i.result for i in items]


def test_outbox_hands_out_reports_in_order_per_device_and_settles_them(stores):
    store = stores.open()
    register(store, EUIS[:2])
    ingest(store, [uplink(EUIS[k % 2], k // 2) for k in range(6)])
    items = store.outbox_fetch("web", 100)
    assert sorted((i["dev_eui"], i["seq"]) for i in items) == sorted((EUIS[k % 2].hex(), k // 2) for k in range(6))
    for eui in EUIS[:2]:
        assert [i["seq"] for i in items if i["dev_eui"] == eui.hex()] == [0, 1, 2]
    assert items[0]["data"]["zones"][0]["visits"] == 0 and items[0]["device_meta"] == {}
    store.outbox_done("web", items[:2])
    store.outbox_dead("web", items[2], "refused")
    store.outbox_done("web", items[2:])
    assert store.outbox_fetch("web", 100) == []
    stats = store.outbox_stats(["web"], time.time())["web"]
    assert stats["depth"] == 0 and stats["dead"] == 1
    # a sink seen for the first time starts with everything stored
    assert len(store.outbox_fetch("archive", 100)) == 6
    # and what arrives later is waiting for both
    ingest(store, [uplink(EUIS[0], 10)])
    assert [i["seq"] for i in store.outbox_fetch("web", 100)] == [10]
    st = store.outbox_stats(["web", "archive"], time.time())
    assert st["web"]["depth"] == 1 and st["archive"]["depth"] == 7 and st["web"]["age_s"] >= 0


def drain(store, sink, **kw):
    items = store.outbox_fetch(sink, 100, **kw)
    store.outbox_done(sink, items)
    return [(i["seq"], i["waited"], i["given_up"], i["late"]) for i in items]


def test_a_gap_holds_the_devices_later_reports_until_it_is_filled(stores):
    store = stores.open()
    register(store, EUIS[:2])
    hold = 26 * 3600
    ingest(store, [uplink(EUIS[0], s) for s in (0, 1, 3, 4)] + [uplink(EUIS[1], 0)])
    got = store.outbox_fetch("web", 100, hold_s=hold)
    assert sorted((i["dev_eui"][-1], i["seq"]) for i in got) == [("1", 0), ("1", 1), ("2", 0)]
    store.outbox_done("web", got)
    assert drain(store, "web", hold_s=hold) == []            # 3 and 4 wait for 2
    assert store.outbox_stats(["web"], time.time())["web"]["depth"] == 2
    assert sorted(s for s, *_ in drain(store, "archive")) == [0, 0, 1, 3, 4]   # another sink, no hold: at once
    ingest(store, [uplink(EUIS[0], 2)])                       # the receipt brought it back
    assert drain(store, "web", hold_s=hold) == [(2, False, 0, False), (3, True, 0, False), (4, True, 0, False)]


def test_a_gap_is_given_up_after_the_hold_and_a_later_arrival_still_goes(stores):
    store = stores.open()
    register(store, EUIS[:1])
    hold = 3600
    ingest(store, [uplink(EUIS[0], s) for s in (0, 3, 4)])
    now = time.time()
    assert drain(store, "web", hold_s=hold, now=now) == [(0, False, 0, False)]
    assert drain(store, "web", hold_s=hold, now=now + hold - 60) == []
    # the hold passed: 1 and 2 are given up, 3 and 4 go
    assert drain(store, "web", hold_s=hold, now=now + hold + 1) == [(3, True, 2, False), (4, False, 0, False)]
    ingest(store, [uplink(EUIS[0], 5), uplink(EUIS[0], 1)])  # 1 arrives after all: late, not withheld
    assert drain(store, "web", hold_s=hold) == [(1, False, 0, True), (5, False, 0, False)]


def test_order_holds_across_the_sequence_number_wrap(stores):
    store = stores.open()
    register(store, EUIS[:1])
    hold = 3600
    # a node that ran before: 65534, then 0 (the 16-bit seq wrapped: 65536) before 65535
    ingest(store, [uplink(EUIS[0], 65534, 1), uplink(EUIS[0], 0, 3)])
    assert drain(store, "web", hold_s=hold) == [(65534, False, 0, False)]
    ingest(store, [uplink(EUIS[0], 65535, 2)])
    assert [s for s, *_ in drain(store, "web", hold_s=hold)] == [65535, 65536]


def test_sink_state_round_trip(stores):
    store = stores.open()
    assert store.sink_state("sta", "things") is None
    store.sink_state("sta", "things", {"a": 1})
    assert store.sink_state("sta", "things") == {"a": 1}


def test_duplicate_interval_is_refused_by_the_database_itself(stores):
    store = stores.open()
    register(store, EUIS[:1])
    ingest(store, [uplink(EUIS[0], 1)])
    with pytest.raises(Exception):
        stores.sql("INSERT INTO reports (dev_eui, seq, seq16, span, interval_s, start_at, end_at, time_estimated,"
                   " received_at, content_hash, data, stored_at) VALUES ('%s', 1, 1, 1, 300, 0, 0, 0, 0, 0, '{}', 0)"
                   % EUIS[0].hex())
    assert store.count("reports") == 1


def test_schema_is_versioned_and_migrations_are_idempotent(stores):
    store = stores.open()
    current, latest = store.schema_version()
    assert current == latest >= 1
    assert store.migrate() == []


def test_a_newer_database_is_refused(stores):
    store = stores.open()
    if stores.backend == "postgres":
        stores.sql("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)")
    else:
        stores.sql("UPDATE meta SET value='999' WHERE key='schema_version'")
    store.close()
    with pytest.raises(StoreError, match="999"):
        stores.open()


# -- PostgreSQL: several instances on one database -------------------------------------
def test_an_unmigrated_postgres_database_is_refused_until_migrate(postgres_server):
    url = postgres_server.create_database()
    with pytest.raises(StoreError, match="vistelse gateway migrate"):
        open_store({"url": url})
    store = open_store({"url": url}, migrate=True)
    assert store.schema_version() == (2, 2)
    store.close()
    open_store({"url": url}).close()


def test_two_instances_ingesting_the_same_devices_store_each_interval_once(postgres_server):
    """Two pipelines on two stores (two instances) get overlapping, shuffled
    redeliveries of the same uplinks; the device locks serialise them, ordered
    locking keeps them from deadlocking, the constraint backs the check."""
    import random
    url = postgres_server.create_database()
    a, b = open_store({"url": url}, migrate=True), open_store({"url": url})
    register(a)
    plan = [(eui, seq) for seq in range(30) for eui in EUIS]
    rnd = random.Random(7)
    results = {"a": [], "b": []}

    def run(name, store):
        pipe = Pipeline(store, Metrics())
        order = plan[:]
        rnd_local = random.Random(name)
        for start in range(0, len(order), 40):
            chunk = order[start:start + 40]
            rnd_local.shuffle(chunk)
            items = [uplink(eui, seq) for eui, seq in chunk]
            pipe._commit(items)        # the worker's commit path: retried on a store error
            results[name] += [i.result["outcome"] for i in items]
    rnd.shuffle(plan)
    threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    outcomes = results["a"] + results["b"]
    assert len(outcomes) == 2 * len(plan)
    assert outcomes.count("accepted") == len(plan) and outcomes.count("duplicate") == len(plan)
    assert a.count("reports") == len(plan) and a.count("quarantine") == 0
    for eui in EUIS:
        assert sorted(r["seq"] for r in a.reports(dev_eui=eui)) == list(range(30))
    a.close()
    b.close()


def drain_from_either(a, b, limit, **kw):
    """Fetch and settle through instance b, else a, until neither has anything."""
    delivered = []
    while True:
        store, got = b, b.outbox_fetch("web", limit, **kw)
        if not got:
            store, got = a, a.outbox_fetch("web", limit, **kw)
        if not got:
            return delivered
        delivered += got
        store.outbox_done("web", got)


def seqs_per_device(items):
    per_device = {}
    for item in items:
        per_device.setdefault(item["dev_eui"], []).append(item["seq"])
    return per_device


def test_outbox_claims_keep_per_device_order_across_instances(postgres_server):
    url = postgres_server.create_database()
    a, b = open_store({"url": url}, migrate=True), open_store({"url": url})
    register(a, EUIS[:4])
    a.outbox_fetch("web", 1)      # register the sink before anything is stored
    ingest(a, [uplink(EUIS[k % 4], k // 4) for k in range(40)])
    got_a = a.outbox_fetch("web", 2)          # claims the two devices of the oldest reports
    claimed = {i["dev_eui"] for i in got_a}
    got_b = b.outbox_fetch("web", 100)        # meanwhile: only other devices
    assert got_a and got_b and not claimed & {i["dev_eui"] for i in got_b}
    # a report of a claimed device arriving now is not handed out before the claimed ones
    ingest(b, [uplink(EUIS[0], 100)])
    assert all(i["seq"] != 100 for i in b.outbox_fetch("web", 100))
    a.outbox_done("web", got_a)
    b.outbox_done("web", got_b)
    delivered = got_a + got_b + drain_from_either(a, b, 100)
    per_device = seqs_per_device(delivered)
    for eui, seqs in per_device.items():
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    assert sum(len(s) for s in per_device.values()) == 41
    a.close()
    b.close()


def test_instances_keep_sequence_order_while_a_gap_holds_a_device_back(postgres_server):
    """Receipts on (a hold): an interval stored late, by another instance, still goes to
    the sink before the device's later ones, whichever instance's worker sends them."""
    url = postgres_server.create_database()
    a, b = open_store({"url": url}, migrate=True), open_store({"url": url})
    register(a, EUIS[:3])
    hold = 26 * 3600
    a.outbox_fetch("web", 1, hold_s=hold)
    ingest(a, [uplink(EUIS[k % 3], k // 3) for k in range(30) if (k % 3, k // 3) != (1, 3)])
    delivered = []
    for store in (a, b, a, b):
        got = store.outbox_fetch("web", 4, hold_s=hold)
        delivered += got
        store.outbox_done("web", got)
    assert not [i for i in delivered if i["dev_eui"] == EUIS[1].hex() and i["seq"] > 3]   # held behind 3
    ingest(b, [uplink(EUIS[1], 3, 40)])                    # the re-send, through the other instance
    delivered += drain_from_either(a, b, 3, hold_s=hold)
    per_device = seqs_per_device(delivered)
    assert all(seqs == list(range(10)) for seqs in per_device.values()), per_device
    assert sum(i["waited"] for i in delivered) == 6                              # 4..9 of the second device
    a.close()
    b.close()


def test_a_dead_instance_releases_its_claims(postgres_server):
    url = postgres_server.create_database()
    a, b = open_store({"url": url}, migrate=True), open_store({"url": url})
    register(a, EUIS[:1])
    ingest(a, [uplink(EUIS[0], k) for k in range(3)])
    assert len(a.outbox_fetch("web", 10)) == 3
    assert b.outbox_fetch("web", 10) == []      # claimed by a
    a.close()                                   # a's connection goes away (as with kill -9)
    deadline = time.time() + 10                 # its server process rolls back a moment later
    got = []
    while not got and time.time() < deadline:
        got = b.outbox_fetch("web", 10)
        time.sleep(0.05)
    assert [i["seq"] for i in got] == [0, 1, 2]
    b.close()


def test_access_log_appends_from_several_instances_form_one_chain(postgres_server):
    url = postgres_server.create_database()
    stores = [open_store({"url": url}, migrate=True)] + [open_store({"url": url}) for _ in range(2)]

    def append(store, name):
        for k in range(25):
            store.log_access(name, "export.csv", {"k": k})
    threads = [threading.Thread(target=append, args=(s, "actor%d" % i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    result = stores[1].verify_access_log()
    assert result["ok"] and result["entries"] == 75
    for s in stores:
        s.close()


def test_instances_see_each_other_through_the_database(postgres_server):
    url = postgres_server.create_database()
    a = open_store({"url": url}, migrate=True, instance="a")
    b = open_store({"url": url}, instance="b")
    b.count("reports")                      # b is connected
    assert a.other_instances("a") == ["b"]
    b.close()
    deadline = time.time() + 10
    while a.other_instances("a") and time.time() < deadline:
        time.sleep(0.05)
    assert a.other_instances("a") == []
    a.close()


def test_a_newer_configuration_on_the_node_supersedes_a_pending_downlink(stores):
    store = stores.open()
    register(store, EUIS[:1])
    store.add_downlink({"dev_eui": EUIS[0].hex(), "config_version": 5, "config": {"interval_s": 600}, "via": "test"})
    item = uplink(EUIS[0], 1)
    item.body = cs_json(chirpstack_uplink(EUIS[0], frame(report(1, config_version=7), EUIS[0]), 2))
    result = ingest(store, [item])[0]
    assert result["outcome"] == "accepted" and [c[2] for c in result["downlinks"]] == ["superseded"]
    assert store.downlinks()[0]["status"] == "superseded"


def test_two_devices_cannot_share_a_network_identity(stores):
    store = stores.open()
    tts = {"network": "tts", "application": "vistelse@city", "tts_device_id": "node-1"}
    store.put_device(dict(tts, dev_eui=EUIS[0].hex()), KEY, "test")
    with pytest.raises(StoreError, match="node-1"):
        store.put_device(dict(tts, dev_eui=EUIS[1].hex()), KEY, "test")
    assert [d["dev_eui"] for d in store.list_devices()] == [EUIS[0].hex()]
    assert store.verify_access_log() == dict(store.verify_access_log(), ok=True, entries=1)
