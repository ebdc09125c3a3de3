"""The scene simulator: truth by the spec's definitions, sensor frames by the sensors' rules."""
import pytest

from vistelse_tools import baseline, simulate as sim
from vistelse_tools.recording import check_frame, check_header

ZONE = {"id": "z", "polygon_mm": [[-2000, 1000], [2000, 1000], [2000, 4000], [-2000, 4000]]}
LINE = {"id": "gate", "a_mm": [0, 4000], "b_mm": [0, 1000]}     # facing -y: in is from x < 0 to x > 0


def header(interval_s=60, sensor="ld2450"):
    return sim.radar_header([ZONE], [LINE], interval_s=interval_s) if sensor == "ld2450" else \
        sim.tof_header([{"id": "door", "a_mm": [-1200, 0], "b_mm": [1200, 0]}], interval_s=interval_s)


def test_touching_the_line_is_not_crossing():
    p = sim.route([(-1000, 2500), (0, 2500), (-1000, 2500)], t0=0, speed_mm_s=1000)
    assert sim.truth(sim.Scene(5).add(p), header())["intervals"][0]["lines"]["gate"] == {"in": 0, "out": 0}


def test_one_walker_crossing_once():
    # at 1 m/s and 10 frames/s one frame falls exactly on the line: still one crossing
    scene = sim.Scene(20).add(sim.walker((-3000, 2500), (3000, 2500), t0=1.0, speed_mm_s=1000))
    t = sim.truth(scene, header())
    iv = t["intervals"][0]
    assert iv["lines"]["gate"] == {"in": 1, "out": 0}       # right of a->b to its left
    assert iv["zones"]["z"]["visits"] == 1
    # inside from x = 2000 to x = -2000 at 1 m/s: 4 s
    assert iv["zones"]["z"]["dwell_s"] == [pytest.approx(4.0, abs=0.11)]
    assert iv["zones"]["z"]["person_s"] == pytest.approx(4.0, abs=0.11)
    assert iv["zones"]["z"]["max_occupancy"] == 1


def test_u_turn_short_of_the_line_counts_nothing_but_a_visit():
    scene = sim.Scene(20).add(sim.u_turn((-3000, 2500), (-300, 2500), t0=1.0))
    iv = sim.truth(scene, header())["intervals"][0]
    assert iv["lines"]["gate"] == {"in": 0, "out": 0}
    assert iv["zones"]["z"]["visits"] == 1


def test_a_short_break_is_bridged_into_one_visit():
    # leaves the zone (y < 1000) for about 1 s and comes back
    p = sim.route([(1500, 2000), (1500, 800), (1500, 2000)], t0=0, speed_mm_s=600)
    iv = sim.truth(sim.Scene(10).add(p), header())["intervals"][0]
    assert iv["zones"]["z"]["visits"] == 1


def test_visits_and_dwell_land_in_the_intervals_of_start_and_end():
    # stands from t ~ 55 s to well past 60 s: visit in interval 0, dwell in interval 1
    p = sim.standing((-3000, 2500), (-1000, 2500), (-3000, 2500), t0=54, stay_s=20)
    t = sim.truth(sim.Scene(120).add(p), header())["intervals"]
    assert t[0]["zones"]["z"]["visits"] == 1 and t[1]["zones"]["z"]["visits"] == 0
    assert t[0]["zones"]["z"]["dwell_s"] == [] and len(t[1]["zones"]["z"]["dwell_s"]) == 1


def test_radar_frames_are_valid_and_carry_the_walker():
    h = header()
    scene = sim.Scene(10).add(sim.walker((1500, 3000), (-1500, 3000), t0=0, speed_mm_s=1000))
    check_header(h)
    last = None
    seen = 0
    for frame in sim.ld2450_frames(scene, h, seed=3):
        last = check_frame(frame, h, "frame", last)
        targets = [tg for tg in baseline.ld2450_targets(frame["raw"]) if tg]
        if targets and frame["t_ms"] <= 3000:
            x, y = targets[0]
            assert abs(y - 3000) < 300 and abs(x - (1500 - frame["t_ms"])) < 300
            seen += 1
    assert seen > 25      # most of 31 frames (2 % are missed)


def test_radar_loses_a_person_who_stands_still():
    scene = sim.Scene(30).add(sim.standing((2000, 3000), (0, 3000), (-2000, 3000), t0=0, stay_s=20))
    frames = list(sim.ld2450_frames(scene, header(), seed=1))
    present = [any(baseline.ld2450_targets(f["raw"])) for f in frames]
    # standing from about 1.7 s to 21.7 s; dropped after 5 s still
    assert all(present[i] is False for i in range(100, 200))
    assert sum(present[:15]) >= 12


def test_tof_sees_a_head_below_the_sensor():
    h = header(sensor="vl53l5cx")
    scene = sim.Scene(1).add(sim.Person([(0, 0, 0), (1, 0, 0)], height_mm=1700))
    frame = next(sim.vl53l5cx_frames(scene, h, seed=0))
    centre = [27, 28, 35, 36]
    valid = [frame["mm"][i] for i in centre if frame["status"][i] in (5, 9)]
    assert valid and all(abs(d - (2800 - 1700)) < 120 for d in valid)
    corner = frame["mm"][0] if frame["status"][0] in (5, 9) else None
    assert corner is None or corner > 2800


def test_tof_truth_lists_heights_in_order_of_first_event():
    h = header(sensor="vl53l5cx")
    scene = sim.Scene(20)
    scene.add(sim.walker((0, -1500), (0, 1500), t0=1, height_mm=1200))
    scene.add(sim.walker((300, 1500), (300, -1500), t0=5, height_mm=1800))
    iv = sim.truth(scene, h)["intervals"][0]
    assert iv["heights_mm"] == [1200, 1800]
    assert iv["lines"]["door"] == {"in": 1, "out": 1}


