"""Receipts end to end: a node on a lossy radio, the gateway, real MQTT.

    python -m vistelse_tools.receipt_rig --days 3 --loss 0.1 --outage-h 6 --dr 5
    python -m vistelse_tools.receipt_rig --micropython     # the node under MicroPython
    python -m vistelse_tools.receipt_rig --table        # the figures of docs/performance.md

The node firmware (pipeline, queue, send policy, modem driver and the
RAK3172 emulator) runs on simulated time at 5-minute intervals: under
CPython in this process (virtual_node.VirtualNode, a recorded scene looping
all day), or with --micropython as deployed, compiled to .mpy, under the
official MicroPython WebAssembly build (micropython_node.MicroPythonNode: a
short scene at the start of every interval, empty frames between). Its
modem emulator's network loses `loss` of the uplinks at random and
everything during an outage of the network server (`outage_h` hours from
`outage_at_h`), while the modem reports success. What arrives is
published as ChirpStack v4 events (netserver.py, the stand-in) on an MQTT
broker (mosquitto if installed); the real gateway service ingests them,
stores them in SQLite, forwards them to a webhook sink (per device in
sequence order, a gap holding later ones back), and sends receipts back
through the same broker as ChirpStack downlink commands, which the
stand-in hands to the node in the RX1 window of its uplink, as ChirpStack
reads its device queue between an uplink and RX1.

The rig waits, after each uplink, until the gateway has committed it and
any receipt is queued at the stand-in, so simulated time can run as fast
as the machine allows and the outcome is deterministic for a seed.
"""
import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time

from . import simulate
from .demo import WebhookSink, gateway_config

APPLICATION_ID = "8d2b4f7e-1c3a-4e5b-9f60-7a1b2c3d4e5f"
TENANT_ID = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"
DEV = "70b3d57ed00000e2"
TAG_KEY = bytes(range(32))
START_EPOCH = 1767225600.0          # 2026-01-01 00:00 UTC


def _wait(cond, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.002)


