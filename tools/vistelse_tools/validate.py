"""`vistelse validate`: do the pipeline's parameter choices hold on scenes they were not chosen on?

    vistelse validate recordings sim            leave-one-scene-out over both folders
    vistelse validate recordings --json OUT     also write the figures as JSON

For each parameter below, every candidate value is run over every scene
(the firmware constant is set for the run, nothing else changes). Then,
leaving out one scene at a time, the candidate with the lowest error over
the *other* scenes of the same sensor is picked and the left-out scene is
scored with it. Pooled over the left-out scenes this is what the choice
would give at a site it was not made on; it is reported beside the
documented value's figure. A choice that generalises is picked in (nearly)
every fold and loses little when left out.

The error a choice is judged by is the mean of the sensor's target figures
(docs/accuracy.md): person-seconds, line in and out, dwell; on the ToF also
the height-class error and the children's share error.
"""
import argparse
import importlib
import json
import sys

from .evaluate import Score, from_files, predictor, scenes_in, score

# (module, attribute path, candidates, sensor): physical parameters whose
# value is a judgement (docs/accuracy.md gives each one's reason)
PARAMETERS = (
    ("vistelse_node.track", "RADAR.grace_ms", (1500, 2000, 3000, 4000), "ld2450"),
    ("vistelse_node.track", "RADAR.gate_speed_mm_s", (600, 900, 1200, 1800), "ld2450"),
    ("vistelse_node.pipeline", "HIDDEN_BEFORE_MS", (0, 5000, 10000, 20000), "ld2450"),
    ("vistelse_node.track", "TOF.grace_ms", (500, 700, 900), "vl53l5cx"),
    ("vistelse_node.detect.tof", "HEAD_IN_VIEW_MM", (400, 500, 600), "vl53l5cx"),
    ("vistelse_node.detect.tof", "SPREAD_SIGMAS", (2, 3, 4, 6), "vl53l5cx"),
    ("vistelse_node.detect.tof", "SEPARATION_MM", (250, 300, 350), "vl53l5cx"),
    ("vistelse_node.pipeline", "CLASS_MARGIN_MM", (0, 50, 100), "vl53l5cx"),
)
OBJECTIVE = {"ld2450": ("person_s", "line_in", "line_out", "dwell"),
             "vl53l5cx": ("person_s", "line_in", "line_out", "dwell", "height", "child_share")}


def _target(module, path):
    obj = importlib.import_module(module)
    parts = path.split(".")
    for name in parts[:-1]:
        obj = getattr(obj, name)
    return obj, parts[-1]


def get(module, path):
    obj, name = _target(module, path)
    return getattr(obj, name)


def put(module, path, value):
    obj, name = _target(module, path)
    setattr(obj, name, value)


def objective(fig, sensor):
    values = [fig[m] for m in OBJECTIVE[sensor] if fig.get(m) is not None]
    return sum(values) / len(values) if values else 0.0


def scores_per_scene(items, module, path, candidates):
    """{candidate: {scene: Score}} with the parameter set to each candidate in turn."""
    predict = predictor(False)
    documented = get(module, path)
    out = {}
    try:
        for value in candidates:
            put(module, path, value)
            out[value] = {name: score(truth, predict(header, frames)) for name, header, frames, truth in items}
    finally:
        put(module, path, documented)
    return out


def leave_one_out(per_scene, scenes, sensor, documented):
    """Held-out figures for one parameter over the scenes of one sensor."""
    picks = {}
    held_out = Score()
    for left in scenes:
        def train_error(value):
            s = Score()
            for name in scenes:
                if name != left:
                    s.add(per_scene[value][name])
            return objective(s.figures(), sensor)
        # ties go to the documented value, then to the smaller candidate
        best = min(per_scene, key=lambda v: (round(train_error(v), 9), v != documented, v))
        picks[left] = best
        held_out.add(per_scene[best][left])
    pooled = Score()
    for name in scenes:
        pooled.add(per_scene[documented][name])
    return {"documented": documented, "picked": picks,
            "held_out": held_out.figures(), "documented_figures": pooled.figures(),
            "held_out_error": objective(held_out.figures(), sensor),
            "documented_error": objective(pooled.figures(), sensor)}


def validate(folders):
    items = []
    for folder in folders:
        items.extend((name, header, list(frames), truth) for name, header, frames, truth in from_files(scenes_in(folder)))
    result = {}
    for module, path, candidates, sensor in PARAMETERS:
        mine = [it for it in items if it[1]["sensor"] == sensor]
        per_scene = scores_per_scene(mine, module, path, candidates)
        key = "%s.%s" % (module.split(".")[-1], path)
        result[key] = leave_one_out(per_scene, [it[0] for it in mine], sensor, get(module, path))
        result[key]["candidates"] = list(candidates)
        result[key]["sensor"] = sensor
    return result


def markdown(result):
    """The validation table of docs/accuracy.md."""
    lines = ["| parameter | sensor | documented | picked when left out (scenes) | error, documented | error, held out |",
             "|---|---|---:|---|---:|---:|"]
    for key in sorted(result):
        r = result[key]
        picks = {}
        for v in r["picked"].values():
            picks[v] = picks.get(v, 0) + 1
        lines.append("| `%s` | %s | %s | %s | %.1f %% | %.1f %% |" % (
            key, "radar" if r["sensor"] == "ld2450" else "ToF", r["documented"],
            ", ".join("%s: %d" % kv for kv in sorted(picks.items())),
            100 * r["documented_error"], 100 * r["held_out_error"]))
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="vistelse validate", description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="folders of recordings with their truth files")
    p.add_argument("--json", help="write the figures as JSON to this file")
    args = p.parse_args(argv)
    result = validate(args.folders)
    print(markdown(result))
    print("%-34s %-10s %-14s %-26s %9s %9s" % ("parameter", "sensor", "documented", "picked when left out",
                                                "error", "held out"))
    for key, r in result.items():
        picks = {}
        for v in r["picked"].values():
            picks[v] = picks.get(v, 0) + 1
        print("%-34s %-10s %-14s %-26s %8.1f%% %8.1f%%" % (
            key, r["sensor"], r["documented"], ", ".join("%s: %d" % kv for kv in sorted(picks.items())),
            100 * r["documented_error"], 100 * r["held_out_error"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
