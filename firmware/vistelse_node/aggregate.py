# Interval aggregates per zone and line, from tracks, with small-count
# suppression. Only these numbers ever leave the node.
#
# Definitions (as the recording format's truth): a visit is a stretch of
# time a person is inside a zone, breaks shorter than 2 s bridged; it is
# counted in the interval where it starts, and its duration in the dwell
# histogram of the interval where it ends. Person-seconds integrate the
# number of people inside over time. Line crossings are counted in the
# interval they happen, with cumulative totals since the node started.
DWELL_EDGES_S = (0, 5, 15, 60, 300, 900, 3600)
HEIGHT_EDGES_MM = (0, 1400)
VISIT_BRIDGE_MS = 2000


def _bin(value, edges):
    k = len(edges) - 1
    while k > 0 and value < edges[k]:
        k -= 1
    return k


class Aggregator:
    def __init__(self, n_zones, n_lines, min_count=5, heights=False):
        self.n_zones = n_zones
        self.n_lines = n_lines
        self.min_count = min_count
        self.heights = heights
        self.total_in = [0] * n_lines
        self.total_out = [0] * n_lines
        self._reset()

    def _reset(self):
        n, m = self.n_zones, self.n_lines
        self.visits = [0] * n
        self.person_ms = [0] * n
        self.max_occ = [0] * n
        self.dwell = [[0] * len(DWELL_EDGES_S) for _ in range(n)]
        self.line_in = [0] * m
        self.line_out = [0] * m
        self.height_counts = [0] * len(HEIGHT_EDGES_MM)
        self.people = 0

    def person_seen(self):
        """A person's first visit or crossing (each track once): the release
        stage's count of the people an interval describes."""
        self.people += 1

    def occupancy(self, zone, count, dt_ms):
        self.person_ms[zone] += count * dt_ms
        self.peak(zone, count)

    def settle(self, zone, held_ms, peak):
        """Presence that waited until its track was seen again: held_ms of
        person-time and the occupancy `peak` it was part of."""
        self.person_ms[zone] += held_ms
        self.peak(zone, peak)

    def peak(self, zone, count):
        """At some moment of this interval, `count` people were inside."""
        if count > self.max_occ[zone]:
            self.max_occ[zone] = count

    def visit_started(self, zone):
        self.visits[zone] += 1

    def visit_ended(self, zone, duration_ms):
        self.dwell[zone][_bin(duration_ms / 1000.0, DWELL_EDGES_S)] += 1

    def crossed(self, line, direction_in):
        if direction_in:
            self.line_in[line] += 1
            self.total_in[line] += 1
        else:
            self.line_out[line] += 1
            self.total_out[line] += 1

    def classified(self, height_mm):
        self.height_counts[_bin(height_mm, HEIGHT_EDGES_MM)] += 1

    def close(self):
        """The finished interval (the report's interval shape); starts the next."""
        k = self.min_count
        zones = []
        for z in range(self.n_zones):
            hist = self.dwell[z]
            # A breakdown of fewer than min_count people could single someone
            # out: withhold it whole (docs/privacy.md).
            zones.append({"visits": self.visits[z], "person_s": (self.person_ms[z] + 500) // 1000,
                          "max_occupancy": self.max_occ[z],
                          "dwell_hist": {"counts": list(hist)} if sum(hist) >= k and sum(hist) > 0 else None})
        lines = [{"in": self.line_in[i], "out": self.line_out[i], "total_in": self.total_in[i],
                  "total_out": self.total_out[i]} for i in range(self.n_lines)]
        interval = {"zones": zones, "lines": lines, "people": self.people}
        if self.heights:
            n = sum(self.height_counts)
            interval["height_classes"] = {"counts": list(self.height_counts)} if n >= k and n > 0 else None
        self._reset()
        return interval
