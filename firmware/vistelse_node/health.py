# Health flags the node reports in every uplink's status, and the sensor
# watch that raises them.
#
# A flag is latched: once raised it stays in every report until one has
# been handed to the modem, so a short fault between two uplinks is still
# seen at the gateway. Conditions that persist raise it again.
from vistelse_node.clock import ticks_diff

FLAGS = ("sensor_silent", "sensor_blocked", "modem_trouble", "config_rejected",
         "queue_merged", "sensor_restarted")

SILENT_MS = 5000              # LD2450 sends 10 frames/s, the ToF 15: 5 s of nothing is a fault
REINIT_BACKOFF_MS = 10000     # first re-initialisation after this much silence, then doubling
REINIT_BACKOFF_MAX_MS = 600000
BLOCKED_MM = 150              # nearer than any person can be to the lens on a normal mount
BLOCKED_FRACTION = 2          # ... in more than 1/2 of the ToF zones
BLOCKED_MS = 30000            # for this long: a cover, tape or a bag hung on the sensor


class Health:
    def __init__(self):
        self.raised = set()
        self.pending = []         # flags carried by the uplink being sent

    def raise_flag(self, name):
        self.raised.add(name)

    def flags(self):
        """For the next report; remembered until that report is handed over."""
        self.pending = sorted(self.raised)
        return self.pending

    def reported(self):
        for f in self.pending:
            self.raised.discard(f)
        self.pending = []


class SensorWatch:
    """No frames for SILENT_MS → sensor_silent, and a re-initialisation with
    backoff (→ sensor_restarted); too-near readings for BLOCKED_MS →
    sensor_blocked."""

    def __init__(self, clock, health):
        self.clock = clock
        self.health = health
        self.last_frame = clock.ticks_ms()
        self.next_reinit_ms = REINIT_BACKOFF_MS
        self.blocked_since = None
        self.frames = 0

    def frame(self, near_fraction_high):
        now = self.clock.ticks_ms()
        self.last_frame = now
        self.frames += 1
        self.next_reinit_ms = REINIT_BACKOFF_MS
        if near_fraction_high:
            if self.blocked_since is None:
                self.blocked_since = now
            elif ticks_diff(now, self.blocked_since) >= BLOCKED_MS:
                self.health.raise_flag("sensor_blocked")
        else:
            self.blocked_since = None

    def check(self):
        """True when the sensor should be re-initialised now."""
        quiet = ticks_diff(self.clock.ticks_ms(), self.last_frame)
        if quiet >= SILENT_MS:
            self.health.raise_flag("sensor_silent")
        if quiet >= self.next_reinit_ms:
            self.next_reinit_ms = min(self.next_reinit_ms * 2, REINIT_BACKOFF_MAX_MS)
            self.health.raise_flag("sensor_restarted")
            return True
        return False


def tof_blocked(mm, status):
    """Most zones see something within BLOCKED_MM of the lens."""
    near = 0
    for i in range(len(mm)):
        if (status[i] == 5 or status[i] == 9) and mm[i] < BLOCKED_MM:
            near += 1
    return near * BLOCKED_FRACTION > len(mm)


def radar_blocked(dets, n):
    """A radar target nearer than BLOCKED_MM in front of the lens."""
    for k in range(n):
        if dets[k][1] < BLOCKED_MM and -BLOCKED_MM < dets[k][0] < BLOCKED_MM:
            return True
    return False
