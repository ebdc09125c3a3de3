"""Naive baselines, to show what the pipeline's tracking is worth.

- **Radar (LD2450): raw target slots.** Each of the radar's three report
  slots is taken as one person: a slot that turns non-empty inside a zone
  starts a visit, its consecutive frames inside are the dwell, the count of
  occupied slots inside is the occupancy, and a slot's step between two
  frames that crosses a line is a crossing. No tracking, no gating: what a
  simple integration of the radar's own output gives.
- **Overhead ToF (VL53L5CX): ST's two-zone state machine** (UM2600,
  "Counting people with the VL53L1X", as ported by Roode and ESPHome): two
  regions of interest on either side of the counting line, each "occupied"
  when its nearest valid distance is more than 900 mm above the floor; a
  person is counted when the occupancy sequence goes one side, both, other
  side, none. The regions are the two middle columns of the grid (or rows,
  whichever pair lies across the line). It counts line crossings only.

Both produce prediction dicts in the truth schema (recording-format.md).
"""
import math

from vistelse_codec import DWELL_EDGES_S

from .evaluate import bin_counts
from .recording import read_recording, tof_zone_centres
from .simulate import cross, crossing, inside

LD2450_SLOTS = 3
PERSON_ABOVE_FLOOR_MM = 900      # UM2600-style presence threshold
VALID_STATUS = (5, 9)


def ld2450_targets(raw_hex):
    """[(x_mm, y_mm) or None] for the three slots of one frame."""
    data = bytes.fromhex(raw_hex)
    slots = []
    for i in range(LD2450_SLOTS):
        b = data[4 + 8 * i: 12 + 8 * i]
        if not any(b):
            slots.append(None)
            continue
        x_raw, y_raw = b[0] | b[1] << 8, b[2] | b[3] << 8
        # sign-magnitude, bit 15 set means positive
        x = (x_raw & 0x7FFF) if x_raw & 0x8000 else -(x_raw & 0x7FFF)
        y = (y_raw & 0x7FFF) if y_raw & 0x8000 else -(y_raw & 0x7FFF)
        slots.append((x, y))
    return slots


def side(point, line):
    return cross(line["a_mm"], line["b_mm"], point)


