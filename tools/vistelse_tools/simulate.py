"""Scene simulator: people on a floor, seen by an LD2450 radar or a VL53L5CX.

Independent of the shared recordings: used for property tests, for the
demo's virtual nodes, and by anyone who wants to see what the pipeline does
with a situation before installing a sensor.

    scene = Scene(duration_s=120)
    scene.add(walker((-3000, 2500), (3000, 2500), t0=2.0))
    header = radar_header(zones=[...], lines=[...])
    frames, truth = simulate(scene, header, seed=1)

People move along straight segments between waypoints (x, y in floor mm, t
in s) and exist between their first and last waypoint. The ground truth is
computed from the true positions with the definitions of
specs/recording-format.md (2 s visit bridging, crossings by segment
intersection, in = from the right of a->b to its left).

`vistelse simulate --scene square|passage --minutes N --out PREFIX` writes
PREFIX.rec.jsonl.gz and PREFIX.truth.json.
"""
import argparse
import json
import math
import random
import sys

from .recording import RecordingWriter, tof_zone_centres

VISIT_BRIDGE_S = 2.0


class Person:
    def __init__(self, waypoints, height_mm=1720):
        if len(waypoints) < 2 or any(b[0] < a[0] for a, b in zip(waypoints, waypoints[1:])):
            raise ValueError("a person needs at least two waypoints in time order")
        self.waypoints = [(float(t), float(x), float(y)) for t, x, y in waypoints]
        self.height_mm = height_mm

    @property
    def t_start(self):
        return self.waypoints[0][0]

    @property
    def t_end(self):
        return self.waypoints[-1][0]

    def position(self, t):
        """(x, y) in mm at time t (s), or None when the person is not there."""
        w = self.waypoints
        if t < w[0][0] or t > w[-1][0]:
            return None
        for (t0, x0, y0), (t1, x1, y1) in zip(w, w[1:]):
            if t0 <= t <= t1:
                f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                return (x0 + f * (x1 - x0), y0 + f * (y1 - y0))
        return None

    def speed(self, t, dt=0.1):
        a, b = self.position(t), self.position(t + dt)
        if a is None or b is None:
            return 0.0
        return math.hypot(b[0] - a[0], b[1] - a[1]) / dt


def walker(start, end, t0, speed_mm_s=1300, height_mm=1720):
    """Walk in a straight line from start to end, starting at t0."""
    d = math.hypot(end[0] - start[0], end[1] - start[1])
    return Person([(t0, start[0], start[1]), (t0 + d / speed_mm_s, end[0], end[1])], height_mm)


def route(points, t0, speed_mm_s=1300, height_mm=1720, pauses=None):
    """Walk through points; pauses maps a point index to seconds standing there."""
    pauses = pauses or {}
    t = t0
    way = [(t, points[0][0], points[0][1])]
    for i in range(1, len(points)):
        if pauses.get(i - 1):
            t += pauses[i - 1]
            way.append((t, points[i - 1][0], points[i - 1][1]))
        t += math.hypot(points[i][0] - points[i - 1][0], points[i][1] - points[i - 1][1]) / speed_mm_s
        way.append((t, points[i][0], points[i][1]))
    return Person(way, height_mm)


def u_turn(start, turn, t0, speed_mm_s=1200, height_mm=1720):
    """Walk to `turn` and back to `start`."""
    return route([start, turn, start], t0, speed_mm_s, height_mm)


def standing(start, spot, end, t0, stay_s, speed_mm_s=1200, height_mm=1720):
    """Walk to `spot`, stand still there for stay_s, walk on to `end`."""
    return route([start, spot, end], t0, speed_mm_s, height_mm, pauses={1: stay_s})


def group(start, end, t0, size=3, spacing_mm=600, speed_mm_s=1200, heights=None):
    """People walking abreast (side by side across the direction of travel)."""
    dx, dy = end[0] - start[0], end[1] - start[1]
    d = math.hypot(dx, dy)
    nx, ny = -dy / d, dx / d                    # unit normal: across the direction
    people = []
    for k in range(size):
        off = (k - (size - 1) / 2.0) * spacing_mm
        h = heights[k] if heights else 1720
        people.append(walker((start[0] + nx * off, start[1] + ny * off), (end[0] + nx * off, end[1] + ny * off),
                             t0, speed_mm_s, h))
    return people


