"""`vistelse evaluate`: how close the node's aggregates come to ground truth.

    vistelse evaluate REC TRUTH            one scene (replays REC through the pipeline)
    vistelse evaluate DIR                  every NAME.rec.jsonl[.gz] with NAME.truth.json
    vistelse evaluate ... --pred PRED.json compare a prediction file instead (one scene)
    vistelse evaluate ... --baseline       the naive baselines instead of the pipeline
    vistelse evaluate ... --json OUT       also write the figures as JSON

Metrics (docs/evaluation.md):
- WAPE = sum |pred - true| / sum true, over intervals (and zones or lines),
  for visits, person-seconds, line in and line out;
- MAE of maximum occupancy per interval and zone;
- dwell-histogram error: true dwell durations binned with the payload's
  edges, WAPE over bins and intervals. Intervals whose histogram the node
  withheld (fewer than min_count visits ended) are left out of both sums
  and counted;
- height-class error likewise, for overhead ToF scenes.
Across scenes the sums are added before dividing, so busy scenes weigh more.
"""
import argparse
import glob
import json
import os
import sys

from vistelse_codec import DWELL_EDGES_S, HEIGHT_EDGES_MM

from .recording import read_recording, read_truth

METRICS = ("visits", "person_s", "line_in", "line_out", "dwell", "height")


def bin_counts(values, edges):
    counts = [0] * len(edges)
    for v in values:
        k = len(edges) - 1
        while k > 0 and v < edges[k]:
            k -= 1
        counts[k] += 1
    return counts


class Score:
    """Sums for one scene (or several added together)."""

    def __init__(self):
        self.err = dict.fromkeys(METRICS, 0.0)
        self.true = dict.fromkeys(METRICS, 0.0)
        self.occ_err = 0.0
        self.occ_n = 0
        self.withheld = {"dwell": 0, "height": 0}
        self.intervals = 0

    def add(self, other):
        for m in METRICS:
            self.err[m] += other.err[m]
            self.true[m] += other.true[m]
        self.occ_err += other.occ_err
        self.occ_n += other.occ_n
        for k in self.withheld:
            self.withheld[k] += other.withheld[k]
        self.intervals += other.intervals

    def wape(self, metric):
        return self.err[metric] / self.true[metric] if self.true[metric] else None

    def figures(self):
        out = {m: self.wape(m) for m in METRICS}
        out["max_occupancy_mae"] = self.occ_err / self.occ_n if self.occ_n else None
        out["withheld"] = dict(self.withheld)
        out["intervals"] = self.intervals
        return out


def score(truth, prediction):
    """Compare interval by interval (matched on start_ms)."""
    s = Score()
    predicted = {iv["start_ms"]: iv for iv in prediction["intervals"]}
    for t in truth["intervals"]:
        p = predicted.get(t["start_ms"], {})
        s.intervals += 1
        # A method that does not measure zones (or lines) at all is not
        # scored on them, rather than scored as zero.
        for zone_id, tz in (t.get("zones", {}) if "zones" in p or not p else {}).items():
            pz = p.get("zones", {}).get(zone_id, {})
            for metric in ("visits", "person_s"):
                s.err[metric] += abs(pz.get(metric, 0) - tz[metric])
                s.true[metric] += tz[metric]
            s.occ_err += abs(pz.get("max_occupancy", 0) - tz["max_occupancy"])
            s.occ_n += 1
            true_bins = bin_counts(tz.get("dwell_s", []), DWELL_EDGES_S)
            hist = pz.get("dwell_hist")
            if hist is None:
                if sum(true_bins):
                    s.withheld["dwell"] += 1
            else:
                s.err["dwell"] += sum(abs(a - b) for a, b in zip(hist["counts"], true_bins))
                s.true["dwell"] += sum(true_bins)
        for line_id, tl in (t.get("lines", {}) if "lines" in p or not p else {}).items():
            pl = p.get("lines", {}).get(line_id, {})
            for direction in ("in", "out"):
                s.err["line_" + direction] += abs(pl.get(direction, 0) - tl[direction])
                s.true["line_" + direction] += tl[direction]
        if "heights_mm" in t:
            true_classes = bin_counts(t["heights_mm"], HEIGHT_EDGES_MM)
            classes = p.get("height_classes")
            if classes is None:
                if sum(true_classes):
                    s.withheld["height"] += 1
            else:
                s.err["height"] += sum(abs(a - b) for a, b in zip(classes["counts"], true_classes))
                s.true["height"] += sum(true_classes)
    return s


