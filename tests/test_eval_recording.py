"""Recording format v1 (read/write exactly), evaluation metrics, baselines."""
import gzip
import json
import math
import os

import pytest

from vistelse_tools import baseline, evaluate
from vistelse_tools.recording import (RecordingError, RecordingWriter, read_recording, read_truth,
                                      tof_zone_centres, write_prediction)

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recordings")
MANIFEST = json.load(open(os.path.join(SHARED, "manifest.json")))["scenes"]


@pytest.mark.parametrize("scene", MANIFEST, ids=[s["name"] for s in MANIFEST])
def test_every_shared_recording_reads_and_matches_its_manifest(scene):
    header, frames = read_recording(os.path.join(SHARED, scene["name"] + ".rec.jsonl.gz"))
    assert header["sensor"] == scene["sensor"]
    assert header["interval_s"] == scene["interval_s"]
    assert header["mount"]["height_mm"] == scene["mount_mm"]
    n = sum(1 for _ in frames)
    assert abs(n - scene["duration_s"] * header["rate_hz"]) <= 1
    truth = read_truth(os.path.join(SHARED, scene["name"] + ".truth.json"))
    assert len(truth["intervals"]) == math.ceil(scene["duration_s"] / scene["interval_s"])
    assert sum(sum(z["visits"] for z in iv["zones"].values()) for iv in truth["intervals"]) == scene["visits"]


HEADER = {"format": "vistelse-recording", "version": 1, "sensor": "ld2450", "rate_hz": 10,
          "mount": {"height_mm": 1600}, "zones": [{"id": "plaza", "polygon_mm": [[-2000, 500], [2000, 500], [0, 5000]]}],
          "lines": [{"id": "gate", "a_mm": [-1500, 3000], "b_mm": [1500, 3000]}], "interval_s": 60,
          "start": "2026-05-01T08:00:00Z", "source": "test"}
RAW = "aaff0300" + "0000" * 12 + "55cc"


@pytest.mark.parametrize("name", ["site.rec.jsonl", "site.rec.jsonl.gz"])
def test_write_then_read_is_identical(tmp_path, name):
    frames = [{"t_ms": 100 * i, "raw": RAW} for i in range(5)]
    with RecordingWriter(str(tmp_path / name), HEADER) as rec:
        for f in frames:
            rec.write_frame(f)
    header, read = read_recording(str(tmp_path / name))
    assert header == HEADER and list(read) == frames
    opener = gzip.open if name.endswith(".gz") else open
    with opener(tmp_path / name, "rt") as f:
        lines = f.read().splitlines()
    assert json.loads(lines[0]) == HEADER and lines[1] == '{"t_ms":0,"raw":"%s"}' % RAW


def write_lines(path, lines):
    path.write_text("\n".join(json.dumps(l) if not isinstance(l, str) else l for l in lines) + "\n")


@pytest.mark.parametrize("lines,message", [
    ([dict(HEADER, version=2)], "line 1: version 2 is not supported"),
    ([dict(HEADER, sensor="camera")], "sensor must be one of"),
    ([HEADER, {"t_ms": 100, "raw": RAW}, {"t_ms": 50, "raw": RAW}], "line 3: t_ms 50 goes back in time"),
    ([HEADER, {"t_ms": 0, "raw": RAW.upper()}], "line 2: raw must be the 30-byte frame"),
    ([HEADER, "{not json"], "line 2: not JSON"),
    ([dict(HEADER, sensor="vl53l5cx", mount={"height_mm": 2800, "resolution": 8, "fov_deg": 45}),
      {"t_ms": 0, "mm": [1] * 63, "status": [5] * 64}], "mm must be a list of 64 integers"),
])
def test_strict_errors_say_where(tmp_path, lines, message):
    path = tmp_path / "bad.rec.jsonl"
    write_lines(path, lines)
    with pytest.raises(RecordingError, match=message):
        header, frames = read_recording(str(path))
        list(frames)


def test_writer_refuses_what_the_reader_would_refuse(tmp_path):
    with RecordingWriter(str(tmp_path / "x.rec.jsonl"), HEADER) as rec:
        rec.write_frame({"t_ms": 10, "raw": RAW})
        with pytest.raises(RecordingError, match="goes back in time"):
            rec.write_frame({"t_ms": 5, "raw": RAW})


