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
- height classes (overhead ToF), among the people the node classified:
  per interval the true classes are scaled to the number classified, and
  the class counts compared (WAPE); coverage is the number classified over
  the number of people in the truth; the children's share error is the
  mean over intervals of |predicted share - true share| (a fraction: 0.05 is
  5 percentage points). Intervals whose classes the node withheld are left
  out and counted.
Across scenes the sums are added before dividing, so busy scenes weigh more.
The spread over scenes (best, median, worst) is given beside the pooled
figure (`spread`).
"""
import argparse
import glob
import json
import os
import sys

from vistelse_codec import DWELL_EDGES_S, HEIGHT_EDGES_MM

from .recording import read_recording, read_truth

METRICS = ("visits", "person_s", "line_in", "line_out", "dwell", "height")
# every figure of a scene, in table order; lower is better for all but coverage
FIGURES = ("visits", "person_s", "max_occupancy_mae", "line_in", "line_out", "dwell", "height",
           "height_coverage", "child_share")


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
        self.classified = 0           # people given a height class
        self.people = 0               # people in the truth, in intervals scored for heights
        self.share_err = 0.0          # sum over intervals of |children's share error|
        self.share_n = 0

    def add(self, other):
        for m in METRICS:
            self.err[m] += other.err[m]
            self.true[m] += other.true[m]
        self.occ_err += other.occ_err
        self.occ_n += other.occ_n
        for k in self.withheld:
            self.withheld[k] += other.withheld[k]
        self.intervals += other.intervals
        self.classified += other.classified
        self.people += other.people
        self.share_err += other.share_err
        self.share_n += other.share_n

    def wape(self, metric):
        return self.err[metric] / self.true[metric] if self.true[metric] else None

    def figures(self):
        out = {m: self.wape(m) for m in METRICS}
        out["max_occupancy_mae"] = self.occ_err / self.occ_n if self.occ_n else None
        out["height_coverage"] = self.classified / self.people if self.people else None
        out["child_share"] = self.share_err / self.share_n if self.share_n else None
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
            elif sum(true_classes):
                n, n_true = sum(classes["counts"]), sum(true_classes)
                s.classified += n
                s.people += n_true
                if n:
                    scale = float(n) / n_true
                    s.err["height"] += sum(abs(a - b * scale) for a, b in zip(classes["counts"], true_classes))
                    s.true["height"] += n
                    s.share_err += abs(classes["counts"][0] / float(n) - true_classes[0] / float(n_true))
                    s.share_n += 1
    return s


def spread(figures):
    """Best, median and worst of each figure over scenes (None where no scene has it)."""
    out = {}
    for m in FIGURES:
        values = sorted(f[m] for f in figures if f.get(m) is not None)
        if m == "height_coverage":
            values.reverse()                  # more coverage is better
        out[m] = {"best": values[0], "median": median(values), "worst": values[-1],
                  "scenes": len(values)} if values else None
    return out


def median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


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
    out.write("%-28s %-9s %7s %7s %6s %7s %7s %7s %7s %7s %7s\n" % (
        "scene", "sensor", "visits", "pers-s", "occMAE", "in", "out", "dwell", "height", "h.cov", "child"))
    for name, sensor, fig in rows:
        occ = fig["max_occupancy_mae"]
        out.write("%-28s %-9s %7s %7s %6s %7s %7s %7s %7s %7s %7s\n" % (
            name, sensor, _pct(fig["visits"]), _pct(fig["person_s"]), "  —" if occ is None else "%6.2f" % occ,
            _pct(fig["line_in"]), _pct(fig["line_out"]), _pct(fig["dwell"]), _pct(fig["height"]),
            _pct(fig["height_coverage"]), _pp(fig["child_share"])))


def _pp(value):
    return "   —  " if value is None else "%4.1fpp" % (100 * value)


def predictor(use_baseline):
    """predict(header, frames) -> prediction dict: the pipeline or the baselines."""
    if use_baseline:
        from .baseline import predict_frames
    else:
        from .replay import predict_frames
    return predict_frames


def from_files(scenes):
    """(name, header, frames, truth) for [(name, rec_path, truth_path)], read lazily."""
    for name, rec, truth_path in scenes:
        header, frames = read_recording(rec)
        yield name, header, frames, read_truth(truth_path)


def evaluate(scenes, predict=None, pred_file=None):
    """[(name, sensor, figures)] per scene, then per sensor and overall (each
    with the spread over its scenes). scenes: [(name, rec_path, truth_path)]."""
    if pred_file:
        predict = lambda header, frames: read_truth(pred_file)  # noqa: E731 - one scene, a file
    return evaluate_items(from_files(scenes), predict)


def evaluate_items(items, predict):
    """As evaluate(), for (name, header, frames, truth) items (simulated scenes)."""
    rows, totals = [], {}
    for name, header, frames, truth in items:
        s = score(truth, predict(header, frames))
        rows.append((name, header["sensor"], s.figures()))
        totals.setdefault(header["sensor"], Score()).add(s)
        totals.setdefault("all", Score()).add(s)
    summary = []
    for sensor, s in sorted(totals.items(), key=lambda kv: kv[0] == "all"):
        fig = s.figures()
        fig["spread"] = spread([f for _, sn, f in rows if sensor in ("all", sn)])
        summary.append(("all " + sensor if sensor != "all" else "all scenes", sensor, fig))
    return rows, summary


# --- the tables of docs/accuracy.md ----------------------------------------------------

LABELS = (("visits", "visits"), ("person_s", "person-s"), ("max_occupancy_mae", "max occ. MAE"),
          ("line_in", "line in"), ("line_out", "line out"), ("dwell", "dwell"), ("height", "height class"),
          ("height_coverage", "height coverage"), ("child_share", "children's share"))
GROUPS = (("all ld2450", "radar"), ("all vl53l5cx", "overhead ToF"))
# (text, summary scope, figure, limit, at most / at least)
TARGETS = (
    ("radar person-seconds WAPE ≤ 12 %", "all ld2450", ("person_s",), 0.12),
    ("ToF person-seconds WAPE ≤ 10 %", "all vl53l5cx", ("person_s",), 0.10),
    ("ToF height-class error ≤ 12 %", "all vl53l5cx", ("height",), 0.12),
    ("ToF height coverage ≥ 80 %", "all vl53l5cx", ("height_coverage",), -0.80),
    ("children's share error ≤ 5 pp", "all vl53l5cx", ("child_share",), 0.05),
    ("radar line in/out WAPE ≤ 8 %", "all ld2450", ("line_in", "line_out"), 0.08),
    ("ToF line in/out WAPE ≤ 3 %", "all vl53l5cx", ("line_in", "line_out"), 0.03),
    ("dwell-histogram error ≤ 12 %", "all scenes", ("dwell",), 0.12),
)


def shown(metric, value):
    """A figure as docs/accuracy.md prints it."""
    if value is None:
        return "—"
    if metric == "max_occupancy_mae":
        return "%.2f" % value
    if metric == "child_share":
        return "%.1f pp" % (100 * value)
    return "%.1f %%" % (100 * value)


def compare(scenes_or_items):
    """Pipeline and baseline on the same scenes: {method: {"scenes", "summary"}}.
    scenes_or_items: a folder, or a function returning fresh (name, header,
    frames, truth) items (each method reads them once)."""
    if isinstance(scenes_or_items, str):
        folder = scenes_or_items
        scenes_or_items = lambda: from_files(scenes_in(folder))  # noqa: E731
    out = {}
    for method, use_baseline in (("pipeline", False), ("baseline", True)):
        rows, summary = evaluate_items(scenes_or_items(), predictor(use_baseline))
        out[method] = {"scenes": {n: f for n, _, f in rows}, "summary": {n: f for n, _, f in summary},
                       "sensors": {n: sensor for n, sensor, _ in rows}}
    return out


def markdown_spread(result):
    """Per sensor: every figure pooled, and its best, median and worst scene, ours and the baseline's."""
    ours, base = result["pipeline"]["summary"], result["baseline"]["summary"]
    lines = []
    for scope, title in GROUPS:
        if scope not in ours:
            continue
        lines.append("| %s | Vistelse pooled | best | median | worst | baseline pooled | best | median | worst |" % title)
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for m, label in LABELS:
            cells = []
            for fig in (ours[scope], base.get(scope, {})):
                sp = (fig.get("spread") or {}).get(m)
                cells += [shown(m, fig.get(m))] + ([shown(m, sp[k]) for k in ("best", "median", "worst")] if sp
                                                   else ["—"] * 3)
            lines.append("| %s | %s |" % (label, " | ".join(cells)))
        lines.append("")
    return "\n".join(lines)


