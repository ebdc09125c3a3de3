# Multi-target tracker for a handful of people (radar: at most 3 reported,
# ToF: a few heads under the sensor).
#
# Association is greedy on predicted distance: with at most ~3 detections
# and ~10 tracks per frame, sorting the few gated pairs is cheaper than the
# Hungarian algorithm and gives the same assignment except in contrived
# ties (two tracks equidistant to two detections), which the next frame
# corrects.
#
# The sensors' known failures, and what the tracker does about them:
# - the radar stops reporting someone who stands still: a track that was
#   slow and inside a zone is kept (coasting, not moving) for still_hold_s;
# - two people merge into one target and split again: the unmatched track
#   coasts for a grace period and picks the second target up when it
#   reappears;
# - ghosts: a new track must be seen in several frames and, on the radar,
#   move a few decimetres before it counts (a ghost sits still and fades);
# - slot renumbering: association is by position, never by slot.
from .clock import ticks_diff


class Track:
    def __init__(self, tid, x, y, t, height, n_zones, n_lines):
        self.id = tid
        self.x = x
        self.y = y
        self.vx = 0.0
        self.vy = 0.0
        self.t = t                    # last detection (ticks ms)
        self.t_pos = t                # time of (x, y)
        self.x0 = x
        self.y0 = y
        self.born = t
        self.hits = 1
        self.confirmed = False
        # stature samples (head in view, not a neighbour's shoulder): the
        # three highest, and how many there were (stature() below)
        self.tops = [0.0, 0.0, 0.0]
        self.n_tops = 0
        # the three highest surfaces of the person seen anywhere, in view or
        # not, and how many frames: each is a lower bound of the stature
        self.highs = [0.0, 0.0, 0.0]
        self.n_highs = 0
        self._sample(height)
        self.events = 0               # visits started or lines crossed
        self.visit_start = [None] * n_zones
        self.last_inside = [None] * n_zones
        self.first_inside = [None] * n_zones   # while still tentative
        # presence not yet known (tentative, or held after its person was
        # lost): settled when the track is next seen confirmed, else dropped
        self.held_ms = [0] * n_zones
        self.cut = 0                            # zones (bits) whose visit an interval's close ended (Pipeline)
        self.occ_peak = [0] * n_zones           # largest occupancy it was part of meanwhile
        self.here = False                       # inside the zone being evaluated (scratch)
        self.hidden = False                     # lost while the radar was full (Tracker.update)
        self.px = x                             # predicted position in this frame (Tracker.update)
        self.py = y
        self.side = [0] * n_lines
        self.pending = []             # crossings seen before confirmation
        # standing still is judged from the displacement over a second, not
        # from the velocity estimate, which the radar's jitter keeps noisy
        self.ref_x = x
        self.ref_y = y
        self.ref_t = t
        self.slow = False
        self.slow_since = None
        self.standing = False         # held as a standing person the radar has lost
        self.born_full = False        # first seen while the radar reported all it can (Pipeline._came_hidden)

    def speed(self):
        return (self.vx * self.vx + self.vy * self.vy) ** 0.5

    def _sample(self, h):
        if h > 0:
            self.n_tops += 1
            _keep_top3(self.tops, h)

    def _sample_high(self, h):
        if h > 0:
            self.n_highs += 1
            _keep_top3(self.highs, h)

    def lower_bound(self):
        """A stature the person certainly reaches (mm), or 0: the second
        highest surface of theirs seen in at least STATURE_SAMPLES frames,
        in view or not. Every point measured on a person lies at or below
        the top of their head, so where the head itself was out of view the
        side of the head or the shoulders still bound the stature from below
        (one high outlier -- noise, a neighbour for a frame -- does not count)."""
        return self.highs[1] if self.n_highs >= STATURE_SAMPLES else 0.0

    def stature(self, spread):
        """Standing height (mm), or 0 where it was not measured well: fewer
        than STATURE_SAMPLES frames with the head in view, top samples
        further apart than one head of that stature shows (spread(stature),
        mm: TofDetector.stature_spread) -- a neighbour's head taken for this
        one's -- or a higher surface of the track seen out of view.
        It is the second highest sample: one high outlier (noise, a
        neighbour for a frame) does not count; the highest frames are those
        in which a ray met the top of the head."""
        tops = self.tops
        if self.n_tops < STATURE_SAMPLES:
            return 0.0
        # the spread one head shows, judged from the highest sample: if that
        # is a neighbour's head, the bound is narrower, not wider
        bound = spread(tops[0])
        if tops[0] - tops[2] > bound:
            return 0.0
        # A higher part of the person seen elsewhere (the side of a head out
        # of view): what was measured below the sensor was a shoulder.
        if self.lower_bound() > tops[1] + bound:
            return 0.0
        return tops[1]