def run(days=3.0, loss=0.1, outage_h=6.0, outage_at_h=30.0, dr=5, seed=1, interval_s=300, tail_h=3.0,
        workdir=None, broker="auto", receipts=None, runtime="cpython"):
    """Run the chain; -> figures (dict). `tail_h`: intervals that ended this
    close to the end are not judged (their receipt has not come yet).
    runtime: "cpython" (the node in this process, virtual_node.py) or
    "micropython" (the node as deployed, under MicroPython WebAssembly:
    micropython_node.py)."""
    from vistelse_gateway import config as config_mod
    from vistelse_gateway.receipts import hold_back_s
    from vistelse_gateway.service import Gateway
    from vistelse_gateway.store.order import forwardable
    from vistelse_node import airtime
    from .broker import start_broker
    from .netserver import NetworkServer

    if runtime not in ("cpython", "micropython"):
        raise ValueError("runtime must be cpython or micropython")
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="vistelse-receipts-")
    parts = []
    try:
        b = start_broker(broker)
        parts.append(b.stop)
        sink = WebhookSink(os.path.join(workdir, "platform.jsonl"))
        parts.append(sink.stop)
        cfg_path = gateway_config(workdir, b.port, sink.url, 0, "rig-operator-token-0001",
                                  "5" if b.name == "mosquitto" else "3.1.1")
        cfg = config_mod.load(cfg_path)
        cfg["http"]["enabled"] = False
        if receipts:
            cfg["receipts"].update(receipts)
        gateway = Gateway(cfg, cfg_path)
        ns = NetworkServer("127.0.0.1", b.port, APPLICATION_ID, TENANT_ID)
        parts.append(ns.close)
        ns.add_device(DEV, "rig-1")
        if runtime == "cpython":
            scene, header = simulate.square_site(30, seed, interval_s)
        else:
            # a short scene, played in the first seconds of every interval (board_scene.DaySensor):
            # people in every interval at a cost the interpreter can run through three days
            scene, header = simulate.square_site(1, seed, interval_s, mean_gap_s=3.0)
        frames, _ = simulate.simulate(scene, header, seed)
        lines = [json.dumps(header)] + [json.dumps(f) for f in frames]
        gateway.store.put_device({"dev_eui": DEV, "network": "chirpstack", "application": APPLICATION_ID,
                                  "name": "rig-1", "site": "Torget"}, TAG_KEY, "rig")
        gateway.start()
        parts.append(gateway.shutdown)
        # the broker drops what is published before the gateway's subscription stands
        if not all(src.subscribed.wait(30) for src in gateway.sources):
            raise RuntimeError("the gateway did not subscribe to the broker")

        published = [0]
        delivered = []                     # (sim s, fport) of downlinks the node received

        def on_uplink(up):
            when = datetime.datetime.fromtimestamp(START_EPOCH + up["at_ms"] / 1000.0, datetime.timezone.utc)
            ns.publish_uplink(DEV, up["fport"], up["data"], up["fcnt"], dr=up["dr"], when=when)
            published[0] += 1
            _wait(lambda: gateway.metrics.total("vistelse_gateway_uplinks_total") >= published[0], "ingest")
            _wait(lambda: gateway.receipts.queue.unfinished_tasks == 0, "the receipt sender")
            _wait(lambda: ns.commands >= gateway.receipts.sent, "the downlink command")
            at_s[0] = up["at_ms"] / 1000.0

        at_s = [0.0]

        def downlinks(dev_eui):
            down = ns.next_downlink(dev_eui)
            if down is not None:
                delivered.append((at_s[0], down[0]))
            return down

        node_file = {"dev_eui": DEV, "join_eui": "0000000000000000", "app_key": "00112233445566778899aabbccddeeff",
                     "tag_key": TAG_KEY.hex(), "sensor": header["sensor"], "mount": header["mount"],
                     "config": {"interval_s": interval_s, "min_count": 3,
                                "zones": [z["polygon_mm"] for z in header["zones"]],
                                "lines": [[ln["a_mm"], ln["b_mm"]] for ln in header["lines"]]}}
        outage = (int(outage_at_h * 3600000), int((outage_at_h + outage_h) * 3600000))
        session_kw = {"dr": dr, "adr": False, "loss_rate": loss, "seed": seed,
                      "outages": [outage] if outage_h > 0 else []}
        end_ms = int(days * 86400000)
        if runtime == "cpython":
            node = _run_cpython(node_file, lines, os.path.join(workdir, "node"), session_kw, end_ms,
                                on_uplink, downlinks)
        else:
            scene_path = os.path.join(workdir, "scene.rec.jsonl")
            with open(scene_path, "w") as f:
                f.write("\n".join(lines) + "\n")
            node = _run_micropython(node_file, scene_path, session_kw, end_ms, on_uplink, downlinks, interval_s,
                                    parts)
        hold_s = hold_back_s(cfg)

        def settled():
            return sink.count >= len(forwardable(gateway.store.reports(dev_eui=DEV), time.time(), hold_s))
        _wait(settled, "the sink", 30)

        # --- what arrived ---------------------------------------------------------
        store = gateway.store
        rows = sorted(store.reports(dev_eui=DEV), key=lambda r: r["seq"])
        covered = []
        for r in rows:
            covered.extend(range(r["seq"], r["seq"] + r["span"]))
        tail = int(tail_h * 3600 // interval_s)
        judged = node["next_seq"] - tail
        missing = sorted(set(range(judged)) - set(covered))
        twice = len(covered) - len(set(covered))
        # placed in time by what the node said: interval k ends (k + 1) x interval_s after the start
        misplaced = [r["seq"] for r in rows
                     if abs(r["end_at"] - (START_EPOCH + (r["seq"] + r["span"]) * interval_s)) > 5]
        in_queue = set(x for r in node["records"] for x in range(r[0], r[0] + r[1]))
        lost = [x for x in missing if x not in in_queue]
        with open(sink.path) as f:
            items = [json.loads(line) for line in f]
        sink_ids = [it.get("id") for it in items]
        sink_seqs = [it.get("seq") for it in items]
        # what the sink should have by now: everything stored but what waits behind a gap
        due = set("vistelse:%s:%d" % (r["dev_eui"], r["seq"]) for r in forwardable(rows, time.time(), hold_s))
        ups = node["uplinks"]
        # airtime in every 24-hour window (sliding, from each uplink)
        worst_window_ms = 0
        j = 0
        acc = 0
        for i, u in enumerate(ups):
            acc += u["airtime_us"]
            while ups[j]["at_ms"] <= u["at_ms"] - 86400000:
                acc -= ups[j]["airtime_us"]
                j += 1
            worst_window_ms = max(worst_window_ms, acc / 1000.0)
        # extra airtime: uplinks that only carried intervals already on air before
        seen, extra_us = set(), 0
        import vistelse_codec
        for u in ups:
            rep = vistelse_codec.decode_uplink(u["data"], u["fport"])
            seqs = set()
            ext = rep["seq"]
            for iv in rep["intervals"]:
                seqs.add(ext)
                ext += iv["span"]
            if seqs and seqs <= seen:
                extra_us += u["airtime_us"]
            seen |= seqs
        per_day = {}
        for t, port in delivered:
            per_day[int(t // 86400)] = per_day.get(int(t // 86400), 0) + 1
        sorted_window = 0
        for i in range(len(delivered)):
            n = sum(1 for t, _ in delivered if delivered[i][0] <= t < delivered[i][0] + 86400)
            sorted_window = max(sorted_window, n)
        m = gateway.metrics
        return {
            "runtime": runtime, "days": days, "loss": loss, "outage_h": outage_h, "dr": dr, "seed": seed,
            "intervals": node["next_seq"], "judged": judged, "stored": len(set(covered)),
            "missing": len(missing), "missing_seqs": missing[:20], "still_queued": len(missing) - len(lost),
            "lost": len(lost), "stored_twice": twice, "misplaced_in_time": len(misplaced),
            "sink_items": len(items), "sink_unique": len(set(sink_ids)),
            "sink_in_order": sink_seqs == sorted(sink_seqs),
            "sink_due": len(due), "sink_missing_due": len(due - set(sink_ids)),
            "sink_intervals": len(set(x for it in items for x in range(it["seq"], it["seq"] + it["span"]))),
            "sink_held_back": int(m.total("vistelse_gateway_sink_held_back_total")),
            "uplinks_on_air": len(ups), "uplinks_lost": node["lost"],
            "recovered": int(m.total("vistelse_gateway_intervals_recovered_total")),
            "receipts_sent": int(m.total("vistelse_gateway_receipts_sent_total")),
            "downlinks_delivered": len(delivered), "downlinks_max_24h": sorted_window,
            "downlinks_per_day": round(len(delivered) / days, 1),
            "airtime_max_24h_s": round(worst_window_ms / 1000.0, 2),
            "extra_airtime_s_per_day": round(extra_us / 1e6 / days, 2),
            "flash_bytes_held_max": node["held_max"], "dropped_unreceipted": node["dropped"],
            "budget_s": airtime.TTN_FAIR_USE_MS_PER_DAY / 1000.0,
        }
    finally:
        while parts:
            try:
                parts.pop()()
            except Exception:
                pass
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


def _run_cpython(node_file, lines, folder, session_kw, end_ms, on_uplink, downlinks):
    """The node in this process (virtual_node.py) -> its outcome, as MicroPythonNode.outcome."""
    from .virtual_node import VirtualNode
    held = [0]                         # most log bytes of sent records held at once
    vn = VirtualNode(node_file, lines, folder=folder, loop=True, on_uplink=on_uplink, downlinks=downlinks,
                     session_kw=session_kw)
    while vn.clock.elapsed_ms < end_ms:
        vn.step(200)
        h = sum(vn.node.queue.sent.values())
        if h > held[0]:
            held[0] = h
    q = vn.node.queue
    return {"elapsed_ms": vn.clock.elapsed_ms, "next_seq": q.next_seq, "dropped": q.dropped,
            "records": [(r[0], r[1]) for r in q.records], "held_max": held[0], "lost": len(vn.session.lost),
            "uplinks": vn.session.uplinks}


def _run_micropython(node_file, scene_path, session_kw, end_ms, on_uplink, downlinks, interval_s, parts):
    """The node as deployed under MicroPython (micropython_node.py) -> its outcome."""
    from .micropython_node import MicroPythonNode
    node = MicroPythonNode(node_file, scene_path, session_kw, busy=((0, 15000),), period_ms=interval_s * 1000)
    parts.append(node.stop)
    node.run(end_ms, on_uplink, downlinks)
    return node.outcome()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m vistelse_tools.receipt_rig", description=__doc__.splitlines()[0])
    p.add_argument("--days", type=float, default=3)
    p.add_argument("--loss", type=float, default=0.1)
    p.add_argument("--outage-h", type=float, default=6)
    p.add_argument("--dr", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--micropython", action="store_true",
                   help="run the node as deployed under MicroPython WebAssembly (slower) instead of CPython")
    p.add_argument("--table", action="store_true", help="1/10/30 %% loss at DR5 and DR3 (a markdown table)")
    args = p.parse_args(argv)
    runtime = "micropython" if args.micropython else "cpython"
    if not args.table:
        print(json.dumps(run(args.days, args.loss, args.outage_h, dr=args.dr, seed=args.seed, runtime=runtime),
                         indent=1))
        return 0
    print("| DR | loss | intervals | not stored at the end: lost / still in the node's queue | stored twice | recovered | receipts/day (max in 24 h) "
          "| extra airtime/day | airtime, worst 24 h | flash held (max) | sink: each once, in order (reports that waited) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for dr in (5, 3):
        for loss in (0.01, 0.1, 0.3):
            f = run(args.days, loss, args.outage_h, dr=dr, seed=args.seed, runtime=runtime)
            ok = f["sink_items"] == f["sink_unique"] and f["sink_in_order"] and not f["sink_missing_due"]
            print("| DR%d | %d %% | %d | %d / %d | %d | %d | %.1f (%d) | %.1f s | %.1f s | %d B | %s (%d) |" % (
                dr, round(loss * 100), f["judged"], f["lost"], f["still_queued"], f["stored_twice"], f["recovered"],
                f["downlinks_per_day"], f["downlinks_max_24h"], f["extra_airtime_s_per_day"],
                f["airtime_max_24h_s"], f["flash_bytes_held_max"], "yes" if ok else "NO", f["sink_held_back"]),
                flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
