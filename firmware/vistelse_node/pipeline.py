# Sensor frames in, interval aggregates out: the node's measurement pipeline.
#
#   p = Pipeline("ld2450", zones=[[(x, y), ...]], lines=[((ax, ay), (bx, by))])
#   p.feed_ld2450(frame30, t_ms)          # or feed_tof(mm, status, t_ms)
#   interval = p.close_interval(t_ms)     # the report's interval shape
#
# t_ms are ticks (wrapping like MicroPython's); nothing here reads a clock.
from . import aggregate, geometry, track
from .clock import ticks_add, ticks_diff
from .detect.tof import HEAD_IN_VIEW_MM, TofDetector
from .sensors import ld2450_frames

LINE_BAND_MM = {"ld2450": 250, "vl53l5cx": 100}   # hysteresis either side of a line: radar noise is larger
MAX_FRAME_GAP_MS = 1000                           # longer gaps are sensor outages, not presence
# A stature within this of the child/adult edge gets no class: a bent head
# (reading, looking down) lowers the top of the head by 50 mm and more, the
# gait's rise and fall moves it +-20 mm.
CLASS_MARGIN_MM = 50
# The LD2450 reports the three nearest targets: someone who first appears
# inside a zone while it reports three was most likely there before, hidden
# behind nearer people, and walked in along their way at their pace. Their
# time since the zone's edge is credited, at most this long (10 s is 10 m at
# a slow walk, more than a radar's zone is deep).
HIDDEN_BEFORE_MS = 10000