def markdown_scenes(result):
    """Every scene, ours and the baseline's."""
    ours, base = result["pipeline"], result["baseline"]
    lines = ["| scene | method | " + " | ".join(label for _, label in LABELS) + " |",
             "|---|---|" + "---:|" * len(LABELS)]
    for name in sorted(ours["scenes"], key=lambda n: (ours["sensors"][n], n)):
        for method, res in (("Vistelse", ours), ("baseline", base)):
            fig = res["scenes"][name]
            lines.append("| `%s` | %s | %s |" % (name, method, " | ".join(shown(m, fig[m]) for m, _ in LABELS)))
    return "\n".join(lines) + "\n"


def target_verdicts(results):
    """[(target, [measured per result], met)] for the issue's targets, and
    the figures where ours is not at least 3x better than the baseline."""
    rows = []
    for text, scope, metrics, limit in TARGETS:
        measured, met = [], True
        for res in results:
            fig = res["pipeline"]["summary"].get(scope, {})
            values = [fig.get(m) for m in metrics]
            measured.append(", ".join(shown(m, v) for m, v in zip(metrics, values)))
            for v in values:
                met = met and v is not None and (v <= limit if limit >= 0 else v >= -limit)
        rows.append((text, measured, met))
    return rows


def not_three_times_better(result):
    """[(scope, figure, ours, baseline)] where the baseline's pooled error is
    less than 3x ours (figures the baseline does not measure are left out)."""
    out = []
    for scope, _ in GROUPS:
        ours = result["pipeline"]["summary"].get(scope)
        base = result["baseline"]["summary"].get(scope)
        if not ours or not base:
            continue
        for m, _ in LABELS:
            if m == "height_coverage" or ours.get(m) is None or base.get(m) is None:
                continue
            if base[m] < 3 * ours[m]:
                out.append((scope, m, ours[m], base[m]))
    return out


