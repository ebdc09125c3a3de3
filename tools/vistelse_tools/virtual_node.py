"""A node in this process: the real firmware under CPython on simulated time.

The firmware's Node (pipeline, queue, send policy, modem driver) runs
unchanged; around it are a simulated clock, a sensor that plays back
recording lines (the firmware's own ReplaySensor), a flash filesystem (a
folder, or anything with flashfs's methods), and the AT-modem emulator
keeping a simulated LoRaWAN session. Every uplink that goes on air is
handed to `on_uplink(dict)` (dev_eui, fport, data, fcnt, dr, ...), and
class A downlinks are asked of `downlinks(dev_eui)` after each uplink,
the way a network server would deliver them.

    vn = VirtualNode(node_file, recording_lines, on_uplink=print)
    vn.run_for(10 * 60000)               # ten simulated minutes
    vn.restart("watchdog")               # the node resets; flash and modem stay

The demo and the tests drive nodes this way; the MicroPython end-to-end
test runs the same pieces under MicroPython (tests/test_node.py).
"""
import os
import sys

from . import REPO_ROOT

for _p in (os.path.join(REPO_ROOT, "firmware"), os.path.join(REPO_ROOT, "codecs", "micropython")):
    if _p not in sys.path:
        sys.path.append(_p)

from vistelse_node import flashfs  # noqa: E402
from vistelse_node.clock import SimClock  # noqa: E402
from vistelse_node.modem.rak3172 import Rak3172  # noqa: E402
from vistelse_node.modem.wioe5 import WioE5  # noqa: E402
from vistelse_node.node import Node  # noqa: E402
from vistelse_node.sensors.replay import ReplaySensor  # noqa: E402

from .emulators import rak3172 as emu_rak3172, session as emu_session, wioe5 as emu_wioe5  # noqa: E402

DRIVERS = {"rak3172": (Rak3172, emu_rak3172.Rak3172), "wioe5": (WioE5, emu_wioe5.WioE5)}
STEP_MS = 20


class Watchdog:
    """machine.WDT on simulated time, enforced: not fed within timeout_ms,
    the node resets (VirtualNode.step restarts it with reset cause
    "watchdog"). Remembers the longest gap between feeds."""

    def __init__(self, clock, timeout_ms=15000):
        self.clock = clock
        self.timeout_ms = timeout_ms
        self.last = None
        self.longest_ms = 0
        self.feeds = 0
        self.bitten = False

    def feed(self):
        now = self.clock.elapsed_ms
        if self.last is not None:
            gap = now - self.last
            self.longest_ms = max(self.longest_ms, gap)
            if gap > self.timeout_ms:
                self.bitten = True        # too late: the board had reset already
        self.last = now
        self.feeds += 1

    def overdue(self):
        return self.bitten or (self.last is not None and self.clock.elapsed_ms - self.last > self.timeout_ms)


class VirtualNode:
    def __init__(self, node_file, recording_lines, dialect="rak3172", fs=None, folder=None, clock=None,
                 on_uplink=None, downlinks=None, budget_ms=None, battery_mv=3600, loop=False, log=None,
                 session_kw=None, sensor=None):
        if dialect not in DRIVERS:
            raise ValueError("dialect must be one of %s" % ", ".join(DRIVERS))
        self.node_file = node_file
        self.recording_lines = recording_lines
        self.make_sensor = sensor             # callable(clock) -> sensor, in place of a recording
        self.dialect = dialect
        if fs is None:
            if folder is None:
                raise ValueError("give a flash filesystem (fs) or a folder for one")
            os.makedirs(folder, exist_ok=True)
            fs = flashfs.FlashFS(folder)
        self.fs = fs
        self.clock = clock or SimClock()
        self.uplinks = []
        self._on_uplink = on_uplink
        self.session = emu_session.Session(lambda: self.clock.elapsed_ms, dev_eui=node_file["dev_eui"],
                                           on_uplink=self._uplink, downlinks=downlinks, **(session_kw or {}))
        self.emulator = DRIVERS[dialect][1](self.session)
        self.budget_ms = budget_ms
        self.battery_mv = battery_mv
        self.loop = loop
        self.log = log
        self.wdt = Watchdog(self.clock)
        self.resets = 0
        self.watchdog_resets = 0
        self._boot("power_on")

    def _uplink(self, up):
        self.uplinks.append(up)
        if self._on_uplink:
            self._on_uplink(up)

    def _lines(self):
        lines = self.recording_lines
        if isinstance(lines, str):             # a path: read line by line, looping if asked
            return open(lines)
        return list(lines)

    def _boot(self, cause):
        nf = self.node_file
        self.modem = DRIVERS[self.dialect][0](self.emulator, self.clock, seed=self.resets + 1)
        self.modem.setup(nf["dev_eui"], nf.get("join_eui", "0000000000000000"), nf.get("app_key", "00" * 16))
        if self.make_sensor is not None:
            self.sensor = self.make_sensor(self.clock)
        else:
            self.sensor = ReplaySensor(self._lines(), self.clock, loop=self.loop)
        if hasattr(self.sensor, "feed"):
            self.sensor.feed = self.wdt.feed      # as app.start does
        self.wdt.last, self.wdt.bitten = None, False
        self.node = Node(nf, self.sensor, self.modem, self.clock, self.fs, wdt=self.wdt,
                         battery=lambda: self.battery_mv, reset_cause=cause, budget_ms=self.budget_ms,
                         log=self.log)

    def restart(self, cause="soft"):
        """The node resets (the modem, a separate chip, keeps running)."""
        self.resets += 1
        self._boot(cause)

    def step(self, step_ms=STEP_MS):
        self.node.step()
        if self.wdt.overdue():
            self.watchdog_resets += 1
            self.restart("watchdog")
        self.clock.advance(step_ms)

    def run_for(self, ms, step_ms=STEP_MS):
        end = self.clock.elapsed_ms + ms
        while self.clock.elapsed_ms < end:
            self.step(step_ms)