def scenes_in(folder):
    found = []
    for rec in sorted(glob.glob(os.path.join(folder, "*.rec.jsonl")) + glob.glob(os.path.join(folder, "*.rec.jsonl.gz"))):
        name = os.path.basename(rec).split(".rec.jsonl")[0]
        truth = os.path.join(folder, name + ".truth.json")
        if os.path.exists(truth):
            found.append((name, rec, truth))
    return sorted(found)


def _pct(value):
    return "   —  " if value is None else "%5.1f%%" % (100 * value)


def table(rows, out):
    out.write("%-28s %-9s %7s %7s %6s %7s %7s %7s %7s\n" % (
        "scene", "sensor", "visits", "pers-s", "occMAE", "in", "out", "dwell", "height"))
    for name, sensor, fig in rows:
        occ = fig["max_occupancy_mae"]
        out.write("%-28s %-9s %7s %7s %6s %7s %7s %7s %7s\n" % (
            name, sensor, _pct(fig["visits"]), _pct(fig["person_s"]), "  —" if occ is None else "%6.2f" % occ,
            _pct(fig["line_in"]), _pct(fig["line_out"]), _pct(fig["dwell"]), _pct(fig["height"])))


def predictor(use_baseline):
    if use_baseline:
        from .baseline import predict
    else:
        from .replay import predict
    return predict


def evaluate(scenes, predict=None, pred_file=None):
    """[(name, sensor, figures)] per scene, then per sensor and overall."""
    rows, totals = [], {}
    for name, rec, truth_path in scenes:
        header, _ = read_recording(rec)
        prediction = read_truth(pred_file) if pred_file else predict(rec)
        s = score(read_truth(truth_path), prediction)
        rows.append((name, header["sensor"], s.figures()))
        totals.setdefault(header["sensor"], Score()).add(s)
        totals.setdefault("all", Score()).add(s)
    summary = [("all " + sensor if sensor != "all" else "all scenes", sensor, s.figures())
               for sensor, s in sorted(totals.items(), key=lambda kv: kv[0] == "all")]
    return rows, summary


def main(argv=None):
    p = argparse.ArgumentParser(prog="vistelse evaluate", description="Compare the node's aggregates with ground truth.")
    p.add_argument("recording", help="a recording, or a folder of recordings with their truth files")
    p.add_argument("truth", nargs="?", help="the truth file (with a single recording)")
    p.add_argument("--pred", help="a prediction file to compare instead of replaying")
    p.add_argument("--baseline", action="store_true", help="evaluate the naive baselines")
    p.add_argument("--json", help="write the figures as JSON to this file")
    args = p.parse_args(argv)
    if os.path.isdir(args.recording):
        if args.pred:
            p.error("--pred takes a single recording and its truth")
        scenes = scenes_in(args.recording)
        if not scenes:
            p.error("no NAME.rec.jsonl[.gz] with NAME.truth.json in %s" % args.recording)
    else:
        if not args.truth:
            p.error("give the truth file after the recording")
        name = os.path.basename(args.recording).split(".rec.jsonl")[0]
        scenes = [(name, args.recording, args.truth)]
    rows, summary = evaluate(scenes, None if args.pred else predictor(args.baseline), args.pred)
    print("%s; WAPE unless marked; dwell and height exclude withheld intervals" % (
        "naive baseline" if args.baseline else "Vistelse pipeline"))
    table(rows + (summary if len(rows) > 1 else []), sys.stdout)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"method": "baseline" if args.baseline else "pipeline",
                       "scenes": {n: fig for n, _, fig in rows},
                       "summary": {n: fig for n, _, fig in summary}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
