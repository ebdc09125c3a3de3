# Zones and counting lines on the floor, in millimetres in the sensor's frame.
#
# A line a->b counts `in` when someone moves from its right-hand side to its
# left-hand side (looking from a towards b), `out` the other way, as the
# recording format defines it. To keep U-turns and jitter on the line from
# counting, a person must be more than `band_mm` away on one side before
# and on the other side after (hysteresis), and must pass between a and b.


class Zone:
    def __init__(self, polygon):
        if len(polygon) < 3:
            raise ValueError("a zone needs at least 3 points")
        self.xs = [p[0] for p in polygon]
        self.ys = [p[1] for p in polygon]
        self.box = (min(self.xs), min(self.ys), max(self.xs), max(self.ys))

    def inside(self, x, y):
        b = self.box
        if x < b[0] or x > b[2] or y < b[1] or y > b[3]:
            return False
        xs, ys = self.xs, self.ys
        result = False
        j = len(xs) - 1
        for i in range(len(xs)):
            if (ys[i] > y) != (ys[j] > y) and x < (xs[j] - xs[i]) * (y - ys[i]) / (ys[j] - ys[i]) + xs[i]:
                result = not result
            j = i
        return result

    def exit_mm(self, x, y, ux, uy):
        """From a point inside, how far along the unit direction (ux, uy)
        the zone's edge is (mm)."""
        xs, ys = self.xs, self.ys
        best = 1e12
        j = len(xs) - 1
        for i in range(len(xs)):
            ex, ey = xs[i] - xs[j], ys[i] - ys[j]
            d = ux * ey - uy * ex
            if d != 0:
                wx, wy = xs[j] - x, ys[j] - y
                t = (wx * ey - wy * ex) / d          # along the direction
                s = (wx * uy - wy * ux) / d          # along the edge, 0..1
                if 0 <= t < best and 0 <= s <= 1:
                    best = t
            j = i
        return best


class Line:
    def __init__(self, a, b, band_mm=150):
        self.ax, self.ay = a[0], a[1]
        dx, dy = b[0] - a[0], b[1] - a[1]
        self.length = (dx * dx + dy * dy) ** 0.5
        if self.length == 0:
            raise ValueError("a line needs two different points")
        self.ux, self.uy = dx / self.length, dy / self.length
        self.band = band_mm

    def side(self, x, y):
        """Signed distance from the line: > 0 left of a->b, < 0 right (mm)."""
        return self.ux * (y - self.ay) - self.uy * (x - self.ax)

    def along(self, x, y):
        """Position along a->b (mm from a)."""
        return self.ux * (x - self.ax) + self.uy * (y - self.ay)

    def state(self, x, y):
        """-1 right of the band, +1 left of it, 0 inside the band or beyond the ends."""
        # Between the end points, with no margin beyond them: a margin counts
        # people passing just beyond an end (radar noise moves a point past
        # an end as often as back inside, so no margin is unbiased).
        t = self.along(x, y)
        if t < 0 or t > self.length:
            return 0
        d = self.side(x, y)
        if d > self.band:
            return 1
        if d < -self.band:
            return -1
        return 0
