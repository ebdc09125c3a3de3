"""Scene simulator: people on a floor, seen by an LD2450 radar or a VL53L5CX.

Independent of the benchmark recordings (recordings/): used for property tests, for the
demo's virtual nodes, and by anyone who wants to see what the pipeline does
with a situation before installing a sensor.

    scene = Scene(duration_s=120)
    scene.add(walker((-3000, 2500), (3000, 2500), t0=2.0))
    header = radar_header(zones=[...], lines=[...])
    frames, truth = simulate(scene, header, seed=1)

People move along straight segments between waypoints (x, y in floor mm, t
in s) and exist between their first and last waypoint; the sites keep
their bodies apart (Scene.keep_apart: a sidestep or a short wait where two
would come closer than their body radii). The ground truth is
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
    """Someone on straight segments between waypoints. For the overhead sensor
    the body is a few solids (body_at): `head_down_mm` is how far the top of
    the head is below the standing height because the head is bent (reading,
    looking down), `gait_phase` where in their stride they start."""

    def __init__(self, waypoints, height_mm=1720, head_down_mm=0.0, gait_phase=0.0):
        if len(waypoints) < 2 or any(b[0] < a[0] for a, b in zip(waypoints, waypoints[1:])):
            raise ValueError("a person needs at least two waypoints in time order")
        self.waypoints = [(float(t), float(x), float(y)) for t, x, y in waypoints]
        self.height_mm = height_mm
        self.head_down_mm = head_down_mm
        self.gait_phase = gait_phase
        self.group = None       # people walking together share a group id (keep_apart)

    def heading(self, t):
        """Unit vector of the direction of travel at t (of the segment), (0, 1) if none."""
        w = self.waypoints
        for (t0, x0, y0), (t1, x1, y1) in zip(w, w[1:]):
            if t0 <= t <= t1 and (x1 != x0 or y1 != y0):
                d = math.hypot(x1 - x0, y1 - y0)
                return (x1 - x0) / d, (y1 - y0) / d
        heading = (0.0, 1.0)
        for (t0, x0, y0), (t1, x1, y1) in zip(w, w[1:]):     # standing: the last direction walked
            if (x1 != x0 or y1 != y0) and t1 <= t:
                d = math.hypot(x1 - x0, y1 - y0)
                heading = ((x1 - x0) / d, (y1 - y0) / d)
        return heading

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
    gid = object()
    for person in people:
        person.group = gid
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

    def keep_apart(self, centre=(0.0, 0.0), across=(0.0, 1.0), half_width_mm=None):
        """Make every two people keep their bodies apart (see body_radius_mm).

        People walking together (same `group`) are first spread across their
        direction of travel until neighbours are at least their two body radii
        apart. Then, in order of arrival, each group or lone person who would
        come closer to someone already placed steps aside (the whole way
        shifted across its direction of travel, the smallest step first, to the
        right first) or, if no step fits, waits a little longer before coming.
        The walkable area is the band of half_width_mm across `across`
        through `centre` (None: unbounded); nobody is moved out of it, or
        further out than they were drawn. Deterministic. Returns the number
        of people who could not be kept apart (left as drawn)."""
        units, by_group = [], {}          # lists of indices into self.people
        for i, person in enumerate(self.people):
            if person.group is None:
                units.append([i])
            elif id(person.group) not in by_group:
                by_group[id(person.group)] = [i]
                units.append(by_group[id(person.group)])
            else:
                by_group[id(person.group)].append(i)
        people = list(self.people)
        for unit in units:
            if len(unit) > 1:
                for i, p in zip(unit, self._spread([people[i] for i in unit])):
                    people[i] = p
        units.sort(key=lambda unit: min(people[i].t_start for i in unit))
        placed, stuck = [], 0
        for indices in units:
            unit = [people[i] for i in indices]
            t_first = min(p.t_start for p in unit)
            rx, ry = _right_of(unit[0])
            window = self._conflicts(unit, placed)
            done = None if window else unit
            for k in range(int(MAX_WAIT_S / WAIT_STEP_S) + 1):
                dt = k * WAIT_STEP_S
                if done or (k and t_first + dt >= self.duration_s):
                    break
                late = [_moved(p, 0.0, 0.0, dt) for p in unit] if dt else unit
                if dt:
                    window = self._conflicts(late, placed)
                    if not window:
                        done = late
                        break
                # a sidestep while meeting the others, else the whole way aside
                for whole in (False, True):
                    for j in range(1, int(2 * MAX_SIDESTEP_MM / SIDESTEP_MM) + 1):
                        side = (j + 1) // 2 * SIDESTEP_MM * (1 if j % 2 else -1)
                        moved = [_moved(p, rx * side, ry * side, 0.0) if whole else
                                 _detour(p, rx, ry, side, window[0], window[1]) for p in late]
                        if self._walkable(unit, moved, centre, across, half_width_mm) and \
                                all(self._apart(p, placed) for p in moved):
                            done = moved
                            break
                    if done:
                        break
            if done is None:
                stuck += len(unit)
                done = unit
            placed.extend(done)
            for i, p in zip(indices, done):
                people[i] = p
        self.people = people
        return stuck

    @staticmethod
    def _apart(person, others):
        return not any(_too_close(person, other) for other in others)

    @staticmethod
    def _conflicts(unit, placed, step_s=0.1):
        """(first, last) time at which someone of the unit is too close to someone placed, or None."""
        first = last = None
        for person in unit:
            r = body_radius_mm(person)
            near = [o for o in placed if _too_close(person, o)]
            if not near:
                continue
            for i in range(int((person.t_end - person.t_start) / step_s) + 2):
                t = min(person.t_start + i * step_s, person.t_end)
                p = person.position(t)
                for o in near:
                    q = o.position(t)
                    # a body radius of margin so the sidestep is done before they meet
                    if q is not None and math.hypot(p[0] - q[0], p[1] - q[1]) < 2 * (r + body_radius_mm(o)):
                        first = t if first is None else min(first, t)
                        last = t if last is None else max(last, t)
        return (first, last) if first is not None else None

    @staticmethod
    def _walkable(unit, moved, centre, across, half_width_mm):
        if half_width_mm is None:
            return True
        for before, after in zip(unit, moved):
            for t, x1, y1 in after.waypoints:
                x0, y0 = before.position(min(max(t, before.t_start), before.t_end))
                was = abs((x0 - centre[0]) * across[0] + (y0 - centre[1]) * across[1])
                now = abs((x1 - centre[0]) * across[0] + (y1 - centre[1]) * across[1])
                if now > max(half_width_mm, was) + 1e-6:
                    return False
        return True

    @staticmethod
    def _spread(unit):
        """Members of a group moved apart across their way until every two keep their radii."""
        rx, ry = _right_of(unit[0])
        nx, ny = -rx, -ry                                   # their left
        members = list(unit)
        for _ in range(len(members) * len(members)):
            pushed = False
            for i, a in enumerate(members):
                for j in range(i + 1, len(members)):
                    b = members[j]
                    need = body_radius_mm(a) + body_radius_mm(b)
                    gap = closest_approach_mm(a, b)
                    if gap is None or gap >= need - 1e-6:
                        continue
                    # the one further across goes further out, each by half
                    la = a.waypoints[0][1] * nx + a.waypoints[0][2] * ny
                    lb = b.waypoints[0][1] * nx + b.waypoints[0][2] * ny
                    s = (need - gap) / 2.0 + 1.0
                    s = s if lb >= la else -s
                    members[i] = a = _moved(a, -nx * s, -ny * s, 0.0)
                    members[j] = _moved(b, nx * s, ny * s, 0.0)
                    pushed = True
            if not pushed:
                break
        return members


# --- personal space: people do not walk through each other -----------------------
#
# A body seen from above is an ellipse about 0.5 m deep and 0.6 m across the
# shoulders (FHWA-RD-98-107, Recommended Procedures for the "Pedestrians"
# chapter of the Highway Capacity Manual, 1998, section 2.1: 50 cm x 60 cm,
# about Fruin's 1971 ellipse of 18 x 24 in). Two people pass or overtake
# with their shoulders turned at the least, so their centres stay at least
# one short axis apart: BODY_RADIUS_MM each for an adult, less for a child
# in proportion to stature. Pedestrians keep that distance by stepping
# aside or slowing down (the repulsive term of the social force model,
# Helbing & Molnar 1995, Phys. Rev. E 51, 4282); the simulator does the
# same once per person instead of force by force: see Scene.keep_apart.

BODY_RADIUS_MM = 250.0
ADULT_STATURE_MM = 1720.0
SIDESTEP_MM = 50.0          # sidesteps tried in steps of this ...
MAX_SIDESTEP_MM = 1000.0    # ... up to this far from the drawn path
WAIT_STEP_S = 0.25          # then waits of this long ...
MAX_WAIT_S = 15.0           # ... up to this


def body_radius_mm(person):
    """Half the short axis of the body ellipse: 250 mm for an adult, a child's in proportion to stature."""
    return BODY_RADIUS_MM * min(1.0, person.height_mm / ADULT_STATURE_MM)