class Pipeline:
    def __init__(self, sensor, zones=(), lines=(), min_count=5, still_hold_s=300, mount=None):
        if sensor not in ("ld2450", "vl53l5cx"):
            raise ValueError("sensor must be ld2450 or vl53l5cx")
        self.sensor = sensor
        self.min_count = min_count
        self.still_hold_s = still_hold_s
        self.mount = mount or {}
        self._dets = [[0.0, 0.0, 0.0] for _ in range(3)]
        self.detections = self._dets       # x, y, height (mm) of the last radar frame's targets
        self.reader = ld2450_frames.FrameReader()
        self._in_zone = self._in_any_zone     # bound once, not per frame
        self.tof = None
        if sensor == "vl53l5cx":
            m = self.mount
            self.tof = TofDetector(m.get("height_mm", 2800), m.get("resolution", 8), m.get("fov_deg", 45))
        # The rim of a zone where the sensor sees a person only partly: the
        # ToF's zone is its footprint, and beyond HEAD_IN_VIEW_MM of the point
        # below it only the side of a body is in view, less of it further out.
        # A radar's zones lie inside its view: someone walking out is seen.
        self.rim_mm = self.tof.rim_mm if self.tof else 0
        # ...which starts this far from the point below the sensor (ToF only)
        self.rim_from_mm = HEAD_IN_VIEW_MM if self.tof else -1
        self.configure(zones, lines, min_count, still_hold_s)

    def configure(self, zones=None, lines=None, min_count=None, still_hold_s=None):
        """New zones, lines or thresholds (a configuration downlink); a new
        zone or line layout starts the counting afresh."""
        if min_count is not None:
            self.min_count = min_count
        if still_hold_s is not None:
            self.still_hold_s = still_hold_s
        if zones is not None or lines is not None or not hasattr(self, "zones"):
            self.zones = [geometry.Zone(z) for z in (zones if zones is not None else [])]
            band = LINE_BAND_MM[self.sensor]
            self.lines = [geometry.Line(a, b, band) for a, b in (lines if lines is not None else [])]
            base = track.RADAR if self.sensor == "ld2450" else track.TOF
            params = track.TrackerParams(base.gate_mm, base.gate_speed_mm_s, base.confirm_hits,
                                         base.confirm_move_mm, base.grace_ms, base.still_speed_mm_s,
                                         base.still_hold_ms, base.max_tracks, base.full_n)
            self._known = [0] * len(self.zones)    # confirmed tracks seen inside, last frame
            self.tracker = track.Tracker(params, len(self.zones), len(self.lines))
            self.agg = aggregate.Aggregator(len(self.zones), len(self.lines), self.min_count,
                                            heights=self.sensor == "vl53l5cx")
            self.t_last = None
        if self.sensor == "ld2450":
            self.tracker.p.still_hold_ms = int(self.still_hold_s * 1000)
        self.agg.min_count = self.min_count

    def _in_any_zone(self, x, y):
        for z in self.zones:
            if z.inside(x, y):
                return True
        return False

    # --- input -------------------------------------------------------------

    def feed_ld2450_bytes(self, data, t):
        """Raw UART bytes (any chunking); processes every complete frame."""
        got = self.reader.feed(data)
        while got:
            self.feed_ld2450(self.reader.frame, t)
            got = self.reader.feed(b"")

    def feed_ld2450(self, frame, t):
        """One 30-byte data frame; returns how many targets it held (in self.detections)."""
        n = ld2450_frames.parse_frame(frame, self._dets)
        for k in range(n):
            self._dets[k][2] = 0.0          # the radar gives no height
        self._step(self._dets, n, t)
        return n

    def feed_tof(self, mm, status, t):
        dets, n = self.tof.feed(mm, status, t)
        self._step(dets, n, t)

    # --- per frame -----------------------------------------------------------

    def _step(self, dets, n, t):
        dt = 0 if self.t_last is None else ticks_diff(t, self.t_last)
        if dt < 0:
            return                           # a frame from the past: ignore
        if dt > MAX_FRAME_GAP_MS:
            dt = 0
        self.t_last = t
        tracks = self.tracker.update(dets, n, t, self._in_zone)
        agg = self.agg
        for tr in self.tracker.ended:
            self._end(tr, t)
        # Presence is counted only when it is known: a confirmed track seen in
        # this frame. A track's other frames inside (tentative, or held after
        # its person was lost: grace and still-hold) wait in held_ms and
        # occ_peak, and are settled when the track is next seen confirmed --
        # in whatever interval that is -- or when it dies (_end).
        for tr in tracks:
            if tr.born_full and tr.confirmed:
                tr.born_full = False
                self._came_hidden(tr, t)
        for z in range(len(self.zones)):
            zone = self.zones[z]
            known = 0
            held = 0                          # confirmed tracks inside, not seen
            unknown = 0                       # tracks inside whose presence waits
            for tr in tracks:
                inside = zone.inside(tr.x, tr.y)
                if tr.t == t and tr.confirmed:
                    if inside:
                        known += 1
                        if tr.visit_start[z] is None:
                            if tr.cut & (1 << z) and ticks_diff(t, tr.last_inside[z]) < aggregate.VISIT_BRIDGE_MS:
                                # back within the bridge after an interval's close ended
                                # the visit (_end_left_visits): the same visit, counted,
                                # its dwell given
                                tr.visit_start[z] = t
                            else:
                                # a visit counts once its person is seen inside, dated from
                                # the first frame inside (tentative or coasting, too)
                                tr.cut &= ~(1 << z)
                                tr.visit_start[z] = t if tr.first_inside[z] is None else tr.first_inside[z]
                                self._event(tr)
                                agg.visit_started(z)
                        tr.last_inside[z] = t
                    if tr.held_ms[z] or tr.occ_peak[z]:
                        agg.settle(z, tr.held_ms[z], tr.occ_peak[z])
                        tr.held_ms[z] = 0
                        tr.occ_peak[z] = 0
                else:
                    tr.here = inside
                    if inside:
                        unknown += 1
                        held += tr.confirmed
                        if tr.t == t:
                            tr.last_inside[z] = t
                if inside:
                    if tr.first_inside[z] is None:
                        tr.first_inside[z] = t
                        if tr.born_full and tr.born == t and self._known[z] + 1 > tr.occ_peak[z]:
                            # new while the radar was full: hidden behind those it showed
                            tr.occ_peak[z] = self._known[z] + 1
                elif tr.visit_start[z] is not None:
                    if ticks_diff(t, tr.last_inside[z]) >= aggregate.VISIT_BRIDGE_MS:
                        self._visit_end(tr, z)
                else:
                    tr.first_inside[z] = None
            agg.occupancy(z, known, dt)
            self._known[z] = known
            if unknown:
                for tr in tracks:
                    if tr.here and not (tr.t == t and tr.confirmed):
                        # inside, not known: the occupancy it was part of (the
                        # known, the confirmed ones held with it, itself)
                        tr.held_ms[z] += dt
                        occ = known + held + (0 if tr.confirmed else 1)
                        if occ > tr.occ_peak[z]:
                            tr.occ_peak[z] = occ
        for k in range(len(self.lines)):
            line = self.lines[k]
            for tr in tracks:
                s = line.state(tr.x, tr.y)
                if s == 0:
                    continue
                if (tr.side[k] != 0 and s != tr.side[k]) or (tr.side[k] == 0 and self._came_across(tr, line)):
                    if tr.confirmed:
                        self._event(tr)
                        agg.crossed(k, s > 0)
                    else:
                        tr.pending.append((k, s > 0))
                tr.side[k] = s
        for tr in tracks:
            if tr.confirmed and tr.pending:
                for k, direction in tr.pending:
                    self._event(tr)
                    agg.crossed(k, direction)
                del tr.pending[:]

    def _came_hidden(self, tr, t):
        # A walker first seen inside a zone while the radar was full: follow
        # their way back (the straight line from where they were first seen,
        # opposite to how they walked since) to the zone's edge. The time
        # that takes at their pace is presence (and dwell) they had unseen,
        # and a line on that way is one they crossed unseen.
        ms = ticks_diff(t, tr.born)
        if ms <= 0:
            return
        dx, dy = tr.x - tr.x0, tr.y - tr.y0
        d = (dx * dx + dy * dy) ** 0.5
        speed = d * 1000 / ms                     # mm/s, over all frames since first seen
        if speed < self.tracker.p.still_speed_mm_s:
            return
        ux, uy = dx / d, dy / d
        reach = speed * HIDDEN_BEFORE_MS / 1000   # the furthest back they can have been hidden
        back = 0
        for z in range(len(self.zones)):
            zone = self.zones[z]
            if tr.first_inside[z] is None or not zone.inside(tr.x0, tr.y0):
                continue
            s = zone.exit_mm(tr.x0, tr.y0, -ux, -uy)
            if s >= reach:
                continue                          # not from the zone's edge: a door, a ghost
            before = int(s * 1000 / speed)
            tr.held_ms[z] += before
            tr.first_inside[z] = ticks_add(tr.first_inside[z], -before)
            if s > back:
                back = s
        if not back:
            return
        bx, by = tr.x0 - ux * back, tr.y0 - uy * back
        for k in range(len(self.lines)):
            line = self.lines[k]
            was = line.state(bx, by)
            now = line.state(tr.x0, tr.y0)
            if was and now and was != now:
                self._event(tr)
                self.agg.crossed(k, now > 0)
            elif was and not tr.side[k]:
                tr.side[k] = was                  # first seen on the line: from this side

    def _came_across(self, tr, line):
        # First seen on the line (inside its band, between its ends) at the
        # rim of the ToF's view, where only the low part of a body is seen
        # and a walker is picked up late, and now off it on one side: they
        # crossed it, into that side -- unseen, if first seen already past
        # it, or in view from the near half of the band, where the band's
        # hysteresis does not count a crossing. Near the point below the
        # sensor people are seen whole, so one first seen on the line there
        # appeared there (a door): not credited.
        r = self.rim_from_mm
        if r < 0 or tr.x0 * tr.x0 + tr.y0 * tr.y0 <= r * r:
            return False
        along = line.along(tr.x0, tr.y0)
        return 0 <= along <= line.length and abs(line.side(tr.x0, tr.y0)) <= line.band

    def _event(self, tr):
        # a track's first visit or crossing: one person for the release stage's k
        if tr.events == 0:
            self.agg.person_seen()
        tr.events += 1

    def _visit_end(self, tr, z, extra_ms=0):
        # the visit lasted until the frame after the last one inside
        period = 100 if self.sensor == "ld2450" else 67
        if tr.cut & (1 << z):
            tr.cut &= ~(1 << z)               # resumed after _end_left_visits: dwell given then
        else:
            self.agg.visit_ended(z, ticks_diff(tr.last_inside[z], tr.visit_start[z]) + period + extra_ms)
        tr.visit_start[z] = None
        tr.first_inside[z] = None

    def _end(self, tr, t):
        for z in range(len(self.zones)):
            # Held until it died: its time inside counts only if the sensor
            # could not have shown them -- lost while the radar was full
            # (hidden), or its coasted path left the zone within the rim the
            # ToF sees only partly (walked out, unseen at the zone's edge).
            # Otherwise it lost its person where the sensor should see them
            # (or they left through a door there): its held time is dropped.
            walked_out = tr.confirmed and tr.held_ms[z] and (tr.hidden or (
                not self.zones[z].inside(tr.x, tr.y) and tr.held_ms[z] * tr.speed() <= self.rim_mm * 1000))
            if walked_out:
                self.agg.settle(z, tr.held_ms[z], tr.occ_peak[z])
            if tr.visit_start[z] is not None:
                self._visit_end(tr, z, tr.held_ms[z] if walked_out else 0)
        # classified only if its stature was measured well, and not too close
        # to the class edge to tell (no class rather than a wrong one) --
        # or, wherever the head was, if a part of them was seen clearly above
        # the edge: an adult (a lower bound says nothing of a child)
        if tr.confirmed and tr.events and self.agg.heights:
            edge = aggregate.HEIGHT_EDGES_MM[1]
            h = tr.stature(self.tof.stature_spread)
            low = tr.lower_bound()
            if low >= edge + CLASS_MARGIN_MM:
                self.agg.classified(low if low > h else h)
            elif h > 0 and abs(h - edge) >= CLASS_MARGIN_MM:
                self.agg.classified(h)

    def finish(self, t):
        """End every visit now (the end of a recording, or a reconfiguration)."""
        self._settle_standing()
        for tr in self.tracker.tracks:
            if tr.standing and tr.confirmed:
                # held standing (the radar drops people who stand still): as in
                # person-seconds, they are there until now
                for z in range(len(self.zones)):
                    if tr.visit_start[z] is not None and self.zones[z].inside(tr.x, tr.y):
                        tr.last_inside[z] = t
            self._end(tr, t)
        self.tracker.tracks = []

    def close_interval(self, t):
        """Aggregates of the interval ending at t; visits still going on carry over."""
        self._settle_standing()
        if self.tof is None:
            self._end_left_visits()
        interval = self.agg.close()
        # people counted so far whose track lives on: after a restart the
        # tracker no longer knows them and may count them again (release.py)
        present = 0
        for tr in self.tracker.tracks:
            if tr.events:
                present += 1
        interval["present"] = present
        return interval

    def _end_left_visits(self):
        # A visit whose person was seen outside its zone in the last frame has
        # ended, unless they come back within VISIT_BRIDGE_MS; its dwell
        # belongs to the interval in which they left (the truth's convention),
        # not to the next one, in which the bridge would run out.
        t = self.t_last
        for tr in self.tracker.tracks:
            if tr.confirmed and tr.t == t:
                for z in range(len(self.zones)):
                    if tr.visit_start[z] is not None and tr.last_inside[z] != t:
                        self._visit_end(tr, z)
                        tr.cut |= 1 << z          # if they come back within the bridge, the same visit

    def _settle_standing(self):
        # A person held standing (the radar drops people who stand still, and
        # picks them up when they move) counts in the interval that closes
        # while the hold lasts; held time of anyone else waits to be settled.
        for tr in self.tracker.tracks:
            if tr.standing and tr.confirmed:
                for z in range(len(self.zones)):
                    if tr.held_ms[z] or tr.occ_peak[z]:
                        self.agg.settle(z, tr.held_ms[z], tr.occ_peak[z])
                        tr.held_ms[z] = 0
                        tr.occ_peak[z] = 0