class _Intervals:
    def __init__(self, header):
        self.interval_ms = int(header["interval_s"] * 1000)
        self.zone_ids = [z["id"] for z in header["zones"]]
        self.line_ids = [l["id"] for l in header["lines"]]
        self.items = {}

    def at(self, t_ms):
        k = t_ms // self.interval_ms
        if k not in self.items:
            self.items[k] = {"start_ms": k * self.interval_ms, "end_ms": (k + 1) * self.interval_ms,
                             "zones": {z: {"visits": 0, "person_s": 0.0, "max_occupancy": 0, "dwell": []}
                                       for z in self.zone_ids},
                             "lines": {l: {"in": 0, "out": 0} for l in self.line_ids}}
        return self.items[k]

    def result(self, last_t, with_zones=True):
        if last_t is not None:
            for k in range(0, last_t // self.interval_ms + 1):
                self.at(k * self.interval_ms)
        out = []
        for k in sorted(self.items):
            iv = self.items[k]
            item = {"start_ms": iv["start_ms"], "end_ms": iv["end_ms"], "lines": iv["lines"]}
            if with_zones:
                item["zones"] = {}
                for z, v in iv["zones"].items():
                    item["zones"][z] = {"visits": v["visits"], "person_s": round(v["person_s"], 2),
                                        "max_occupancy": v["max_occupancy"],
                                        "dwell_hist": {"edges_s": list(DWELL_EDGES_S),
                                                       "counts": bin_counts(v["dwell"], DWELL_EDGES_S)}}
            out.append(item)
        return {"format": "vistelse-prediction", "version": 1, "method": "baseline", "intervals": out}


def predict_ld2450(header, frames):
    ivs = _Intervals(header)
    period_s = 1.0 / header["rate_hz"]
    prev = [None] * LD2450_SLOTS
    started = [[None] * LD2450_SLOTS for _ in header["zones"]]   # visit start per zone and slot
    last_t = None
    for frame in frames:
        t = frame["t_ms"]
        last_t = t
        iv = ivs.at(t)
        slots = ld2450_targets(frame["raw"])
        for z, zone in enumerate(header["zones"]):
            zs = iv["zones"][zone["id"]]
            count = 0
            for s, p in enumerate(slots):
                now_in = p is not None and inside(p, zone["polygon_mm"])
                if now_in:
                    count += 1
                    if started[z][s] is None:
                        started[z][s] = t
                        zs["visits"] += 1
                elif started[z][s] is not None:
                    zs["dwell"].append((t - started[z][s]) / 1000.0)
                    started[z][s] = None
            zs["person_s"] += count * period_s
            zs["max_occupancy"] = max(zs["max_occupancy"], count)
        for line in header["lines"]:
            for s, p in enumerate(slots):
                q = prev[s]
                direction = crossing(q, p, line["a_mm"], line["b_mm"]) if p is not None and q is not None else None
                if direction:
                    iv["lines"][line["id"]][direction] += 1
        prev = slots
    for z, zone in enumerate(header["zones"]):
        for s in range(LD2450_SLOTS):
            if started[z][s] is not None and last_t is not None:
                ivs.at(last_t)["zones"][zone["id"]]["dwell"].append((last_t - started[z][s]) / 1000.0 + period_s)
    return ivs.result(last_t)


def tof_regions(header, line):
    """Cell indices of the two regions: (right of a->b, left of a->b)."""
    r = header["mount"]["resolution"]
    centres = tof_zone_centres(header)
    (ax, ay), (bx, by) = line["a_mm"], line["b_mm"]
    # The line runs mostly along x: the regions are the two rows either side
    # of it (the two middle rows for a line through the point below the
    # sensor, as in UM2600); else columns.
    along_x = abs(bx - ax) >= abs(by - ay)
    for m in range(r - 1):
        cells = [[i for i in range(r * r) if (i // r if along_x else i % r) == k] for k in (m, m + 1)]
        right = [c for c in cells if side(centres[c[0]], line) < 0]
        left = [c for c in cells if side(centres[c[0]], line) > 0]
        if len(right) == 1 and len(left) == 1:
            return right[0], left[0]
    raise ValueError("the counting line does not pass between two rows or columns")


def predict_vl53l5cx(header, frames):
    ivs = _Intervals(header)
    floor = header["mount"]["height_mm"]
    centres = tof_zone_centres(header)
    line = header["lines"][0] if header["lines"] else None
    regions = tof_regions(header, line) if line else None
    # distance along each ray to the floor, and to a point PERSON_ABOVE_FLOOR_MM up
    threshold = [(floor - PERSON_ABOVE_FLOOR_MM) * math.hypot(floor, math.hypot(*c)) / floor for c in centres]
    path = [(0, 0)]
    last_t = None
    for frame in frames:
        t = frame["t_ms"]
        last_t = t
        iv = ivs.at(t)
        if regions is None:
            continue
        state = tuple(int(any(frame["status"][c] in VALID_STATUS and 0 < frame["mm"][c] < threshold[c]
                              for c in region)) for region in regions)
        if state != path[-1]:
            path.append(state)
            if state == (0, 0):
                # right -> both -> left is one person going in; the reverse out
                if path[:5] == [(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]:
                    iv["lines"][line["id"]]["in"] += 1
                elif path[:5] == [(0, 0), (0, 1), (1, 1), (1, 0), (0, 0)]:
                    iv["lines"][line["id"]]["out"] += 1
                path = [(0, 0)]
    return ivs.result(last_t, with_zones=False)


def predict_frames(header, frames):
    if header["sensor"] == "ld2450":
        return predict_ld2450(header, frames)
    return predict_vl53l5cx(header, frames)


def predict(rec_path):
    return predict_frames(*read_recording(rec_path))
