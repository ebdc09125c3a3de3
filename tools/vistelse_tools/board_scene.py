# A day of a sensor's frames for the node running under MicroPython on
# simulated time (board_memory.py, micropython_node.py): a recorded scene
# (people crossing, stopping, in groups) in busy windows, and the sensor's
# empty frame once every `quiet_ms` between them. Copied to the board's
# /flash/lib; runs unchanged on CPython and MicroPython.
from vistelse_node.sensors.replay import ReplaySensor


class DaySensor:
    """busy: [(start_ms, end_ms)] from the start; with period_ms they repeat
    every period (e.g. each hour). scene: path of a recording on flash."""

    def __init__(self, name, clock, busy, empty, quiet_ms, scene, period_ms=0):
        self.name = name
        self.clock = clock
        self.busy = busy
        self.empty = empty
        self.quiet_ms = quiet_ms
        self.scene = scene
        self.period_ms = period_ms
        self.replay = None
        self.window = None
        self.last_empty = -1000

    def window_at(self, t):
        """The busy window (start, end) holding simulated ms t, or None."""
        base = 0
        if self.period_ms:
            base = t - t % self.period_ms
            t = t - base
        for w in self.busy:
            if w[0] <= t < w[1]:
                return (base + w[0], base + w[1])
        return None

    def read_frame(self):
        t = self.clock.elapsed_ms
        w = self.window_at(t)
        if w is not None:
            if self.window != w:
                self.window = w
                self.replay = ReplaySensor(open(self.scene), self.clock, loop=True)
            return self.replay.read_frame()
        self.window = self.replay = None
        if t - self.last_empty >= self.quiet_ms:
            self.last_empty = t
            return self.empty
        return None

    def reinit(self):
        pass