def test_sites_are_reproducible():
    a = list(sim.simulate(*sim.square_site(1, seed=5), seed=5)[0])
    b = list(sim.simulate(*sim.square_site(1, seed=5), seed=5)[0])
    assert a == b and len(a) == 600


def test_simulate_command_writes_a_readable_pair(tmp_path):
    from vistelse_tools.recording import read_recording, read_truth
    assert sim.main(["--scene", "passage", "--minutes", "0.5", "--out", str(tmp_path / "p")]) == 0
    hdr, frames = read_recording(str(tmp_path / "p.rec.jsonl.gz"))
    assert hdr["sensor"] == "vl53l5cx" and sum(1 for _ in frames) == 450
    assert read_truth(str(tmp_path / "p.truth.json"))["intervals"]


def test_the_overhead_body_model_has_a_gait_and_a_bent_head():
    h = header(sensor="vl53l5cx")
    centre = 27                     # a zone next to the point below the sensor
    fx, fy = sim.tof_zone_centres(h)[centre]
    top = []
    for t in [k / 15.0 for k in range(30)]:
        walker = sim.Person([(t - 1, fx - 1300, fy), (t + 1, fx + 1300, fy)], height_mm=1700)  # at (fx, fy) now
        body = sim.body_at(walker, t, walker.speed(t))
        top.append(2800 - sim._ray_hit(fx, fy, 2800, body) * 2800 / (2800 ** 2 + fx ** 2 + fy ** 2) ** 0.5)
    # the head's top rises and falls with the gait, by about +-20 mm
    assert max(top) - min(top) == pytest.approx(2 * sim.GAIT_BOB_MM, abs=8)
    standing = sim.Person([(0, fx, fy), (1, fx, fy)], height_mm=1700, head_down_mm=60)
    s = sim._ray_hit(fx, fy, 2800, sim.body_at(standing, 0.5, 0.0))
    assert 2800 - s * 2800 / (2800 ** 2 + fx ** 2 + fy ** 2) ** 0.5 < 1700 - 40      # a bent head is lower


def test_variations_turn_the_knob_they_name():
    items = {name: site for name, site in sim.variations()}
    slow = items["sim_radar_slow"].scene(1)
    assert all(500 <= p.speed(p.t_start + 0.5) <= 800 for p in slow.people if len(p.waypoints) == 2)
    doors = items["sim_radar_doors"]
    zone = doors.header()["zones"][0]["polygon_mm"]
    scene = doors.scene(1)
    inside_ends = sum(1 for p in scene.people
                      if sim.inside(p.waypoints[0][1:], zone) or sim.inside(p.waypoints[-1][1:], zone))
    assert inside_ends > len(scene.people) // 4        # people appear or vanish inside the zone
    assert 5 in items["sim_radar_groups"].group_sizes
    assert items["sim_tof_high_mount"].header()["mount"]["height_mm"] == 3400


def test_two_walkers_meeting_head_on_step_aside_and_still_cross():
    # on the same line toward each other: without the rule they walk through each other
    scene = sim.Scene(20)
    scene.add(sim.walker((-3000, 2500), (3000, 2500), t0=1.0, speed_mm_s=1200))
    scene.add(sim.walker((3000, 2500), (-3000, 2500), t0=1.0, speed_mm_s=1300))
    assert sim.closest_approach_mm(*scene.people) < 1
    assert scene.keep_apart(centre=(0, 2500), across=(0, 1), half_width_mm=1500) == 0
    a, b = scene.people
    assert sim.closest_approach_mm(a, b) >= 2 * sim.BODY_RADIUS_MM
    # a sidestep only while they meet: both start and end where they were drawn
    assert a.waypoints[0][1:] == (-3000, 2500) and a.waypoints[-1][1:] == (3000, 2500)
    assert b.waypoints[0][1:] == (3000, 2500) and b.waypoints[-1][1:] == (-3000, 2500)
    lines = sim.truth(scene, header())["intervals"][0]["lines"]["gate"]
    assert lines == {"in": 1, "out": 1}


def test_a_child_beside_an_adult_keeps_a_shoulder_distance_and_strangers_keep_theirs():
    child, adult = sim.group((-3000, 2500), (3000, 2500), t0=1.0, size=2, spacing_mm=300, heights=[1150, 1750])
    scene = sim.Scene(20).add([child, adult])
    scene.add(sim.walker((3000, 2300), (-3000, 2300), t0=1.0))        # a stranger right into them
    assert scene.keep_apart() == 0
    child, adult, stranger = scene.people
    # together: the two body radii (a child's in proportion to stature), closer than strangers
    together = sim.closest_approach_mm(child, adult)
    assert sim.body_radius_mm(child) + sim.body_radius_mm(adult) <= together < 2 * sim.BODY_RADIUS_MM
    for person in (child, adult):
        assert sim.closest_approach_mm(person, stranger) >= sim.body_radius_mm(person) + sim.BODY_RADIUS_MM


@pytest.mark.parametrize("name", ["sim_tof_pairs", "sim_radar_groups"])
def test_simulated_people_keep_their_bodies_apart(name):
    site = dict(sim.variations())[name]
    site.minutes = 2
    scene = site.scene(3)
    people = scene.people
    for i, a in enumerate(people):
        for b in people[i + 1:]:
            d = sim.closest_approach_mm(a, b)
            assert d is None or d >= sim.body_radius_mm(a) + sim.body_radius_mm(b) - 1e-6