def closest_approach_mm(a, b):
    """The least distance between the centres of two people while both are there
    (exact: both move along straight segments), or None if never together."""
    t0, t1 = max(a.t_start, b.t_start), min(a.t_end, b.t_end)
    if t0 > t1:
        return None
    times = sorted({t0, t1} | {w[0] for w in a.waypoints + b.waypoints if t0 < w[0] < t1})
    best = None
    for s0, s1 in zip(times, times[1:] or times):
        pa, pb, qa, qb = a.position(s0), b.position(s0), a.position(s1), b.position(s1)
        dx0, dy0 = pa[0] - pb[0], pa[1] - pb[1]
        ex, ey = (qa[0] - qb[0]) - dx0, (qa[1] - qb[1]) - dy0
        ee = ex * ex + ey * ey
        f = 0.0 if ee == 0 else max(0.0, min(1.0, -(dx0 * ex + dy0 * ey) / ee))
        d = math.hypot(dx0 + f * ex, dy0 + f * ey)
        best = d if best is None else min(best, d)
    return best


def _too_close(a, b):
    """Whether two people, while both are there, come closer than their body radii."""
    if a.t_end < b.t_start or a.t_start > b.t_end:
        return False
    return closest_approach_mm(a, b) < body_radius_mm(a) + body_radius_mm(b)


