"""docs/privacy.md explains every field the payload specification lets out."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CDDL = open(os.path.join(ROOT, "codecs", "vistelse.cddl")).read()
DOC = open(os.path.join(ROOT, "docs", "privacy.md")).read()

# The uplink rules: everything reachable from `report`.
UPLINK_RULES = ["report-plain", "node-status", "interval", "zone", "report-ext-map"]


def rule(name):
    match = re.search(r"^%s = (.*?)(?=^\S)" % re.escape(name), CDDL, re.S | re.M)
    assert match, name
    return match.group(1)


def uplink_fields():
    fields = set()
    for name in UPLINK_RULES:
        body = re.sub(r";[^\n]*", "", rule(name))  # drop comments
        fields.update(re.findall(r"\b([a-z][a-z_]*):", body))
    # Extension map keys are numbers; their values are named by rule.
    ext_names = {"span": "span", "height-counts": "height_classes"}
    fields.update(ext_names[n] for n in re.findall(r"\d+ => \[\+ ([a-z-]+)\]", rule("report-ext-map")))
    return fields


def documented_fields():
    section = DOC[DOC.index("## Every field that can leave the node"):DOC.index("## What never leaves")]
    return set(re.findall(r"^\| `(\w+)` \|", section, re.M))


def test_every_uplink_field_is_explained():
    fields = uplink_fields()
    # A sanity check that the CDDL was read at all.
    assert {"seq", "visits", "person_s", "max_occupancy", "dwell", "battery_mv", "span"} <= fields
    missing = fields - documented_fields()
    assert not missing, "explain these fields in docs/privacy.md: %s" % sorted(missing)


def test_nothing_documented_that_the_format_lacks():
    extra = documented_fields() - uplink_fields()
    assert not extra, "docs/privacy.md lists fields the CDDL does not have: %s" % sorted(extra)
