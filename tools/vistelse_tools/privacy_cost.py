"""`vistelse privacy-cost`: what the privacy guarantee costs in accuracy and
time resolution (docs/privacy-cost.md is this command's output).

    vistelse privacy-cost --recordings recordings --out docs/privacy-cost.md

Two ways the same frames reach the platform:

* *without* the guarantee: every base interval as the pipeline measured it,
  breakdowns (dwell histogram, height classes) withheld below min_count
  (what nodes sent before the release stage);
* *with* it: the node's release stage (firmware/vistelse_node/release.py)
  with k = min_count: quiet intervals merged forward until a record
  describes k people, scored against the truth summed over the same spans.

WAPE per metric as `vistelse evaluate` computes it (evaluate.score), at the
resolution delivered. Then, for simulated days of a square (the demo's
day profile: quiet nights, rush hours), the time resolution delivered per
hour of day: the mean length of the record each base interval ends up in.
Intervals still held at the end of a scene (waiting for their k-th person)
are left out of both sides and counted.
"""
import argparse
import glob
import json
import os
import sys

from vistelse_node import queue as report_queue
from vistelse_node.release import Release

from . import evaluate, simulate
from .demo import SceneSensor
from .recording import read_recording, read_truth
from .replay import pipeline_for, run

METRIC_NAMES = (("visits", "visits"), ("person_s", "person-seconds"), ("line_in", "line in"),
                ("line_out", "line out"), ("dwell", "dwell histogram"), ("height", "height classes"))
DAY_PROFILE = SceneSensor.DAY_PROFILE     # the demo's: quiet nights, rush hours
# simulated days: (name, busiest-hour mean gap between arrivals in s)
QUIET_DAY = ("Quiet day: peak 30 arrivals/h, night 0.6-1.5/h", 120.0)
DAYS = (("Busy day: peak 300 arrivals/h, night 6-15/h", 12.0), QUIET_DAY)


class MemFS:
    """The release stage's flash, in memory (flashfs's read/append/replace)."""

    def __init__(self):
        self.files = {}

    def read(self, name):
        return self.files.get(name)

    def append(self, name, data):
        self.files[name] = self.files.get(name, b"") + data

    def replace(self, name, data):
        self.files[name] = bytes(data)

    def remove(self, name):
        self.files.pop(name, None)

    def size(self, name):
        return len(self.files.get(name, b""))


def base_intervals(header, frames, min_count):
    """The pipeline's intervals (with `people`) for a recording's frames."""
    pipe = pipeline_for(header, min_count)
    out = []
    run(header, frames, pipe, lambda k, t: out.append(pipe.close_interval(t)))
    return out


def _prediction(header, start_ms, end_ms, zones, lines, heights):
    iv = {"start_ms": start_ms, "end_ms": end_ms, "zones": {}, "lines": {}}
    for zone, z in zip(header["zones"], zones):
        entry = {"visits": z[0], "person_s": z[1], "max_occupancy": z[2]}
        if z[3] is not None:
            entry["dwell_hist"] = {"counts": z[3]}
        iv["zones"][zone["id"]] = entry
    for line, ln in zip(header["lines"], lines):
        iv["lines"][line["id"]] = {"in": ln[0], "out": ln[1]}
    if heights not in (0, None):
        iv["height_classes"] = {"counts": heights}
    return iv


def without_guarantee(header, intervals):
    interval_ms = int(header["interval_s"] * 1000)
    out = []
    for k, iv in enumerate(intervals):
        rec = report_queue.record_from_interval(k, dict(iv, lines=[dict(ln, total_in=0, total_out=0)
                                                                   for ln in iv["lines"]]), header["interval_s"], [0] * 8)
        out.append(_prediction(header, k * interval_ms, (k + 1) * interval_ms, rec[3], rec[4], rec[5]))
    return {"intervals": out}


def released(header, intervals, k):
    """The release stage's records for base intervals: [(seq, span, record)], and how many are still held."""
    rel = Release(MemFS(), k)
    rel.resume(0, [0] * 8)
    next_seq = 0
    out = []
    for iv in intervals:
        iv = json.loads(json.dumps(iv))
        for rec in rel.take(iv, int(header["interval_s"]), next_seq):
            out.append(rec)
            next_seq = rec[report_queue.SEQ] + rec[report_queue.SPAN]
    held = rel.held[report_queue.SPAN] if rel.held else 0
    return out, held


