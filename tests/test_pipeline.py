"""The node's measurement pipeline: parser, tracker, zones and lines, aggregates."""
import json
import random

import pytest

from vistelse_node.clock import TICKS_PERIOD
from vistelse_node.pipeline import Pipeline
from vistelse_node.sensors import ld2450_frames
from vistelse_tools import simulate as sim

ZONE = [[-2500, 800], [2500, 800], [2500, 5000], [-2500, 5000]]
LINE = ([0, 5000], [0, 800])          # facing -y: in is from x < 0 to x > 0


def radar_header():
    return sim.radar_header([{"id": "z", "polygon_mm": ZONE}], [{"id": "l", "a_mm": LINE[0], "b_mm": LINE[1]}])


def run_radar(scene, seed=1, t0=0, min_count=5, interval_ms=60000):
    h = radar_header()
    p = Pipeline("ld2450", zones=[ZONE], lines=[LINE], min_count=min_count)
    out = []
    boundary = interval_ms
    frames, truth = sim.simulate(scene, h, seed)
    for f in frames:
        while f["t_ms"] >= boundary:
            out.append(p.close_interval((t0 + boundary) % TICKS_PERIOD))
            boundary += interval_ms
        p.feed_ld2450(bytes.fromhex(f["raw"]), (t0 + f["t_ms"]) % TICKS_PERIOD)
    p.finish(t0 + boundary)
    out.append(p.close_interval(t0 + boundary))
    return out, truth


def totals(intervals, key):
    return sum(iv["lines"][0][key] for iv in intervals)


def test_parser_decodes_sign_magnitude_and_skips_empty_slots():
    frame = sim.ld2450_frame([(-300, 1200, -15), None, (450, 2500, 20)])
    out = [[0, 0, 0] for _ in range(3)]
    assert ld2450_frames.parse_frame(frame, out) == 2
    assert out[0] == [-300, 1200, -15] and out[1] == [450, 2500, 20]


def test_reader_resynchronises_across_garbage_and_split_frames():
    frames = [sim.ld2450_frame([(k * 10, 1000 + k, 0)]) for k in range(5)]
    stream = b"\x00\xaa\xff" + frames[0] + b"garbage\xaa\xff\x03\x00junk" + frames[1] + frames[2][:7]
    reader = ld2450_frames.FrameReader()
    got = []
    for chunk in (stream[:11], stream[11:40], stream[40:], frames[2][7:] + frames[3], frames[4][:29], frames[4][29:]):
        ok = reader.feed(chunk)
        while ok:
            got.append(bytes(reader.frame))
            ok = reader.feed(b"")
    assert got == frames
    assert reader.dropped > 0


def test_a_walker_crossing_once_counts_once_in_its_direction():
    for x0, x1, key in ((-3500, 3500, "in"), (3500, -3500, "out")):
        ivs, _ = run_radar(sim.Scene(20).add(sim.walker((x0, 3000), (x1, 3200), t0=2)))
        other = "out" if key == "in" else "in"
        assert totals(ivs, key) == 1 and totals(ivs, other) == 0
        assert sum(iv["zones"][0]["visits"] for iv in ivs) == 1


def test_a_u_turn_short_of_the_line_counts_nothing():
    ivs, _ = run_radar(sim.Scene(20).add(sim.u_turn((-3500, 3000), (-350, 3000), t0=2)))
    assert totals(ivs, "in") == 0 and totals(ivs, "out") == 0


def test_a_person_standing_still_is_kept_while_the_radar_loses_them():
    # walks in, stands 90 s (the radar drops still people after ~5 s), walks out
    scene = sim.Scene(150).add(sim.standing((-3500, 3000), (-1200, 3000), (-3500, 3000), t0=5, stay_s=90))
    ivs, truth = run_radar(scene, min_count=1)
    assert sum(iv["zones"][0]["visits"] for iv in ivs) == 1
    dwell = [iv["zones"][0]["dwell_hist"] for iv in ivs if iv["zones"][0]["dwell_hist"]]
    assert len(dwell) == 1 and dwell[0]["counts"][3] == 1          # 60-300 s
    person_s = sum(iv["zones"][0]["person_s"] for iv in ivs)
    true_s = sum(iv["zones"]["z"]["person_s"] for iv in truth["intervals"])
    assert abs(person_s - true_s) < 0.1 * true_s


def test_a_person_counts_in_the_maximum_from_their_first_frame_once_confirmed():
    # A walks out of the zone just before B, who walked in while A was still
    # inside, is confirmed: both were in the zone together (max 2), although
    # there is no frame with two confirmed tracks inside
    p = Pipeline("ld2450", zones=[ZONE], lines=[], min_count=1)
    for k in range(40):
        targets = [(-500 + 150 * k, 3000, 150)]              # leaves at x = 2500 in frame 21
        if k >= 19:
            targets.append((-2300 + 150 * (k - 19), 2000, 150))
        p.feed_ld2450(sim.ld2450_frame(targets), 100 * k)
    assert p.close_interval(4000)["zones"][0]["max_occupancy"] == 2