def _right_of(person):
    """Unit vector to the right of the person's way, first to last waypoint."""
    (ax, ay), (bx, by) = person.waypoints[0][1:], person.waypoints[-1][1:]
    d = math.hypot(bx - ax, by - ay) or 1.0
    return (by - ay) / d, -(bx - ax) / d


SIDESTEP_SPEED_MM_S = 500.0  # how fast someone drifts sideways into and out of a sidestep


def _detour(person, rx, ry, side, t_from, t_to):
    """The person's way with a sidestep of `side` mm to (rx, ry) from t_from to t_to,
    drifting into and out of it at SIDESTEP_SPEED_MM_S."""
    ramp = max(0.5, abs(side) / SIDESTEP_SPEED_MM_S)
    knots = [(t_from - ramp, 0.0), (t_from, side), (t_to, side), (t_to + ramp, 0.0)]

    def offset(t):
        if t <= knots[0][0] or t >= knots[-1][0]:
            return 0.0
        for (t0, o0), (t1, o1) in zip(knots, knots[1:]):
            if t0 <= t <= t1:
                return o0 if t1 == t0 else o0 + (o1 - o0) * (t - t0) / (t1 - t0)
        return 0.0
    times = sorted({w[0] for w in person.waypoints} |
                   {k[0] for k in knots if person.t_start < k[0] < person.t_end})
    way = []
    for t in times:
        x, y = person.position(t)
        o = offset(t)
        way.append((t, x + rx * o, y + ry * o))
    return _on_way(person, way)