def _keep_top3(tops, h):
    # tops: the three highest values so far, highest first
    if h > tops[2]:
        if h > tops[0]:
            tops[0], tops[1], tops[2] = h, tops[0], tops[1]
        elif h > tops[1]:
            tops[1], tops[2] = h, tops[1]
        else:
            tops[2] = h


# How a stature is measured from above (docs/accuracy.md): a head is in view
# for at least half a second at a brisk walk (7 frames at 15 Hz), so three
# samples are always there for someone who passed under the sensor. How far
# apart the samples of one head can lie depends on the head's range (the
# detector's stature_spread); further apart is two people.
STATURE_SAMPLES = 3


# The radar keeps reporting someone who stops for several seconds before it
# drops them; a track lost sooner after slowing down left the view (a door).
STILL_BEFORE_DROP_MS = 2000


class TrackerParams:
    """Physical parameters, per sensor (docs/accuracy.md explains each)."""

    def __init__(self, gate_mm, gate_speed_mm_s, confirm_hits, confirm_move_mm, grace_ms,
                 still_speed_mm_s, still_hold_ms, max_tracks=12, full_n=0):
        self.gate_mm = gate_mm                     # association radius at zero time gap
        self.gate_speed_mm_s = gate_speed_mm_s     # plus this much per second since last seen
        self.confirm_hits = confirm_hits           # detections before a track counts
        self.confirm_move_mm = confirm_move_mm     # and how far it must have moved
        self.grace_ms = grace_ms                   # how long a lost moving track coasts
        self.still_speed_mm_s = still_speed_mm_s   # slower than this is standing still
        self.still_hold_ms = still_hold_ms         # how long a still, lost person is kept
        self.max_tracks = max_tracks
        self.full_n = full_n                       # the most targets the sensor reports (0: no limit)


RADAR = TrackerParams(gate_mm=700, gate_speed_mm_s=900, confirm_hits=3, confirm_move_mm=300,
                      grace_ms=3000, still_speed_mm_s=250, still_hold_ms=60000, full_n=3)
# Under the ToF sensor a person is in view for about a second and flickers at
# the edges: confirm after 2 frames, bridge gaps of 0.7 s (0.9 m of walking).
# Head positions from above are good to a few centimetres at 15 Hz, so the
# velocity is well known: while a walker is hidden, the gate need only grow
# by what they can change in their velocity (a pedestrian's acceleration,
# about 0.6 m/s per second), not by a whole walking speed as for the radar.
# A wider gate let someone who had just left take over a newcomer.
TOF = TrackerParams(gate_mm=600, gate_speed_mm_s=600, confirm_hits=2, confirm_move_mm=0,
                    grace_ms=700, still_speed_mm_s=250, still_hold_ms=700)


