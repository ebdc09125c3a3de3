"""docs/privacy-cost.md is `vistelse privacy-cost`'s output: its quiet
simulated day (no recordings needed) must equal a fresh run, and shows
what the guarantee costs where it matters: quiet hours."""
import io
import os
import re

from vistelse_tools import privacy_cost

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_quiet_day_in_the_doc_equals_a_fresh_run_and_costs_only_time():
    doc = open(os.path.join(ROOT, "docs", "privacy-cost.md")).read()
    start = doc.index("### " + privacy_cost.QUIET_DAY[0])
    end = doc.find("\n### ", start + 1)
    section = doc[start:] if end < 0 else doc[start:end + 1]
    out = io.StringIO()
    privacy_cost.day_section(*privacy_cost.QUIET_DAY, k=5, seed=1, out=out)
    assert out.getvalue() == section, "regenerate: vistelse privacy-cost --recordings recordings --out docs/privacy-cost.md"
    # night hours are delivered in records of an hour or more; visits stay as exact as without the guarantee
    night = [float(m) for m in re.findall(r"^\| 0[0-3] \| (\d+) min \|", section, re.M)]
    assert len(night) == 4 and min(night) >= 60
    visits = re.search(r"\| held at end \d+ \| ([\d.]+) % → ([\d.]+) % \|", section)
    assert float(visits.group(2)) <= float(visits.group(1)) + 2.0