def _moved(person, dx, dy, dt):
    return _on_way(person, [(t + dt, x + dx, y + dy) for t, x, y in person.waypoints])


def _on_way(person, way):
    """The same person (body, gait, group) on another way."""
    moved = Person(way, person.height_mm, person.head_down_mm, person.gait_phase)
    moved.group = person.group
    return moved


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
    """LD2450 behaviour worth testing against (see recordings/README.md)."""
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


# --- overhead body model ----------------------------------------------------------
#
# A person seen from above is a head, a torso and legs (anthropometric
# proportions, scaled with standing height h; adult values at h = 1.72 m):
# - head: a sphere of 0.1 m radius whose top is at h, lowered by the head's
#   bend (head_down_mm) and moved forward by as much;
# - torso: an elliptic column from the hips (0.47 h) to the shoulders
#   (0.82 h), 0.42 m across the shoulders and 0.24 m front to back, turned to
#   the walking direction;
# - legs: an elliptic column up to the hips, 0.3 m across, and front to back
#   0.2 m standing, up to a stride's spread (0.4 m) walking;
# - gait: the body rises and falls twice per stride by +-20 mm (vertical
#   excursion of the centre of mass in walking), at a step every 0.65 m.
GAIT_BOB_MM = 20.0
STEP_MM = 650.0


def body_at(person, t, walking_speed):
    """The solids of a person at t: (x, y, hx, hy, bob, scale, head_down, speed)."""
    p = person.position(t)
    if p is None:
        return None
    hx, hy = person.heading(t)
    bob = 0.0
    if walking_speed > 300:
        bob = GAIT_BOB_MM * math.cos(2 * math.pi * (walking_speed * t / STEP_MM) + person.gait_phase)
    return (p[0], p[1], hx, hy, bob, person.height_mm / 1720.0, person.head_down_mm, walking_speed)


def _column_hit(ox, oy, dx, dy, cx, cy, hx, hy, a_u, a_v):
    """First s > 0 where the ray (o + s d, horizontal part) enters the vertical
    elliptic column centred at c, semi-axes a_u along heading h, a_v across."""
    rx, ry = ox - cx, oy - cy
    pu = (rx * hx + ry * hy) / a_u
    pv = (-rx * hy + ry * hx) / a_v
    du = (dx * hx + dy * hy) / a_u
    dv = (-dx * hy + dy * hx) / a_v
    a = du * du + dv * dv
    if a < 1e-18:
        return None
    b = 2 * (pu * du + pv * dv)
    c = pu * pu + pv * pv - 1
    disc = b * b - 4 * a * c
    if disc < 0:
        return None
    return (-b - math.sqrt(disc)) / (2 * a)


def _inside_ellipse(x, y, cx, cy, hx, hy, a_u, a_v):
    rx, ry = x - cx, y - cy
    u = (rx * hx + ry * hy) / a_u
    v = (-rx * hy + ry * hx) / a_v
    return u * u + v * v <= 1


def _ray_hit(fx, fy, height_mm, body):
    """Distance along the ray from the sensor (0, 0, H) to floor point (fx, fy)
    at which it first meets the body, or None."""
    px, py, hx, hy, bob, k, head_down, speed = body
    length = math.sqrt(fx * fx + fy * fy + height_mm * height_mm)
    dx, dy, dz = fx / length, fy / length, -height_mm / length
    h = 1720.0 * k + bob
    best = None
    # head: sphere
    r_head = 100.0 * (0.8 + 0.2 * k)
    cx, cy = px + hx * head_down, py + hy * head_down
    cz = h - head_down - r_head
    ox, oy, oz = -cx, -cy, height_mm - cz
    b = 2 * (ox * dx + oy * dy + oz * dz)
    c = ox * ox + oy * oy + oz * oz - r_head * r_head
    disc = b * b - 4 * c
    if disc >= 0:
        s = (-b - math.sqrt(disc)) / 2
        if s > 0:
            best = s
    # torso and legs: elliptic columns with flat tops
    top_torso = 0.82 * 1720.0 * k + bob
    hips = 0.47 * 1720.0 * k + bob
    legs_u = 100.0 + min(1.0, speed / 1300.0) * 100.0
    for z0, z1, a_u, a_v in ((hips, top_torso, 120.0 * k, 210.0 * k), (0.0, hips, legs_u * k, 150.0 * k)):
        s = (z1 - height_mm) / dz                                 # the top
        if s > 0 and (best is None or s < best) and _inside_ellipse(dx * s, dy * s, px, py, hx, hy, a_u, a_v):
            best = s
            continue
        s = _column_hit(0.0, 0.0, dx, dy, px, py, hx, hy, a_u, a_v)
        if s is not None and s > 0:
            z = height_mm + dz * s
            if z0 <= z <= z1 and (best is None or s < best):
                best = s
    return best