class Tracker:
    def __init__(self, params, n_zones, n_lines):
        self.p = params
        self.n_zones = n_zones
        self.n_lines = n_lines
        self.tracks = []
        self.ended = []               # tracks removed in the last update
        self._next_id = 1
        self._pairs = []
        self._used = bytearray(16)
        self._matched = bytearray(params.max_tracks + 16)   # new tracks come after the matching
        self._spare = []
        self.t_prev = None            # time of the previous update
        self.n_prev = 0               # detections in the previous update

    def update(self, dets, n, t, in_zone):
        """dets[0:n] are [x, y, height]; in_zone(x, y) tells whether a point
        is in any zone (for holding still people). Returns the live tracks."""
        p = self.p
        pairs = self._pairs
        del pairs[:]
        for ti in range(len(self.tracks)):
            tr = self.tracks[ti]
            # where it is now (kept for coasting below)
            dt = ticks_diff(t, tr.t_pos) / 1000.0
            px = tr.px = tr.x + tr.vx * dt
            py = tr.py = tr.y + tr.vy * dt
            if not n:
                continue
            # a lost walker may have gone a second's walk; a person held
            # while standing is where they stood (so passers-by cannot take
            # over their track)
            lost_s = ticks_diff(t, tr.t) / 1000.0
            gate = p.gate_mm if tr.slow else p.gate_mm + p.gate_speed_mm_s * min(lost_s, 1.0)
            gate2 = gate * gate
            for di in range(n):
                dx = dets[di][0] - px
                dy = dets[di][1] - py
                d2 = dx * dx + dy * dy
                if d2 < gate2:
                    # confirmed tracks first at equal distance: keep identities stable.
                    # A standing person the radar has dropped comes after every other
                    # track: a walker who passes where someone stands keeps their own
                    # track, instead of leaving with the stander's and making the
                    # stander a new person when they walk on (counted twice, which
                    # the release stage's k relies on not happening: docs/privacy.md).
                    pairs.append((1 if tr.standing else 0, d2 - (1 if tr.confirmed else 0), ti, di))
        pairs.sort()
        used = self._used
        for k in range(n):              # only detections 0..n-1 are looked at
            used[k] = 0
        matched = self._matched
        for k in range(len(self.tracks)):
            matched[k] = 0
        for _, _, ti, di in pairs:
            if matched[ti] or used[di]:
                continue
            matched[ti] = 1
            used[di] = 1
            self._correct(self.tracks[ti], dets[di], t)
        del self.ended[:]
        keep = self._spare               # two lists used in turn: no new list per frame
        del keep[:]
        for ti in range(len(self.tracks)):
            tr = self.tracks[ti]
            if matched[ti]:
                keep.append(tr)
                continue
            lost = ticks_diff(t, tr.t)
            if tr.t == self.t_prev:
                # lost in this frame: while the sensor reported as many targets
                # as it can (the radar's three), they may be hidden, not gone
                tr.hidden = p.full_n > 0 and n >= p.full_n
            if not tr.confirmed:
                alive = lost < (p.grace_ms if tr.hidden else 300)
            elif (tr.slow and ticks_diff(tr.t, tr.slow_since) >= STILL_BEFORE_DROP_MS
                  and in_zone(tr.x, tr.y)):
                alive = lost < max(p.still_hold_ms, p.grace_ms)
                tr.vx = tr.vy = 0.0
                tr.standing = True
            else:
                alive = lost < p.grace_ms
                if alive:  # coast along the last heading
                    tr.x, tr.y = tr.px, tr.py
                    tr.t_pos = t
            if alive:
                keep.append(tr)
            else:
                self.ended.append(tr)
        self._spare = self.tracks
        self.tracks = keep
        # someone new while the sensor reports all it can may have been hidden
        # before -- if it already did so in the frame before: with fewer shown
        # then, they would have been among those shown (and not in the first
        # frame: nobody was looked for before it)
        full = p.full_n > 0 and n >= p.full_n and self.n_prev >= p.full_n
        self.t_prev = t
        self.n_prev = n
        for di in range(n):
            if not used[di] and len(self.tracks) < p.max_tracks:
                d = dets[di]
                tr = Track(self._next_id, d[0], d[1], t, d[2], self.n_zones, self.n_lines)
                tr.born_full = full
                self.tracks.append(tr)
                self._next_id += 1
        return self.tracks

    def _correct(self, tr, det, t):
        dt = ticks_diff(t, tr.t_pos) / 1000.0
        px, py = tr.x + tr.vx * dt, tr.y + tr.vy * dt
        # alpha-beta filter: smooth position, velocity from the innovation
        rx, ry = det[0] - px, det[1] - py
        tr.x = px + 0.6 * rx
        tr.y = py + 0.6 * ry
        if dt > 0:
            tr.vx += 0.4 * rx / dt
            tr.vy += 0.4 * ry / dt
            # a person walks at most ~2.5 m/s: clamp noise-driven velocity
            s = tr.speed()
            if s > 2500:
                tr.vx *= 2500 / s
                tr.vy *= 2500 / s
        tr.t = tr.t_pos = t
        tr.standing = False
        tr.hits += 1
        span = ticks_diff(t, tr.ref_t)
        if span >= 1000:
            dx, dy = tr.x - tr.ref_x, tr.y - tr.ref_y
            tr.slow = (dx * dx + dy * dy) ** 0.5 * 1000 / span < self.p.still_speed_mm_s
            if not tr.slow:
                tr.slow_since = None
            elif tr.slow_since is None:
                tr.slow_since = tr.ref_t
            tr.ref_x, tr.ref_y, tr.ref_t = tr.x, tr.y, t
        tr.hidden = False
        if det[2] > 0:                                # ToF: a stature sample
            tr._sample(det[2])
        if len(det) > 3:                              # ToF: the top of what was seen, in view or not
            tr._sample_high(det[3])
        if not tr.confirmed and tr.hits >= self.p.confirm_hits:
            dx, dy = tr.x - tr.x0, tr.y - tr.y0
            if dx * dx + dy * dy >= self.p.confirm_move_mm * self.p.confirm_move_mm:
                tr.confirmed = True