def with_guarantee(header, truth, records):
    """(truth, prediction) over the records' spans."""
    interval_ms = int(header["interval_s"] * 1000)
    t_out, p_out = [], []
    tivs = truth["intervals"]
    for rec in records:
        seq, span = rec[report_queue.SEQ], rec[report_queue.SPAN]
        start, end = seq * interval_ms, (seq + span) * interval_ms
        parts = tivs[seq:seq + span]
        merged = {"start_ms": start, "end_ms": end, "zones": {}, "lines": {}}
        for zid in parts[0]["zones"]:
            zs = [p["zones"][zid] for p in parts]
            merged["zones"][zid] = {"visits": sum(z["visits"] for z in zs), "person_s": sum(z["person_s"] for z in zs),
                                    "max_occupancy": max(z["max_occupancy"] for z in zs),
                                    "dwell_s": [d for z in zs for d in z["dwell_s"]]}
        for lid in parts[0]["lines"]:
            merged["lines"][lid] = {d: sum(p["lines"][lid][d] for p in parts) for d in ("in", "out")}
        if "heights_mm" in parts[0]:
            merged["heights_mm"] = [h for p in parts for h in p["heights_mm"]]
        t_out.append(merged)
        p_out.append(_prediction(header, start, end, rec[report_queue.ZONES], rec[report_queue.LINES],
                                 rec[report_queue.HEIGHTS]))
    return {"intervals": t_out}, {"intervals": p_out}


def scene_cost(header, frames, truth, k):
    """(figures without, figures with, held intervals, records) for one scene."""
    frames = list(frames)
    plain = base_intervals(header, frames, k)
    before = evaluate.score(truth, without_guarantee(header, plain))
    full = base_intervals(header, frames, 0)
    records, held = released(header, full, k)
    t, p = with_guarantee(header, truth, records)
    after = evaluate.score(t, p)
    return before, after, held, records


def simulated_day(mean_gap_s, seed, interval_s=300):
    """(header, frames, truth) of 24 h at a square, arrivals by DAY_PROFILE."""
    header = None
    frames, tivs = [], []
    for hour in range(24):
        scene, header = simulate.square_site(60, seed=seed * 1000 + hour, interval_s=interval_s,
                                             mean_gap_s=mean_gap_s / DAY_PROFILE[hour])
        off = hour * 3600000
        for f in simulate.ld2450_frames(scene, header, seed * 1000 + hour):
            frames.append({"t_ms": f["t_ms"] + off, "raw": f["raw"]})
        for iv in simulate.truth(scene, header)["intervals"]:
            tivs.append(dict(iv, start_ms=iv["start_ms"] + off, end_ms=iv["end_ms"] + off))
    return header, frames, {"intervals": tivs}