def vl53l5cx_frames(scene, header, seed=0):
    rng = random.Random(seed)
    rate = header["rate_hz"]
    h = header["mount"]["height_mm"]
    centres = tof_zone_centres(header)
    floor = [math.sqrt(x * x + y * y + h * h) for x, y in centres]
    for i in range(int(round(scene.duration_s * rate))):
        t = i / rate
        here = [b for person in scene.people for b in [body_at(person, t, person.speed(t))] if b is not None]
        mm, status = [], []
        for z, (fx, fy) in enumerate(centres):
            d = floor[z]
            for body in here:
                # the ray runs over the floor from below the sensor to (fx, fy):
                # a body more than 0.5 m from that stretch cannot be on it
                ex, ey = body[0], body[1]
                along = (ex * fx + ey * fy) / (fx * fx + fy * fy + 1e-9)
                along = 0.0 if along < 0 else (1.0 if along > 1 else along)
                if (ex - along * fx) ** 2 + (ey - along * fy) ** 2 > 250000:
                    continue
                s = _ray_hit(fx, fy, h, body)
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
    scene.keep_apart(centre=(0.0, 3000.0), across=(0.0, 1.0), half_width_mm=1500.0)
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
    scene.keep_apart(centre=(0.0, 0.0), across=(1.0, 0.0), half_width_mm=500.0)
    return scene, header


# --- variations: what a new site varies -------------------------------------------------