def markdown_targets(results, names):
    lines = ["| target | " + " | ".join(names) + " | met? |", "|---|" + "---|" * len(names) + "---|"]
    for text, measured, met in target_verdicts(results):
        lines.append("| %s | %s | %s |" % (text, " | ".join(measured), "yes" if met else "no"))
    cells = []
    for res in results:
        misses = not_three_times_better(res)
        cells.append("all" if not misses else "not: " + "; ".join(
            "%s %s %s vs %s" % (dict(GROUPS)[scope], dict(LABELS)[m], shown(m, o), shown(m, b))
            for scope, m, o, b in misses))
    met = all(not not_three_times_better(res) for res in results)
    lines.append("| every figure ≥ 3× better than the baseline | %s | %s |" % (" | ".join(cells), "yes" if met else "no"))
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="vistelse evaluate", description="Compare the node's aggregates with ground truth.")
    p.add_argument("recording", help="a recording, or a folder of recordings with their truth files")
    p.add_argument("truth", nargs="?", help="the truth file (with a single recording)")
    p.add_argument("--pred", help="a prediction file to compare instead of replaying")
    p.add_argument("--baseline", action="store_true", help="evaluate the naive baselines")
    p.add_argument("--json", help="write the figures as JSON to this file")
    p.add_argument("--markdown", action="store_true",
                   help="pipeline and baseline on one or two folders (RECORDING [TRUTH] are folders): "
                        "the tables of docs/accuracy.md, and with --json their figures")
    args = p.parse_args(argv)
    if args.markdown:
        folders = [f for f in (args.recording, args.truth) if f]
        if not all(os.path.isdir(f) for f in folders):
            p.error("--markdown takes one or two folders")
        results = {os.path.basename(os.path.normpath(f)): compare(f) for f in folders}
        print(markdown_targets(list(results.values()), list(results)))
        for name, result in results.items():
            print("%s:\n" % name)
            print(markdown_spread(result))
            print(markdown_scenes(result))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1, sort_keys=True)
        return 0
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