def resolution_by_hour(records, interval_s):
    """Per hour of day: (mean minutes of the record each base interval is in, share at base resolution)."""
    per_hour = [[] for _ in range(24)]
    for rec in records:
        span = rec[report_queue.SPAN]
        for s in range(rec[report_queue.SEQ], rec[report_queue.SEQ] + span):
            per_hour[(s * interval_s // 3600) % 24].append(span)
    out = []
    for spans in per_hour:
        if not spans:
            out.append((None, None))
        else:
            out.append((sum(spans) * interval_s / 60.0 / len(spans), sum(1 for s in spans if s == 1) / len(spans)))
    return out


def _pct(v):
    return "—" if v is None else "%.1f %%" % (100 * v)


def _row(name, fig_b, fig_a):
    cells = []
    for m, _ in METRIC_NAMES:
        cells.append("%s → %s" % (_pct(fig_b[m]), _pct(fig_a[m])))
    occ_b, occ_a = fig_b["max_occupancy_mae"], fig_a["max_occupancy_mae"]
    cells.append("%s → %s" % ("—" if occ_b is None else "%.2f" % occ_b, "—" if occ_a is None else "%.2f" % occ_a))
    return "| %s | %s |" % (name, " | ".join(cells))


HEAD = ("| scene | " + " | ".join(n for _, n in METRIC_NAMES) + " | max occupancy MAE |\n|---" + "|---" * 7 + "|")


def report(recordings=None, k=5, seed=1, out=sys.stdout):
    w = out.write
    w("# The privacy guarantee's cost\n\n"
      "Generated by `vistelse privacy-cost%s --out docs/privacy-cost.md` (tools/vistelse_tools/privacy_cost.py); "
      "`tests/test_privacy_cost.py` checks that the quiet day equals a fresh run. "
      "The model is in [privacy.md](privacy.md). k = %d (the default `min_count`).\n\n"
      "Each cell: WAPE (maximum occupancy: mean absolute error) **without → with** the guarantee. "
      "*Without*: every base interval as measured, breakdowns withheld below min_count (nodes before the "
      "release stage). *With*: the release stage's records, scored against the truth over the same spans "
      "(so the figure is the accuracy of what is delivered, at the resolution it is delivered).\n\n"
      % (" --recordings %s" % recordings if recordings else "", k))
    if recordings:
        w("## Shared recordings\n\n%s\n" % HEAD)
        for rec_path in sorted(glob.glob(os.path.join(recordings, "*.rec.jsonl*"))):
            name = os.path.basename(rec_path).split(".rec.jsonl")[0]
            truth_path = os.path.join(recordings, name + ".truth.json")
            if not os.path.exists(truth_path):
                continue
            header, frames = read_recording(rec_path)
            before, after, held, records = scene_cost(header, frames, read_truth(truth_path), k)
            fb, fa = before.figures(), after.figures()
            merged = sum(r[report_queue.SPAN] for r in records if r[report_queue.SPAN] > 1)
            w(_row("%s (%d × %d s; merged %d, held at end %d)" % (name, fb["intervals"], header["interval_s"],
                                                                merged, held), fb, fa) + "\n")
        w("\n")
    simulated_section(k, seed, out)


def simulated_section(k=5, seed=1, out=sys.stdout):
    """The simulated days' tables, one section per day."""
    out.write("## Simulated days (radar over a square, 5-minute intervals)\n\n"
              "24 one-hour scenes from the scene simulator (seed %d), arrivals following the demo's day profile. "
              "\"Held at end\": intervals still waiting for their k-th person when the day ends (left out of "
              "both sides; on a node they go out with the next morning's first people). Time resolution: the mean "
              "length (minutes) of the record a 5-minute interval is delivered in, and the share of intervals "
              "delivered at full 5-minute resolution (an interval in which nobody was seen goes out at once, on "
              "its own, when nothing is held: that is why a quiet hour can show full resolution).\n\n" % seed)
    for name, gap in DAYS:
        day_section(name, gap, k, seed, out)


def day_section(name, gap, k=5, seed=1, out=sys.stdout):
    """One simulated day: WAPE without and with the guarantee, time resolution by hour of day
    (tests/test_privacy_cost.py compares the quiet day's with a fresh run)."""
    w = out.write
    header, frames, truth = simulated_day(gap, seed)
    before, after, held, records = scene_cost(header, frames, truth, k)
    res = resolution_by_hour(records, 300)
    w("### %s\n\n%s\n%s\n\n| hour | record length | at 5 min |\n|---|---|---|\n"
      % (name, HEAD, _row("held at end %d" % held, before.figures(), after.figures())))
    for h in range(24):
        mean, share = res[h]
        w("| %02d | %s | %s |\n" % (h, "—" if mean is None else "%.0f min" % mean, _pct(share)))
    w("\n")


def main(argv=None):
    p = argparse.ArgumentParser(prog="vistelse privacy-cost", description=__doc__.splitlines()[0])
    p.add_argument("--recordings", help="folder of NAME.rec.jsonl[.gz] with NAME.truth.json")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", help="write the Markdown here (default: stdout)")
    args = p.parse_args(argv)
    if args.out:
        with open(args.out, "w") as f:
            report(args.recordings, args.k, args.seed, f)
    else:
        report(args.recordings, args.k, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
