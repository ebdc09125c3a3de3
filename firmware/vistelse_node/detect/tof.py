# VL53L5CX overhead frames -> people (head position on the floor, height).
#
# Each zone measures the distance along its centre ray to the first surface.
# A background model (the floor, learned at start and tracked slowly) turns
# distances into heights above the floor; people are local maxima of that
# height map (heads), so two people side by side give two peaks. A head's
# floor position is where its ray is at head height: the zone's floor point
# scaled by (H - h) / H. Status 5 and 9 are valid measurements (ST driver).
import math

from ..aggregate import HEIGHT_EDGES_MM
from ..clock import ticks_diff

VALID = (5, 9)
LEARN_FRAMES = 15              # 1 s at 15 Hz: the floor, before anyone counts
# Ranging noise (one standard deviation) grows with distance: about 1 % of
# it plus 5 mm (measured on the floor in the benchmark recordings: 33-36 mm
# at 2.7-2.9 m). A zone more than NOISE_SIGMAS of it above the floor holds
# something: with Gaussian noise, one false zone in tens of hours, and a
# track needs two frames. At these mount heights a head is in view only
# within ~0.5 m of the point below the sensor; further out a person shows
# as the side of the body, low down, so anything above that threshold is
# someone: one person per region of such zones, or one per head where a
# region holds several.
NOISE_REL = 0.01
NOISE_MM = 5
NOISE_SIGMAS = 6

SEPARATION_MM = 350           # two heads are at least this far apart: closer peaks
                               # are one person (head and shoulder, or a body's two
                               # shoulders, 0.3 m apart as measured, when its head is
                               # out of view)
HEAD_MM = 200                 # a head is about this wide: the top of one is the
                               # highest surface within this distance
HEAD_IN_VIEW_MM = 500         # beyond this from nadir an adult's head is out of
                               # view: the rim, where a body is seen from the side
SHOULDER = 0.8                # shoulders are at 0.8-0.85 of the standing height
SHOULDER_LOW = 0.75           # a top between this and a neighbour's head may be their shoulder
SHOULDER_REACH_MM = 450       # half the shoulder width (0.2-0.25 m) plus the separation
                               # below which two tops are merged (SEPARATION_MM)
# How far apart the top samples of one head can lie (stature_spread):
GAIT_MM = 40                   # the gait's rise and fall, +-20 mm
SPREAD_SIGMAS = 3              # ranging noise, in standard deviations
ABSORB_MS = 30000              # something that stays put this long becomes floor
BG_RATE = 1.0 / 64             # slow drift of the floor estimate


def ranging_sd(range_mm):
    """One standard deviation of the ranging noise at this range (mm)."""
    return NOISE_REL * range_mm + NOISE_MM