def test_a_ghost_that_is_never_confirmed_does_not_raise_the_maximum():
    p = Pipeline("ld2450", zones=[ZONE], lines=[], min_count=1)
    for k in range(40):
        targets = [(-2000 + 100 * k, 3000, 100)]
        if 10 <= k < 14:
            targets.append((1000, 2000, 0))                  # sits still and fades
        p.feed_ld2450(sim.ld2450_frame(targets), 100 * k)
    assert p.close_interval(4000)["zones"][0]["max_occupancy"] == 1


def test_in_minus_out_is_the_change_in_occupancy():
    rng = random.Random(3)
    scene = sim.Scene(120)
    for k in range(8):   # people who end up inside, one at a time
        scene.add(sim.route([(-3500, 3000), (rng.uniform(600, 2000), rng.uniform(1500, 4500))], t0=5 + 12 * k))
    ivs, _ = run_radar(scene, interval_ms=60000)
    assert totals(ivs, "in") - totals(ivs, "out") == 8


def test_aggregates_are_never_negative_and_small_counts_never_leak():
    scene, header = sim.square_site(4, seed=9)
    ivs, _ = run_radar(scene, seed=9, min_count=5)
    for iv in ivs:
        for z in iv["zones"]:
            assert min(z["visits"], z["person_s"], z["max_occupancy"]) >= 0
            if z["dwell_hist"] is not None:
                assert sum(z["dwell_hist"]["counts"]) >= 5
        for l in iv["lines"]:
            assert min(l.values()) >= 0


def test_results_are_the_same_across_the_tick_wrap():
    scene = sim.Scene(40).add(sim.walker((-3500, 3000), (3500, 3000), t0=5))
    plain, _ = run_radar(scene)
    wrapped, _ = run_radar(scene, t0=TICKS_PERIOD - 12000)      # wraps 12 s in
    assert plain == wrapped


def test_tof_counts_a_walker_and_a_child_beside_an_adult():
    h = sim.tof_header([{"id": "door", "a_mm": [-1200, 0], "b_mm": [1200, 0]}])
    scene = sim.Scene(12)
    scene.add(sim.walker((-150, -1800), (-150, 1800), t0=1, height_mm=1780))
    scene.add(sim.walker((350, -1800), (350, 1800), t0=1, height_mm=1150))
    scene.add(sim.walker((0, 1800), (0, -1800), t0=7, height_mm=1700))
    frames, truth = sim.simulate(scene, h, seed=2)
    p = Pipeline("vl53l5cx", zones=[z["polygon_mm"] for z in h["zones"]],
                 lines=[(l["a_mm"], l["b_mm"]) for l in h["lines"]], mount=h["mount"], min_count=1)
    for f in frames:
        p.feed_tof(f["mm"], f["status"], f["t_ms"])
    p.finish(12000)
    iv = p.close_interval(12000)
    assert iv["lines"][0]["in"] == 2 and iv["lines"][0]["out"] == 1
    assert iv["height_classes"]["counts"] == [1, 2]


MPY_SCRIPT = r'''
import json
from vistelse_node.pipeline import Pipeline
data = json.loads(%r)
p = Pipeline("ld2450", zones=data["zones"], lines=data["lines"], min_count=1)
out = []
boundary = 60000
for t, raw in data["frames"]:
    while t >= boundary:
        out.append(p.close_interval(boundary))
        boundary += 60000
    p.feed_ld2450(bytes.fromhex(raw), t)
p.finish(boundary)
out.append(p.close_interval(boundary))
print(json.dumps(out))
'''


def test_same_aggregates_under_micropython(micropython):
    scene, header = sim.square_site(2, seed=4)
    frames, _ = sim.simulate(scene, header, 4)
    data = {"zones": [z["polygon_mm"] for z in header["zones"]],
            "lines": [(l["a_mm"], l["b_mm"]) for l in header["lines"]],
            "frames": [(f["t_ms"], f["raw"]) for f in frames]}
    namespace = {"__name__": "cpython"}
    import io
    import contextlib
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(MPY_SCRIPT % json.dumps(data), namespace)
    cpython = json.loads(buf.getvalue())
    assert sum(iv["zones"][0]["visits"] for iv in cpython) > 3
    assert json.loads(micropython(MPY_SCRIPT % json.dumps(data)).strip().splitlines()[-1]) == cpython
