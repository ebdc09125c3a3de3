"""Store-thread cost per uplink on each backend, in process (no MQTT, no worker):
ChirpStack v4 JSON uplink events are prepared (parsed, structure decoded) first,
then committed through Pipeline.process in batches as the gateway does, so the
time measured is identity, tag, checks and the store's writes and commit.

    .venv/bin/python benchmarks/bench_store.py [--messages 10000] [--store sqlite|postgres] [--profile]

CPU time of this process per uplink (the server's own work on PostgreSQL is not
in it: the wall time, which includes waiting for the server and fsync, is).
PostgreSQL: a throwaway cluster (fsync on) on a Unix socket. Prints one JSON line;
--profile adds cProfile's top functions by own time.
"""
import argparse
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import time

from vistelse_gateway.config import SCHEMA
from vistelse_gateway.metrics import Metrics
from vistelse_gateway.pipeline import Item, Pipeline, prepare
from vistelse_gateway.store import open_store
from vistelse_gateway.testing import APP_ID, KEY, Postgres, chirpstack_uplink, cs_json, cs_topic, frame, report


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--batch-max", type=int, default=SCHEMA["properties"]["ingest"]["properties"]["batch_max"]["default"],
                    help="[ingest] batch_max (default: the gateway's)")
    ap.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    euis = [bytes.fromhex("70b3d57e%08x" % (0x100000 + d)) for d in range(args.devices)]
    items = []
    for k in range(args.messages):
        eui, seq = euis[k % args.devices], k // args.devices
        body = cs_json(chirpstack_uplink(eui, frame(report(seq, visits=seq % 9, total_in=2 * seq, total_out=seq), eui),
                                         seq + 1))
        items.append(Item("chirpstack-mqtt", cs_topic(eui), body, "", None, time.time()))
    # CPU time of this process (time.process_time): steadier than wall time on a shared machine
    c = time.process_time()
    for item in items:
        item.prepared = prepare(item.kind, item.where, item.body)
    prepare_us = (time.process_time() - c) / len(items) * 1e6
    work = tempfile.mkdtemp(prefix="vistelse-bench-store-")
    pg = Postgres().start() if args.store == "postgres" else None
    try:
        cfg = {"url": pg.create_database()} if pg else {"path": os.path.join(work, "gateway.sqlite")}
        store = open_store(cfg, migrate=True)
        for eui in euis:
            store.put_device({"dev_eui": eui.hex(), "network": "chirpstack", "application": APP_ID}, KEY, "bench")
        pipe = Pipeline(store, Metrics())
        prof = cProfile.Profile() if args.profile else None
        t, c = time.perf_counter(), time.process_time()
        if prof:
            prof.enable()
        for i in range(0, len(items), args.batch_max):
            pipe.process(items[i:i + args.batch_max])
        if prof:
            prof.disable()
        store_us = (time.perf_counter() - t) / len(items) * 1e6
        store_cpu_us = (time.process_time() - c) / len(items) * 1e6
        stored = store.count("reports")
        store.close()
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"store": args.store, "messages": args.messages, "batch_max": args.batch_max,
                      "prepare_cpu_us_per_uplink": round(prepare_us, 1),
                      "store_thread_cpu_us_per_uplink": round(store_cpu_us, 1),
                      "store_thread_wall_us_per_uplink": round(store_us, 1),
                      "stored": stored, "load_1min": round(os.getloadavg()[0], 2)}))
    if prof:
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(20)
    return 0 if stored == args.messages else 1


if __name__ == "__main__":
    sys.exit(main())