class TofDetector:
    def __init__(self, height_mm, resolution=8, fov_deg=45.0):
        self.h = float(height_mm)
        # the lowest height above the floor taken as something (and as a person)
        self.fg_mm = NOISE_SIGMAS * ranging_sd(self.h)
        self.r = resolution
        # from where heads go out of view to the edge of the footprint
        self.rim_mm = self.h * math.tan(math.radians(fov_deg / 2.0)) - HEAD_IN_VIEW_MM
        # Statures are taken inside the cone in which the outermost zones'
        # centre rays ((fov/2 - half a zone) from nadir) are still above the
        # child/adult edge: 501 mm around nadir at 2.8 m (_peaks)
        tan_ray = math.tan(math.radians(fov_deg / 2.0 - fov_deg / (2.0 * resolution)))
        r_view = (self.h - HEIGHT_EDGES_MM[1]) * tan_ray
        self.view2 = r_view * r_view
        # a zone's width per mm of range (its angle, fov / resolution; ST:
        # 8x8 zones over 45 x 45 degrees, 5.6 degrees each)
        self.zone_per_mm = 2.0 * math.tan(math.radians(fov_deg / (2.0 * resolution)))
        n = resolution * resolution
        self.fx = [0.0] * n
        self.fy = [0.0] * n
        for row in range(resolution):
            ay = math.radians((row + 0.5 - resolution / 2) * fov_deg / resolution)
            for col in range(resolution):
                ax = math.radians((col + 0.5 - resolution / 2) * fov_deg / resolution)
                i = row * resolution + col
                self.fx[i] = self.h * math.tan(ax)
                self.fy[i] = self.h * math.tan(ay)
        self.bg = [0.0] * n
        self.learned = 0
        self.height = [0.0] * n
        self.still_since = [None] * n
        self.last = [0] * n
        self.out = [[0.0, 0.0, 0.0, 0.0] for _ in range(8)]   # x, y, stature (0: unknown), peak height
        self.label = bytearray(n)
        self._stack = bytearray(n)
        self._px = [0.0] * n
        self._order = bytearray(n)
        self._tops = bytearray(n)
        self._py = [0.0] * n

    def stature_spread(self, stature):
        """How far apart (mm) the three highest top samples of one head of
        this stature can lie, seen from this mount: the gait's rise and fall,
        the ranging noise at the head's range, and how far below its top the
        top zone can meet the head. The zone centres lie a zone's width w
        apart at that range, so the head's centre is within w / sqrt 2 of the
        nearest one; on a round head that is below its top by
        r - sqrt(r^2 - w^2 / 2). Where w / sqrt 2 exceeds the head's radius
        (a child under a 2.8 m mount: w = 177 mm at 1.8 m range), the top
        zone can fall beside the head onto the shoulders (on the VL53L5CX a
        zone that takes in the head and the shoulders, less than 0.6 m apart,
        reports one merged target between them), down to the shoulders
        (SHOULDER of the stature)."""
        rng = self.h - stature
        w2 = (self.zone_per_mm * rng) ** 2 / 2.0
        r = HEAD_MM / 2.0
        below = r - math.sqrt(r * r - w2) if w2 < r * r else (1.0 - SHOULDER) * stature
        return GAIT_MM + SPREAD_SIGMAS * ranging_sd(rng) + below

    def feed(self, mm, status, t):
        """Detections for one frame: (list of [x, y, height], count)."""
        n = self.r * self.r
        if self.learned < LEARN_FRAMES:
            # the floor is the farthest valid reading (someone may be there already)
            for i in range(n):
                if status[i] in VALID and mm[i] > self.bg[i]:
                    self.bg[i] = float(mm[i])
            self.learned += 1
            return self.out, 0
        hgt = self.height
        for i in range(n):
            d = mm[i]
            if status[i] not in VALID or d <= 0 or self.bg[i] <= 0:
                hgt[i] = 0.0
                continue
            bg = self.bg[i]
            h = self.h * (bg - d) / bg
            if h < self.fg_mm:
                self.bg[i] = bg + (d - bg) * BG_RATE
                self.still_since[i] = None
                hgt[i] = 0.0
                continue
            # an object left on the floor: the same reading for a long time
            if self.still_since[i] is None or abs(d - self.last[i]) > 40:
                self.still_since[i] = t
                self.last[i] = d
            elif ticks_diff(t, self.still_since[i]) > ABSORB_MS:
                self.bg[i] = float(d)
                hgt[i] = 0.0
                continue
            hgt[i] = h
        return self.out, self._peaks()

    def _label(self):
        """Connected regions of foreground zones (8-neighbours): one or more
        people each; floor between two people keeps them apart."""
        r, hgt, label, stack = self.r, self.height, self.label, self._stack
        for i in range(r * r):
            label[i] = 0
        regions = 0
        for i in range(r * r):
            if hgt[i] <= 0 or label[i]:
                continue
            regions += 1
            label[i] = regions
            top = 1
            stack[0] = i
            while top:
                top -= 1
                j = stack[top]
                row, col = j // r, j % r
                for dr in (-1, 0, 1):
                    for dc in (-1, 0, 1):
                        rr, cc = row + dr, col + dc
                        if 0 <= rr < r and 0 <= cc < r:
                            k = rr * r + cc
                            if hgt[k] > 0 and not label[k]:
                                label[k] = regions
                                stack[top] = k
                                top += 1

    def _peaks(self):
        r, hgt, out, label = self.r, self.height, self.out, self.label
        self._label()
        # where each foreground zone's ray meets what it measured, on the
        # floor plan: the zone's floor point scaled by (H - h) / H
        px, py = self._px, self._py
        for i in range(r * r):
            if hgt[i] > 0:
                s = (self.h - hgt[i]) / self.h
                px[i] = self.fx[i] * s
                py[i] = self.fy[i] * s
        head2 = HEAD_MM * HEAD_MM
        count = 0
        person_min = self.fg_mm
        # The tops of heads (or of bodies seen from the side), highest first:
        # a zone is one unless a higher top of the same region lies within a
        # head's width of it. Only tops hide a zone, not any higher surface:
        # an adult's shoulder beside a child's head (itself hidden by the
        # adult's head) does not hide the child. A shoulder that comes out as
        # a top is merged into its head below (SEPARATION_MM).
        order = self._order
        m = 0
        for i in range(r * r):
            h = hgt[i]
            if h < person_min:
                continue
            k = m                     # insertion by height; equal heights keep zone order
            while k > 0 and hgt[order[k - 1]] < h:
                order[k] = order[k - 1]
                k -= 1
            order[k] = i
            m += 1
        tops = self._tops
        n_tops = 0
        for oi in range(m):
            i = order[oi]
            h = hgt[i]
            row, col = i // r, i % r
            peak = True
            for ti in range(n_tops):
                j = tops[ti]
                if label[j] == label[i]:
                    dx, dy = px[j] - px[i], py[j] - py[i]
                    if dx * dx + dy * dy < head2:
                        peak = False
                        break
            if not peak:
                continue
            tops[n_tops] = i
            n_tops += 1
            if count >= len(out):
                continue
            # head position: height-weighted mean of the zones near the top
            sx = sy = sw = 0.0
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = row + dr, col + dc
                    if 0 <= rr < r and 0 <= cc < r:
                        j = rr * r + cc
                        w = hgt[j] - (h - 250)
                        if w > 0 and label[j] == label[i]:
                            s = (self.h - hgt[j]) / self.h
                            sx += w * self.fx[j] * s
                            sy += w * self.fy[j] * s
                            sw += w
            x, y = sx / sw, sy / sw
            # A stature sample only where the top can be a head's: where this
            # zone's ray met it, inside the cone in which the outermost rays
            # are still above the class edge. A body cut off by the field of
            # view has its top on the outermost ray, so there it is at or
            # above the edge (a lower bound: an adult); a top below the edge
            # inside the cone is a child's head, not a cut-off body.
            top = h if px[i] * px[i] + py[i] * py[i] < self.view2 else 0.0
            # tops come highest first: one too close to a higher one to be a
            # second person is part of that person (their shoulder)
            merged = False
            for k in range(count):
                o = out[k]
                if (o[0] - x) ** 2 + (o[1] - y) ** 2 < SEPARATION_MM * SEPARATION_MM:
                    merged = True
                    break
            if merged:
                continue
            o = out[count]
            o[0], o[1], o[2], o[3] = x, y, top, h
            count += 1
        for k in range(count):
            o = out[k]
            # a top at a taller neighbour's shoulder height, within a shoulder's
            # reach of them, may be that shoulder: no stature from this frame
            for j in range(count):
                p = out[j]
                if p[3] > o[3] > SHOULDER_LOW * p[3] and \
                        (p[0] - o[0]) ** 2 + (p[1] - o[1]) ** 2 < SHOULDER_REACH_MM * SHOULDER_REACH_MM:
                    o[2] = 0.0
                    break
        return count
