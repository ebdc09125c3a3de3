"""docs/accuracy.md, its JSON files and the pipeline must agree.

The page's tables are what a fresh run prints, on the benchmark recordings
in the repository and on the simulated site variations (made in memory,
the same scenes `vistelse simulate --scene variations` writes):

    .venv/bin/vistelse simulate --scene variations --out sim
    .venv/bin/vistelse evaluate recordings sim --markdown --json docs/accuracy.json
    .venv/bin/vistelse validate recordings sim --json docs/accuracy-validation.json

so the firmware cannot change its accuracy without the page being
regenerated. The leave-one-scene-out check takes about a minute and is not
rerun here: its table must be what its JSON gives, and the JSON must be
for the parameter values the firmware has today. Both evaluations take
about 20 s.
"""
import json
import os

import pytest

from vistelse_tools import evaluate, simulate, validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = open(os.path.join(ROOT, "docs", "accuracy.md"), encoding="utf-8").read()
FIGURES = json.load(open(os.path.join(ROOT, "docs", "accuracy.json")))
VALIDATION = json.load(open(os.path.join(ROOT, "docs", "accuracy-validation.json")))
RECORDINGS = os.path.join(ROOT, "recordings")


@pytest.fixture(scope="module")
def fresh():
    return {"recordings": evaluate.compare(RECORDINGS),
            "sim": evaluate.compare(lambda: simulate.variation_items())}


def same(a, b, where):
    """JSON figures equal, floats to 1e-9."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            same(a[k], b[k], where + "/" + str(k))
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-9), where
    else:
        assert a == b, where


def test_the_json_is_what_the_pipeline_and_baseline_give_today(fresh):
    same(json.loads(json.dumps(fresh)), FIGURES, "accuracy.json")


def test_every_table_is_on_the_page(fresh):
    blocks = [evaluate.markdown_targets(list(fresh.values()), list(fresh))]
    for result in fresh.values():
        blocks.append(evaluate.markdown_spread(result))
        blocks.append(evaluate.markdown_scenes(result))
    for block in blocks:
        assert block.strip() in DOC, block.splitlines()[0]


def test_targets_table_says_met_exactly_when_the_figures_meet_them(fresh):
    rows = evaluate.target_verdicts(list(fresh.values()))
    assert len(rows) == len(evaluate.TARGETS)
    for text, measured, met in rows:
        line = [l for l in DOC.splitlines() if l.startswith("| " + text + " |")]
        assert len(line) == 1, text
        assert line[0].rstrip().endswith("| %s |" % ("yes" if met else "no")), text


def test_validation_table_is_its_json_for_todays_parameters():
    assert validate.markdown(VALIDATION).strip() in DOC
    for module, path, candidates, sensor in validate.PARAMETERS:
        r = VALIDATION["%s.%s" % (module.split(".")[-1], path)]
        assert r["documented"] == validate.get(module, path)
        assert r["candidates"] == list(candidates) and r["sensor"] == sensor
