"""docs/accuracy.md, docs/accuracy.json and the pipeline must agree.

The page's tables must show the JSON's figures to the printed precision, its
targets table must say "met" exactly when the JSON's figures meet them, and
the JSON must be what `vistelse evaluate` gives today (the firmware may not
change its accuracy without the page being regenerated):

    .venv/bin/vistelse evaluate recordings --json docs/accuracy.json
    .venv/bin/vistelse evaluate recordings --baseline

Both evaluations take a few seconds.
"""
import json
import os
import re

import pytest

from vistelse_tools import evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = open(os.path.join(ROOT, "docs", "accuracy.md"), encoding="utf-8").read()
FIGURES = json.load(open(os.path.join(ROOT, "docs", "accuracy.json")))
SHARED = os.path.join(ROOT, "recordings")
COLUMNS = ("visits", "person_s", "max_occupancy_mae", "line_in", "line_out", "dwell", "height")


def tables(heading):
    """Every table under `heading` (up to the next heading of the same or a
    higher level), as lists of rows of cells, backticks removed."""
    level = heading.split(" ")[0]
    start = DOC.index("\n" + heading + "\n")
    found, rows = [], []
    for line in DOC[start + 1:].splitlines()[1:]:
        if line.startswith("#") and len(line.split(" ")[0]) <= len(level):
            break
        if line.startswith("|"):
            rows.append([c.strip().strip("`") for c in line.strip().strip("|").split("|")])
        elif rows:
            found.append(rows[2:])
            rows = []
    if rows:
        found.append(rows[2:])
    assert found, "no table under " + heading
    return found


def shown(metric, value):
    """A figure as the page prints it."""
    if value is None:
        return "—"
    return "%.2f" % value if metric == "max_occupancy_mae" else "%.1f %%" % (100 * value)


def rows_by_method(rows, method):
    return {r[0]: r[2:] for r in rows if r[1] == method}


def test_overall_table_matches_the_json():
    (rows,) = tables("## Overall")
    ours = rows_by_method(rows, "Vistelse")
    assert set(ours) == set(FIGURES["summary"])
    for scope, cells in ours.items():
        assert cells == [shown(m, FIGURES["summary"][scope][m]) for m in COLUMNS], scope


def test_per_scene_tables_match_the_json():
    ours = {}
    for rows in tables("## Per scene")[:2]:
        ours.update(rows_by_method(rows, "Vistelse"))
    assert set(ours) == set(FIGURES["scenes"])
    for scene, cells in ours.items():
        assert cells == [shown(m, FIGURES["scenes"][scene][m]) for m in COLUMNS], scene


def _percentages(text):
    return re.findall(r"\d+\.\d %", text)


def test_targets_table_says_met_exactly_when_the_figures_meet_them():
    (rows,) = tables("## Targets")
    by_target = {r[0]: r[1:] for r in rows}
    tof = FIGURES["summary"]["all vl53l5cx"]
    radar = FIGURES["summary"]["all ld2450"]
    allsc = FIGURES["summary"]["all scenes"]
    checks = [
        ("line in/out WAPE ≤ 5 %", [tof["line_in"], tof["line_out"]], 0.05),
        ("visits and person-seconds WAPE ≤ 15 %", [radar["visits"], radar["person_s"]], 0.15),
        ("dwell-histogram error ≤ 20 %", [allsc["dwell"], radar["dwell"], tof["dwell"]], 0.20),
    ]
    for prefix, values, limit in checks:
        (measured, verdict), = [v for k, v in by_target.items() if k.startswith(prefix)]
        assert _percentages(measured) == [shown("", v) for v in values], prefix
        assert verdict == ("yes" if all(v <= limit for v in values) else "no"), prefix


def test_the_json_is_what_the_pipeline_gives_today():
    rows, summary = evaluate.evaluate(evaluate.scenes_in(SHARED), evaluate.predictor(False))
    fresh = {"scenes": {n: f for n, _, f in rows}, "summary": {n: f for n, _, f in summary}}
    for part in ("scenes", "summary"):
        assert set(fresh[part]) == set(FIGURES[part])
        for name, fig in fresh[part].items():
            for key, value in fig.items():
                if isinstance(value, float):
                    assert FIGURES[part][name][key] == pytest.approx(value, abs=1e-9), (name, key)
                else:
                    assert FIGURES[part][name][key] == value, (name, key)


def test_baseline_rows_are_what_the_baseline_gives_today():
    rows, summary = evaluate.evaluate(evaluate.scenes_in(SHARED), evaluate.predictor(True))
    fresh = {n: f for n, _, f in rows + summary}
    shown_rows = {}
    for rows_ in tables("## Overall") + tables("## Per scene")[:2]:
        shown_rows.update(rows_by_method(rows_, "baseline"))
    assert set(shown_rows) == set(fresh)
    for name, cells in shown_rows.items():
        assert cells == [shown(m, fresh[name][m]) for m in COLUMNS], name