class Scene:
    def __init__(self, duration_s):
        self.duration_s = duration_s
        self.people = []

    def add(self, people):
        if isinstance(people, Person):
            people = [people]
        self.people.extend(people)
        return self


# --- geometry (as the spec defines it) ----------------------------------------

def inside(point, polygon):
    x, y = point
    result = False
    j = len(polygon) - 1
    for i in range(len(polygon)):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            result = not result
        j = i
    return result


def cross(a, b, p):
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def crossing(p, q, a, b):
    """'in', 'out' or None for a step p -> q (neither on the line) over a -> b."""
    c1, c2 = cross(a, b, p), cross(a, b, q)
    if c1 == 0 or c2 == 0 or (c1 > 0) == (c2 > 0):
        return None
    d1, d2 = cross(p, q, a), cross(p, q, b)
    if d1 != 0 and d2 != 0 and (d1 > 0) == (d2 > 0):
        return None
    return "in" if c1 < 0 < c2 else "out"


# --- ground truth -----------------------------------------------------------------

def visits_of(inside_frames, rate):
    """[(start, end)] frame indices (end exclusive) of visits: runs of inside
    frames, with breaks shorter than VISIT_BRIDGE_S bridged."""
    runs = []
    start = None
    for i, now in enumerate(inside_frames):
        if now and start is None:
            start = i
        elif not now and start is not None:
            runs.append([start, i])
            start = None
    if start is not None:
        runs.append([start, len(inside_frames)])
    merged = []
    for run in runs:
        if merged and (run[0] - merged[-1][1]) / rate < VISIT_BRIDGE_S:
            merged[-1][1] = run[1]
        else:
            merged.append(run)
    return merged


