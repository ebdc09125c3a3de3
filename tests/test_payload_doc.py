"""docs/payload.md, the CDDL, the reference codec and the vectors must agree."""
import json
import os
import re

import vistelse_codec as vc
from vistelse_codec import config as cfg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = open(os.path.join(ROOT, "docs", "payload.md")).read()
CDDL = open(os.path.join(ROOT, "codecs", "vistelse.cddl")).read()


def table(heading):
    """Rows (lists of cells, backticks removed) of the first table under `heading`."""
    start = DOC.index("\n" + heading + "\n")
    rows = []
    for line in DOC[start + 1:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([c.strip().strip("`") for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    assert rows, "no table under " + heading
    return rows[2:]  # past the header and the separator


def cddl_rule(name):
    match = re.search(r"^%s = (.*?)(?=^\S)" % re.escape(name), CDDL, re.S | re.M)
    assert match, name
    return match.group(1)


def cddl_enum(name):
    return {label: int(value) for label, value in re.findall(r"(\w+): (\d+)", cddl_rule(name))}


def test_health_flags():
    rows = table("### Health flags")
    assert [(int(r[0]), r[1]) for r in rows] == list(enumerate(vc.HEALTH_FLAGS))
    assert cddl_enum("health-bits") == {name: bit for bit, name in enumerate(vc.HEALTH_FLAGS)}


def test_reset_causes():
    rows = table("### Reset causes")
    assert {int(r[0]): r[1] for r in rows} == vc.RESET_CAUSES
    assert cddl_enum("reset-cause") == {name: code for code, name in vc.RESET_CAUSES.items()}


def test_sensor_modes():
    assert cddl_enum("sensor-mode") == {name: code for code, name in vc.SENSOR_MODES.items()}
    row = [r for r in table("## Configuration (downlink, fPort 2)") if r[1] == "sensor_mode"][0]
    for code, name in vc.SENSOR_MODES.items():
        assert "%d %s" % (code, name) in row[4].replace("`", "")


def test_dwell_and_height_edges():
    dwell = table("### Dwell-time bins")
    assert [int(r[1]) for r in dwell] == list(vc.DWELL_EDGES_S)
    assert [int(r[2]) for r in dwell[:-1]] == list(vc.DWELL_EDGES_S[1:]) and dwell[-1][2] == "—"
    heights = table("### Height classes (overhead ToF only)")
    assert [int(r[1]) for r in heights] == list(vc.HEIGHT_EDGES_MM)
    assert "Edges in seconds: %s." % ", ".join(map(str, vc.DWELL_EDGES_S)) in CDDL
    assert "Edges in millimetres: %s" % ", ".join(map(str, vc.HEIGHT_EDGES_MM)) in CDDL
    assert cddl_rule("dwell-counts").startswith("[* uint16]")


def test_report_positions_match_cddl():
    rows = table("## Report (uplink, fPort 1)")
    members = re.findall(r"^  (\w+):", cddl_rule("report-plain"), re.M)
    assert [r[1] for r in rows][:6] == members
    assert [int(r[0]) for r in rows] == list(range(len(rows)))
    status = re.findall(r"^  (\w+):", cddl_rule("node-status"), re.M)
    assert [r[1] for r in table("### Status")] == status


def test_config_keys_match_codec_and_cddl():
    rows = table("## Configuration (downlink, fPort 2)")
    documented = {int(r[0]): r[1] for r in rows}
    codec = {cfg.K_VERSION: "config_version", cfg.K_INTERVAL: "interval_s", cfg.K_ZONES: "zones",
             cfg.K_LINES: "lines", cfg.K_MIN_COUNT: "min_count", cfg.K_MODE: "sensor_mode",
             cfg.K_STILL: "still_hold_s", cfg.K_ORIENT: "orientation"}
    assert documented == codec
    keys = {int(k) for k in re.findall(r"^  \??\s*(\d+) =>", cddl_rule("config"), re.M)}
    assert keys == set(codec)


def test_ext_keys():
    rows = table("### Extension map (`ext`)")
    assert {int(r[0]) for r in rows} == {int(k) for k in re.findall(r"\? (\d+) =>", cddl_rule("report-ext-map"))}


def test_byte_costs_list_every_valid_vector():
    rows = {r[0]: int(r[1]) for r in table("## Byte costs")}
    expected = {}
    for name in ("uplink.json", "downlink.json"):
        with open(os.path.join(ROOT, "codecs", "vectors", name)) as f:
            for v in json.load(f):
                if "data" in v["output"]:
                    description = re.sub(r" \(\d+ bytes\)$", "", v["description"])
                    expected[description] = len(v["input"]["bytes"])
    assert rows == expected