def test_tof_zone_centres_follow_the_spec():
    header = {"mount": {"height_mm": 2800, "resolution": 8, "fov_deg": 45}}
    c = tof_zone_centres(header)
    assert len(c) == 64
    # zone (0, 0): both angles -(3.5 * 45 / 8) degrees
    expected = 2800 * math.tan(math.radians(-3.5 * 45 / 8))
    assert c[0] == pytest.approx((expected, expected))
    assert c[63] == pytest.approx((-expected, -expected))
    assert c[1][1] == pytest.approx(c[0][1]) and c[8][0] == pytest.approx(c[0][0])


def as_prediction(truth):
    """The truth, as a perfect node would report it."""
    out = []
    for iv in truth["intervals"]:
        p = {"start_ms": iv["start_ms"], "end_ms": iv["end_ms"], "lines": json.loads(json.dumps(iv["lines"])), "zones": {}}
        for z, v in iv["zones"].items():
            p["zones"][z] = {"visits": v["visits"], "person_s": v["person_s"], "max_occupancy": v["max_occupancy"],
                             "dwell_hist": {"edges_s": [], "counts": evaluate.bin_counts(v["dwell_s"], evaluate.DWELL_EDGES_S)}}
        if "heights_mm" in iv:
            p["height_classes"] = {"counts": evaluate.bin_counts(iv["heights_mm"], evaluate.HEIGHT_EDGES_MM)}
        out.append(p)
    return {"format": "vistelse-prediction", "version": 1, "intervals": out}


def test_perfect_prediction_scores_zero_and_known_errors_score_as_defined(tmp_path):
    truth = read_truth(os.path.join(SHARED, "edge_adult_child_vl53l5cx.truth.json"))
    fig = evaluate.score(truth, as_prediction(truth)).figures()
    assert all(fig[m] == 0 for m in evaluate.METRICS) and fig["max_occupancy_mae"] == 0
    pred = as_prediction(truth)
    pred["intervals"][0]["lines"]["passage"]["in"] += 3
    pred["intervals"][1]["zones"]["footprint"]["dwell_hist"] = None   # withheld
    fig = evaluate.score(truth, pred).figures()
    total_in = sum(iv["lines"]["passage"]["in"] for iv in truth["intervals"])
    assert fig["line_in"] == pytest.approx(3 / total_in)
    assert fig["withheld"]["dwell"] == 1 and fig["dwell"] == 0
    # a prediction file round-trips through the writer and reader
    write_prediction(str(tmp_path / "p.json"), pred["intervals"])
    assert read_truth(str(tmp_path / "p.json"))["intervals"] == json.loads(json.dumps(pred["intervals"]))


def test_bin_counts_uses_half_open_bins_and_an_open_last_bin():
    assert evaluate.bin_counts([0, 4.99, 5, 3599, 3600, 10 ** 6], evaluate.DWELL_EDGES_S) == [2, 1, 0, 0, 0, 1, 2]


@pytest.mark.parametrize("scene", ["edge_uturn_ld2450", "edge_side_by_side_vl53l5cx"])
def test_baselines_give_sane_figures(scene):
    rec = os.path.join(SHARED, scene + ".rec.jsonl.gz")
    fig = evaluate.score(read_truth(os.path.join(SHARED, scene + ".truth.json")), baseline.predict(rec)).figures()
    for m in ("line_in", "line_out"):
        assert fig[m] is not None and 0 <= fig[m] < 5
    if scene.endswith("ld2450"):
        assert 0 <= fig["visits"] < 10 and fig["max_occupancy_mae"] >= 0


def test_ld2450_sign_magnitude():
    # x = -300 (bit 15 clear), y = +1200 (bit 15 set)
    slot = (300).to_bytes(2, "little") + (0x8000 | 1200).to_bytes(2, "little") + bytes(4)
    raw = ("aaff0300" + slot.hex() + "00" * 16 + "55cc")
    assert baseline.ld2450_targets(raw) == [(-300, 1200), None, None]