class Site:
    """The knobs a new site turns. Distances in mm, speeds in mm/s, times in s.

    flow_deg is the main walking direction against the sensor's x axis
    (radar: 0 walks across its view, 90 toward and away from it; ToF: 0
    along its columns, across a line through the point below it, 45
    diagonal); arrivals_per_min the density; stay_share
    the share of people who stop in the zone for stay_s; group_sizes the
    sizes groups are drawn from (1 = alone); child_share the share of
    children (1.00-1.35 m); head_down_mm the largest head bend drawn;
    door_share the share of people who come out of or go into a door (or
    the edge of what is watched) in the middle of their way, so that they
    appear or vanish inside the zone."""

    def __init__(self, sensor, minutes=5, interval_s=60, speed=(1000, 1600), flow_deg=0.0, arrivals_per_min=None,
                 stay_share=0.0, stay_s=(10, 60), group_sizes=(1,), child_share=0.1, mount_mm=None,
                 zone=None, line=None, head_down_mm=60.0, both_ways=True, door_share=0.0):
        self.sensor = sensor
        self.minutes = minutes
        self.interval_s = interval_s
        self.speed = speed
        self.flow_deg = flow_deg
        # a quiet street before a radar; a steady passage under a ToF
        self.arrivals_per_min = arrivals_per_min or (6.0 if sensor == "ld2450" else 12.0)
        self.stay_share = stay_share
        self.stay_s = stay_s
        self.group_sizes = group_sizes
        self.child_share = child_share
        self.mount_mm = mount_mm or (1800 if sensor == "ld2450" else 2800)
        self.zone = zone
        self.line = line
        self.head_down_mm = head_down_mm
        self.both_ways = both_ways
        self.door_share = door_share

    def header(self):
        if self.sensor == "ld2450":
            zone = self.zone or [[-2500, 800], [2500, 800], [2500, 5000], [-2500, 5000]]
            line = self.line or ([0, 5000], [0, 800])
            return radar_header([{"id": "area", "polygon_mm": zone}], [{"id": "gate", "a_mm": line[0], "b_mm": line[1]}],
                                interval_s=self.interval_s, height_mm=self.mount_mm,
                                source="vistelse simulate: site variation")
        line = self.line or ([-1200, 0], [1200, 0])
        h = tof_header([{"id": "passage", "a_mm": line[0], "b_mm": line[1]}], interval_s=self.interval_s,
                       height_mm=self.mount_mm, source="vistelse simulate: site variation")
        if self.zone:
            h["zones"] = [{"id": "footprint", "polygon_mm": self.zone}]
        return h

    def scene(self, seed):
        rng = random.Random(seed)
        scene = Scene(self.minutes * 60)
        radar = self.sensor == "ld2450"
        # radar: 0 walks across its view (along x); ToF: 0 along its columns,
        # across a line through the point below it (along y)
        angle = math.radians(self.flow_deg + (0 if radar else 90))
        ux, uy = math.cos(angle), math.sin(angle)
        nx, ny = -uy, ux
        # the flow passes through the middle of the zone (radar: 3 m ahead)
        cx, cy = (0.0, 3000.0) if radar else (0.0, 0.0)
        reach = 4800.0 if radar else 2200.0
        spread = 1500.0 if radar else 500.0
        t = rng.uniform(0, 3)
        while t < self.minutes * 60 - 12:
            size = rng.choice(self.group_sizes)
            off = rng.uniform(-spread, spread)
            sign = -1 if (self.both_ways and rng.random() < 0.5) else 1
            a = (cx + nx * off - sign * ux * reach, cy + ny * off - sign * uy * reach)
            b = (cx + nx * off + sign * ux * reach, cy + ny * off + sign * uy * reach)
            speed = rng.uniform(*self.speed)
            stay = rng.random() < self.stay_share
            spacing = rng.uniform(450, 750)
            together = object() if size > 1 else None
            for k in range(size):
                o = (k - (size - 1) / 2.0) * spacing
                behind = 0.0 if k < 3 else -700.0            # more than three walk in a second row
                pa = (a[0] + nx * o + sign * ux * behind, a[1] + ny * o + sign * uy * behind)
                pb = (b[0] + nx * o + sign * ux * behind, b[1] + ny * o + sign * uy * behind)
                child = rng.random() < self.child_share
                h = rng.uniform(1000, 1350) if child else rng.gauss(1720, 90)
                if stay:
                    along = rng.uniform(-0.4, 0.4) * reach       # anywhere along their way through the zone
                    spot = (cx + nx * (off + o) + along * ux, cy + ny * (off + o) + along * uy)
                    person = route([pa, spot, pb], t, speed, h, pauses={1: rng.uniform(*self.stay_s)})
                else:
                    person = walker(pa, pb, t, speed, h)
                if rng.random() < self.door_share:
                    # a door on the way: the first or the last part of the walk is not there
                    w = person.waypoints
                    f = rng.uniform(0.35, 0.65)
                    t0, x0, y0 = w[0]
                    t1, x1, y1 = w[-1]
                    mid = (t0 + f * (t1 - t0), x0 + f * (x1 - x0), y0 + f * (y1 - y0))
                    way = [mid, (t1, x1, y1)] if rng.random() < 0.5 else [(t0, x0, y0), mid]
                    person = Person(way, h)
                person.head_down_mm = rng.uniform(0, self.head_down_mm)
                person.gait_phase = rng.uniform(0, 2 * math.pi)
                person.group = together
                scene.add(person)
            t += rng.expovariate(self.arrivals_per_min / 60.0)
        # the flow's band is the walkable area: people step aside within it
        scene.keep_apart(centre=(cx, cy), across=(nx, ny), half_width_mm=spread)
        return scene


