"""`vistelse replay`: a recording through the node pipeline, as the platform would see it.

    vistelse replay site.rec.jsonl.gz --out site.pred.json

Each frame goes into the firmware's pipeline at its recorded time; at every
interval boundary (interval k covers [k * interval_s, (k + 1) * interval_s)
of recording time) the interval is encoded with the contract's encoder
(byte-identical to the node's, tests/test_mcodec.py), decoded by the
gateway's codec, and the prediction is written from the *decoded*
report: exactly what the city platform would receive.
"""
import argparse
import sys

import vistelse_codec as vc
from vistelse_node.pipeline import Pipeline

from .recording import read_recording, write_prediction

DEV_EUI = bytes.fromhex("70b3d57e00000000")
KEY = bytes(32)


def pipeline_for(header, min_count=5):
    return Pipeline(header["sensor"], zones=[z["polygon_mm"] for z in header["zones"]],
                    lines=[(l["a_mm"], l["b_mm"]) for l in header["lines"]], min_count=min_count,
                    mount=header["mount"])


def to_prediction(header, k, interval_ms, decoded):
    iv = decoded["intervals"][0]
    out = {"start_ms": k * interval_ms, "end_ms": (k + 1) * interval_ms, "zones": {}, "lines": {}}
    for zone, z in zip(header["zones"], iv["zones"]):
        entry = {"visits": z["visits"], "person_s": z["person_s"], "max_occupancy": z["max_occupancy"]}
        if z["dwell_hist"] is not None:
            entry["dwell_hist"] = z["dwell_hist"]
        out["zones"][zone["id"]] = entry
    for line, l in zip(header["lines"], iv["lines"]):
        out["lines"][line["id"]] = {"in": l["in"], "out": l["out"]}
    if iv.get("height_classes"):
        out["height_classes"] = iv["height_classes"]
    return out


def predict(rec_path, min_count=5):
    """The prediction dict (truth schema) for a recording."""
    header, frames = read_recording(rec_path)
    return predict_frames(header, frames, min_count)


def predict_frames(header, frames, min_count=5):
    """The prediction dict for a header and its frames (dicts as in a recording)."""
    interval_s = header["interval_s"]
    interval_ms = int(interval_s * 1000)
    pipe = pipeline_for(header, min_count)
    intervals = []

    def close(k, t):
        report = {"seq": k, "interval_s": int(interval_s), "age_s": 0,
                  "status": {"battery_mv": 0, "health": [], "config_version": 0, "reset_cause": None},
                  "intervals": [pipe.close_interval(t)]}
        frame = vc.encode_uplink(report, dev_eui=DEV_EUI, key=KEY)
        decoded = vc.decode_uplink(frame, vc.FPORT_REPORT, dev_eui=DEV_EUI, key=KEY)
        intervals.append(to_prediction(header, k, interval_ms, decoded))

    run(header, frames, pipe, close)
    return {"format": "vistelse-prediction", "version": 1, "intervals": intervals}


def run(header, frames, pipe, close):
    """Feed every frame at its recorded time; close(k, t_ms) at each interval
    boundary and once at the end (after the visits in progress ended)."""
    interval_ms = int(header["interval_s"] * 1000)
    k = 0
    t = 0
    for frame in frames:
        t = frame["t_ms"]
        while t >= (k + 1) * interval_ms:
            close(k, (k + 1) * interval_ms)
            k += 1
        if header["sensor"] == "ld2450":
            pipe.feed_ld2450(bytes.fromhex(frame["raw"]), t)
        else:
            pipe.feed_tof(frame["mm"], frame["status"], t)
    pipe.finish(t)
    close(k, t)


def main(argv=None):
    p = argparse.ArgumentParser(prog="vistelse replay", description=__doc__.splitlines()[0])
    p.add_argument("recording")
    p.add_argument("--out", help="write the prediction here (default: print a summary)")
    p.add_argument("--min-count", type=int, default=5, help="small-count suppression threshold (default 5)")
    args = p.parse_args(argv)
    pred = predict(args.recording, args.min_count)
    if args.out:
        write_prediction(args.out, pred["intervals"])
    for iv in pred["intervals"]:
        zones = ", ".join("%s %d visits %d person-s" % (z, v["visits"], v["person_s"]) for z, v in iv["zones"].items())
        lines = ", ".join("%s in %d out %d" % (l, v["in"], v["out"]) for l, v in iv["lines"].items())
        print("%7.0f s  %s  %s" % (iv["start_ms"] / 1000.0, zones, lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