def truth(scene, header):
    """Truth intervals per the recording spec, from true positions at frame times."""
    rate = header["rate_hz"]
    n_frames = int(round(scene.duration_s * rate))
    interval_ms = int(header["interval_s"] * 1000)
    frame_ms = [int(round(i * 1000 / rate)) for i in range(n_frames)]
    n_iv = max(1, -(-int(round(n_frames * 1000 / rate)) // interval_ms))
    ivs = [{"start_ms": k * interval_ms, "end_ms": (k + 1) * interval_ms,
            "zones": {z["id"]: {"visits": 0, "person_s": 0.0, "max_occupancy": 0, "dwell_s": []}
                      for z in header["zones"]},
            "lines": {l["id"]: {"in": 0, "out": 0} for l in header["lines"]}} for k in range(n_iv)]
    first_event = [dict() for _ in range(n_iv)]     # person -> time of first visit start or crossing

    def interval_of(frame):
        return n_iv - 1 if frame >= n_frames else min(frame_ms[frame] // interval_ms, n_iv - 1)

    positions = [[person.position(t / 1000.0) for t in frame_ms] for person in scene.people]
    for z in header["zones"]:
        zid = z["id"]
        occupancy = [0] * n_frames
        for pid, track in enumerate(positions):
            flags = [p is not None and inside(p, z["polygon_mm"]) for p in track]
            for i, now in enumerate(flags):
                occupancy[i] += now
            for start, end in visits_of(flags, rate):
                k = interval_of(start)
                ivs[k]["zones"][zid]["visits"] += 1
                first_event[k].setdefault(pid, frame_ms[start])
                ivs[interval_of(end)]["zones"][zid]["dwell_s"].append(round((end - start) / rate, 2))
        for i, count in enumerate(occupancy):
            zs = ivs[interval_of(i)]["zones"][zid]
            zs["person_s"] += count / rate
            zs["max_occupancy"] = max(zs["max_occupancy"], count)
    for line in header["lines"]:
        a, b = line["a_mm"], line["b_mm"]
        for pid, track in enumerate(positions):
            # A frame exactly on the line is neither side: compare with the
            # last position that was off it, so touching is not crossing and
            # a step through the line in two frames still counts once.
            last = None
            for i in range(n_frames):
                p = track[i]
                if p is None:
                    last = None
                    continue
                if cross(a, b, p) == 0:
                    continue
                d = crossing(last, p, a, b) if last is not None else None
                last = p
                if d:
                        k = interval_of(i)
                        ivs[k]["lines"][line["id"]][d] += 1
                        first_event[k].setdefault(pid, frame_ms[i])
    for k, iv in enumerate(ivs):
        for zs in iv["zones"].values():
            zs["person_s"] = round(zs["person_s"], 2)
        if header["sensor"] == "vl53l5cx":
            order = sorted(first_event[k], key=lambda pid: first_event[k][pid])
            iv["heights_mm"] = [int(round(scene.people[pid].height_mm)) for pid in order]
    return {"format": "vistelse-truth", "version": 1, "intervals": ivs}


# --- sensor models --------------------------------------------------------------------

def _sign_magnitude(v):
    # LD2450: bit 15 set means positive, low 15 bits the magnitude
    v = int(round(v))
    return (0x8000 | min(v, 0x7FFF)) if v >= 0 else min(-v, 0x7FFF)


def ld2450_frame(targets):
    """The 30-byte UART frame for up to three (x_mm, y_mm, speed_cm_s) targets."""
    out = bytearray(b"\xaa\xff\x03\x00")
    for k in range(3):
        if k < len(targets) and targets[k] is not None:
            x, y, v = targets[k]
            for value in (_sign_magnitude(x), _sign_magnitude(y), _sign_magnitude(v), 360):
                out += value.to_bytes(2, "little")
        else:
            out += bytes(8)
    out += b"\x55\xcc"
    return bytes(out)


class RadarModel:
    """LD2450 behaviour worth testing against (see shared/recordings/README.md)."""
    range_mm = (300, 6000)
    half_angle_deg = 60
    merge_mm = 500          # people closer than this come out as one target
    still_drop_s = 5.0      # a person standing still this long disappears
    still_speed_mm_s = 80
    noise_mm = 20           # position noise: this plus noise_rel of the range (one sd)
    noise_rel = 0.01
    miss_p = 0.02           # a person missed in one frame
    ghost_per_min = 0.3     # short-lived false targets
    reorder_p = 0.01        # the radar reorders its slots in a frame


def ld2450_frames(scene, header, seed=0, model=RadarModel):
    rng = random.Random(seed)
    rate = header["rate_hz"]
    still_since = {}
    ghost = None
    prev_slots = [None, None, None]
    for i in range(int(round(scene.duration_s * rate))):
        t = i / rate
        seen = []
        for pid, person in enumerate(scene.people):
            p = person.position(t)
            if p is None:
                continue
            x, y = p
            r = math.hypot(x, y)
            if not (model.range_mm[0] <= r <= model.range_mm[1]) or y <= 0 or \
                    abs(math.degrees(math.atan2(x, y))) > model.half_angle_deg:
                continue
            if person.speed(t) < model.still_speed_mm_s:
                still_since.setdefault(pid, t)
                if t - still_since[pid] > model.still_drop_s:
                    continue
            else:
                still_since.pop(pid, None)
            if rng.random() < model.miss_p:
                continue
            q = person.position(t + 0.1) or p
            radial = ((q[0] - x) * x + (q[1] - y) * y) / max(r, 1) / 0.1 / 10.0   # cm/s, + moving away
            seen.append([x, y, radial, 1])
        # merge people closer than merge_mm into one target between them
        merged = []
        for s in sorted(seen, key=lambda s: math.hypot(s[0], s[1])):
            for m in merged:
                if math.hypot(m[0] / m[3] - s[0], m[1] / m[3] - s[1]) < model.merge_mm:
                    for k in range(3):
                        m[k] += s[k]
                    m[3] += 1
                    break
            else:
                merged.append(list(s))
        targets = []
        for m in merged[:3]:                 # the three nearest
            x, y, v = m[0] / m[3], m[1] / m[3], m[2] / m[3]
            sigma = model.noise_mm + model.noise_rel * math.hypot(x, y)
            targets.append((x + rng.gauss(0, sigma), y + rng.gauss(0, sigma), v))
        if ghost is None and rng.random() < model.ghost_per_min / 60.0 / rate:
            ghost = [t + rng.uniform(1, 10), rng.uniform(-2000, 2000), rng.uniform(800, 5000)]
        if ghost is not None:
            if t > ghost[0]:
                ghost = None
            elif len(targets) < 3:
                targets.append((ghost[1] + rng.gauss(0, 30), ghost[2] + rng.gauss(0, 30), 0))
        # The radar keeps a target in its slot from frame to frame, and now
        # and then reorders its slots.
        slots = [None, None, None]
        for target in sorted(targets, key=lambda tg: min(
                [math.hypot(tg[0] - p[0], tg[1] - p[1]) for p in prev_slots if p] or [1e9])):
            free = [k for k in range(3) if slots[k] is None]
            near = [k for k in free if prev_slots[k] and
                    math.hypot(target[0] - prev_slots[k][0], target[1] - prev_slots[k][1]) < 800]
            slots[(near or [k for k in free if not prev_slots[k]] or free)[0]] = target
        if rng.random() < model.reorder_p:
            rng.shuffle(slots)
        prev_slots = slots
        targets = slots
        yield {"t_ms": int(round(t * 1000)), "raw": ld2450_frame(targets).hex()}


def _ray_hit(fx, fy, height_mm, px, py, person_h, radius=220.0):
    """Distance along the ray from the sensor (0, 0, H) to floor point (fx, fy)
    at which it meets a vertical cylinder (a person), or None."""
    length = math.sqrt(fx * fx + fy * fy + height_mm * height_mm)
    dx, dy, dz = fx / length, fy / length, -height_mm / length
    best = None
    # top of the head: the plane z = person_h
    s = (person_h - height_mm) / dz
    if s > 0 and math.hypot(dx * s - px, dy * s - py) <= radius * 0.6:
        best = s
    # the side of the body
    a = dx * dx + dy * dy
    if a > 1e-12:
        b = -2 * (dx * px + dy * py)
        c = px * px + py * py - radius * radius
        disc = b * b - 4 * a * c
        if disc >= 0:
            s = (-b - math.sqrt(disc)) / (2 * a)
            z = height_mm + dz * s
            if s > 0 and 0 <= z <= person_h * 0.82 and (best is None or s < best):
                best = s       # shoulders and below are wider than the head
    return best


def vl53l5cx_frames(scene, header, seed=0):
    rng = random.Random(seed)
    rate = header["rate_hz"]
    h = header["mount"]["height_mm"]
    centres = tof_zone_centres(header)
    floor = [math.sqrt(x * x + y * y + h * h) for x, y in centres]
    for i in range(int(round(scene.duration_s * rate))):
        t = i / rate
        here = [(p, person.height_mm) for person in scene.people for p in [person.position(t)] if p is not None]
        mm, status = [], []
        for z, (fx, fy) in enumerate(centres):
            d = floor[z]
            for (px, py), ph in here:
                s = _ray_hit(fx, fy, h, px, py, ph)
                if s is not None and s < d:
                    d = s
            d = d * (1 + rng.gauss(0, 0.01)) + rng.gauss(0, 5)
            u = rng.random()
            if u < 0.01:
                mm.append(0)
                status.append(255)
            else:
                mm.append(max(1, int(round(d))))
                status.append(9 if u < 0.02 else 5)
        yield {"t_ms": int(round(t * 1000)), "mm": mm, "status": status}


class QuietRadarModel(RadarModel):
    """The LD2450's limits (range, three targets, merging, still people
    dropped) without its noise, misses and ghosts: for checking accounting."""
    noise_mm = 0
    noise_rel = 0.0
    miss_p = 0.0
    ghost_per_min = 0.0
    reorder_p = 0.0


def simulate(scene, header, seed=0, radar_model=RadarModel):
    """(frames, truth) for the scene as the header's sensor would record it."""
    frames = ld2450_frames(scene, header, seed, radar_model) if header["sensor"] == "ld2450" else \
        vl53l5cx_frames(scene, header, seed)
    return frames, truth(scene, header)


# --- ready-made sites -------------------------------------------------------------------

def radar_header(zones, lines, interval_s=60, height_mm=1800, source="vistelse simulate"):
    return {"format": "vistelse-recording", "version": 1, "sensor": "ld2450", "rate_hz": 10,
            "mount": {"height_mm": height_mm}, "zones": zones, "lines": lines, "interval_s": interval_s,
            "start": "2026-01-01T00:00:00Z", "source": source}


def tof_header(lines, interval_s=60, height_mm=2800, source="vistelse simulate"):
    half = int(height_mm * math.tan(math.radians(22.5)))
    zone = {"id": "footprint", "polygon_mm": [[-half, -half], [half, -half], [half, half], [-half, half]]}
    return {"format": "vistelse-recording", "version": 1, "sensor": "vl53l5cx", "rate_hz": 15,
            "mount": {"height_mm": height_mm, "resolution": 8, "fov_deg": 45}, "zones": [zone], "lines": lines,
            "interval_s": interval_s, "start": "2026-01-01T00:00:00Z", "source": source}


def square_site(minutes, seed=0, interval_s=60, mean_gap_s=12.0):
    """A square watched by a radar on a pole: passers-by, people who stop, groups
    (a new arrival every `mean_gap_s` seconds on average)."""
    rng = random.Random(seed)
    header = radar_header(
        zones=[{"id": "square", "polygon_mm": [[-2500, 800], [2500, 800], [2500, 5000], [-2500, 5000]]}],
        lines=[{"id": "path", "a_mm": [0, 5000], "b_mm": [0, 800]}], interval_s=interval_s,
        source="vistelse simulate: square watched by an LD2450")
    scene = Scene(minutes * 60)
    t = rng.uniform(0, 5)
    while t < minutes * 60 - 15:
        y = rng.uniform(1500, 4500)
        left_to_right = rng.random() < 0.5
        a, b = ((-4500, y), (4500, y + rng.uniform(-800, 800)))
        if not left_to_right:
            a, b = b, a
        child = rng.random() < 0.1
        kind = rng.random()
        if kind < 0.15:
            scene.add(standing(a, (rng.uniform(-1500, 1500), y), b, t, rng.uniform(10, 90),
                               height_mm=1200 if child else 1720))
        elif kind < 0.25:
            scene.add(group(a, b, t, size=rng.choice([2, 3]), spacing_mm=rng.uniform(550, 800)))
        else:
            scene.add(walker(a, b, t, rng.uniform(1000, 1600), 1200 if child else rng.gauss(1720, 90)))
        t += rng.expovariate(1 / mean_gap_s)
    return scene, header


def passage_site(minutes, seed=0, interval_s=60, mean_gap_s=8.0):
    """A passage under an overhead ToF sensor: people through a door, some children
    (one every `mean_gap_s` seconds on average)."""
    rng = random.Random(seed)
    header = tof_header(lines=[{"id": "door", "a_mm": [-1200, 0], "b_mm": [1200, 0]}], interval_s=interval_s,
                        source="vistelse simulate: passage under a VL53L5CX")
    scene = Scene(minutes * 60)
    t = rng.uniform(0, 5)
    while t < minutes * 60 - 10:
        x = rng.uniform(-500, 500)
        a, b = (x, -2000), (x + rng.uniform(-300, 300), 2000)
        if rng.random() < 0.5:
            a, b = b, a
        h = rng.uniform(1000, 1350) if rng.random() < 0.15 else rng.gauss(1720, 90)
        scene.add(walker(a, b, t, rng.uniform(1000, 1500), h))
        t += rng.expovariate(1 / mean_gap_s)
    return scene, header


def main(argv=None):
    p = argparse.ArgumentParser(prog="vistelse simulate", description="Write a simulated recording with its truth.")
    p.add_argument("--scene", choices=("square", "passage"), default="square")
    p.add_argument("--minutes", type=float, default=5)
    p.add_argument("--interval", type=int, default=60, help="truth interval, seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, help="PREFIX: writes PREFIX.rec.jsonl.gz and PREFIX.truth.json")
    args = p.parse_args(argv)
    site = square_site if args.scene == "square" else passage_site
    scene, header = site(args.minutes, args.seed, args.interval)
    frames, true = simulate(scene, header, args.seed)
    with RecordingWriter(args.out + ".rec.jsonl.gz", header) as rec:
        n = 0
        for frame in frames:
            rec.write_frame(frame)
            n += 1
    with open(args.out + ".truth.json", "w") as f:
        json.dump(true, f)
    print("%s.rec.jsonl.gz: %d frames, %d people; truth in %s.truth.json" % (args.out, n, len(scene.people), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