def variations():
    """[(name, Site)]: the simulated scenes of docs/accuracy.md, one knob turned
    from a plain site at a time (and a few together where sites do)."""
    R, T = "ld2450", "vl53l5cx"
    return [
        ("sim_radar_plain", Site(R)),
        ("sim_radar_slow", Site(R, speed=(500, 800))),
        ("sim_radar_brisk", Site(R, speed=(1500, 2000))),
        ("sim_radar_stayers", Site(R, stay_share=0.4, stay_s=(20, 120))),
        ("sim_radar_groups", Site(R, group_sizes=(1, 2, 3, 4, 5))),
        ("sim_radar_at_limit", Site(R, arrivals_per_min=12, group_sizes=(1, 2))),
        ("sim_radar_beyond_limit", Site(R, arrivals_per_min=24, group_sizes=(1, 2, 3))),
        ("sim_radar_toward", Site(R, flow_deg=60)),
        ("sim_radar_far_zone", Site(R, zone=[[-2000, 3500], [2000, 3500], [2000, 5800], [-2000, 5800]],
                                    line=([0, 5800], [0, 3500]))),
        ("sim_radar_line_aside", Site(R, line=([1500, 5000], [1500, 800]))),
        ("sim_radar_low_mount", Site(R, mount_mm=1000)),
        ("sim_radar_doors", Site(R, door_share=0.5, stay_share=0.1, stay_s=(3, 10))),
        ("sim_tof_plain", Site(T)),
        ("sim_tof_low_mount", Site(T, mount_mm=2400)),
        ("sim_tof_high_mount", Site(T, mount_mm=3400)),
        ("sim_tof_slow", Site(T, speed=(500, 800))),
        ("sim_tof_brisk", Site(T, speed=(1500, 2000))),
        ("sim_tof_pairs", Site(T, group_sizes=(1, 2, 2), child_share=0.25)),
        ("sim_tof_busy", Site(T, arrivals_per_min=30, group_sizes=(1, 2))),
        ("sim_tof_diagonal", Site(T, flow_deg=45)),
        ("sim_tof_line_aside", Site(T, line=([-1200, 400], [1200, 400]))),
        ("sim_tof_door_zone", Site(T, zone=[[-600, -1000], [600, -1000], [600, 1000], [-600, 1000]])),
        ("sim_tof_children", Site(T, child_share=0.35, head_down_mm=100)),
        ("sim_tof_doors", Site(T, door_share=0.5)),
    ]


def variation_items(seed=1):
    """(name, header, frames, truth) for every variation, made in memory."""
    for k, (name, site) in enumerate(variations()):
        header = site.header()
        frames, true = simulate(site.scene(seed + k), header, seed + k)
        yield name, header, frames, true


def write_variations(folder, seed=1):
    """Write every variation as NAME.rec.jsonl.gz and NAME.truth.json in folder."""
    import os
    os.makedirs(folder, exist_ok=True)
    names = []
    for name, header, frames, true in variation_items(seed):
        with RecordingWriter(os.path.join(folder, name + ".rec.jsonl.gz"), header) as rec:
            for frame in frames:
                rec.write_frame(frame)
        with open(os.path.join(folder, name + ".truth.json"), "w") as f:
            json.dump(true, f)
        names.append(name)
    return names


def main(argv=None):
    p = argparse.ArgumentParser(prog="vistelse simulate", description="Write a simulated recording with its truth.")
    p.add_argument("--scene", choices=("square", "passage", "variations"), default="square",
                   help="a site, or every variation of docs/accuracy.md into the folder --out")
    p.add_argument("--minutes", type=float, default=5)
    p.add_argument("--interval", type=int, default=60, help="truth interval, seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, help="PREFIX: writes PREFIX.rec.jsonl.gz and PREFIX.truth.json")
    args = p.parse_args(argv)
    if args.scene == "variations":
        names = write_variations(args.out, args.seed)
        print("%d simulated scenes in %s" % (len(names), args.out))
        return 0
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
