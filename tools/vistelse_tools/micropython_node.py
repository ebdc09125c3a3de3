"""A node under real MicroPython on simulated time, its radio bridged to this process.

The firmware runs as `vistelse deploy` installs it (compiled with mpy-cross
for the board, board_memory.compiled_files) in the official MicroPython
WebAssembly build, in the persistent interpreter of a virtual board
(virtual_board.py); beside it, in the same interpreter, the RAK3172
emulator with its simulated LoRaWAN session (loss, outages, class A) and a
day of sensor frames (board_scene.DaySensor: the recorded scene in busy
windows, the empty frame between them). The node runs until an uplink the
network heard; this process gets it (`on_uplink`), may answer with a
downlink (`downlinks(dev_eui)`), which goes into the session's queue before
the node runs on, so it arrives in that uplink's RX1 window, as a network
server reads its device queue between the uplink and RX1
(emulators/session.py Session.receive).

    node = MicroPythonNode(node_file, scene_path, session_kw={"loss_rate": 0.1})
    node.run(3 * 86400000, on_uplink=print, downlinks=lambda eui: None)
    node.outcome()        # uplinks on air, the queue's state, flash held
    node.stop()
"""
import binascii
import json
import os
import shutil
import tempfile

from .board_memory import EMPTY, EXTRA_IMPORTS, FRAME_MS, RIG_FILES, compiled_files
from .micropython import MicroPythonError
from .virtual_board import VirtualBoard

SETUP = r"""
import json, binascii, os
from vistelse_node.clock import SimClock
from vistelse_node.node import Node
from vistelse_node.modem.rak3172 import Rak3172
from vistelse_node import flashfs
from emulators import session, rak3172
from board_scene import DaySensor
%(extra_imports)s
try:
    os.mkdir('/flash/state')
except OSError:
    pass
nf = json.loads(open('/flash/node.json').read())
clock = SimClock()
HEARD = []
s = session.Session(lambda: clock.elapsed_ms, dev_eui=nf['dev_eui'], on_uplink=HEARD.append, **%(session_kw)s)
emu = rak3172.Rak3172(s)
m = Rak3172(emu, clock)
m.setup(nf['dev_eui'], nf['join_eui'], nf['app_key'])
sensor = DaySensor(nf['sensor'], clock, %(busy)r, %(empty)s, %(quiet_ms)d, '/flash/scene.rec.jsonl', %(period_ms)d)
node = Node(nf, sensor, m, clock, flashfs.FlashFS('/flash/state'), reset_cause='power_on')
held_max = 0


def run(until, turns):
    # node turns until `until` (simulated ms), `turns` of them, or an uplink the network heard
    global held_max
    n = 0
    while clock.elapsed_ms < until and n < turns:
        node.step()
        h = 0
        for v in node.queue.sent.values():
            h += v
        if h > held_max:
            held_max = h
        del emu.log[:]
        clock.advance(%(frame_ms)d if sensor.window_at(clock.elapsed_ms) is not None else %(quiet_ms)d)
        n += 1
        if HEARD:
            break
    ups = [[u['fport'], binascii.hexlify(u['data']).decode(), u['fcnt'], u['dr'], u['at_ms']] for u in HEARD]
    del HEARD[:]
    print(json.dumps([clock.elapsed_ms, ups]))


def outcome():
    q = node.queue
    print(json.dumps({"elapsed_ms": clock.elapsed_ms, "next_seq": q.next_seq, "dropped": q.dropped,
                      "records": [[r[0], r[1]] for r in q.records], "held_max": held_max, "lost": len(s.lost),
                      "uplinks": [[u['fport'], binascii.hexlify(u['data']).decode(), u['at_ms'], u['airtime_us']]
                                  for u in s.uplinks]}))
"""


class MicroPythonNode:
    def __init__(self, node_file, scene_path, session_kw=None, board="esp32_devkitc", busy=((0, 30000),),
                 period_ms=3600000, quiet_ms=5000, chunk=400):
        """busy: windows (start, end ms) of the recorded scene, repeating every
        period_ms; quiet_ms: one empty frame this often between them."""
        self.node_file = node_file
        self.chunk = chunk
        self.elapsed_ms = 0
        self._down = None
        self._work = tempfile.mkdtemp(prefix="vistelse-mpnode-")
        self.board = None
        try:
            sensor = node_file["sensor"]
            files = compiled_files(board, sensor, self._work)
            nf = os.path.join(self._work, "node.json")
            with open(nf, "w") as f:
                json.dump(node_file, f)
            self.board = VirtualBoard().start()
            self.board.load(files + RIG_FILES + [(scene_path, "/flash/scene.rec.jsonl"), (nf, "/flash/node.json")])
            self._exec(SETUP % {"extra_imports": EXTRA_IMPORTS[sensor], "session_kw": repr(dict(session_kw or {})),
                                "busy": [list(w) for w in busy], "empty": EMPTY[sensor], "quiet_ms": quiet_ms,
                                "period_ms": period_ms, "frame_ms": FRAME_MS[sensor]})
        except BaseException:
            self.stop()
            raise

    def _exec(self, code):
        out, err, _ = self.board.execute(code)
        if err.strip():
            raise MicroPythonError(err, out.decode("utf-8", "replace"))
        return out.decode()

    def run(self, end_ms, on_uplink, downlinks):
        """Run the node until simulated `end_ms`. Every uplink the network heard goes
        to on_uplink(dict: dev_eui, fport, data, fcnt, dr, at_ms); downlinks(dev_eui)
        -> (fport, bytes[, ...]) or None is asked right after, for its RX1 window."""
        eui = self.node_file["dev_eui"].lower()
        while self.elapsed_ms < end_ms:
            code = ""
            if self._down is not None:
                code = "s.queue_downlink(%d, binascii.unhexlify(%r))\n" % (
                    self._down[0], binascii.hexlify(bytes(self._down[1])).decode())
                self._down = None
            out = self._exec(code + "run(%d, %d)" % (end_ms, self.chunk))
            self.elapsed_ms, ups = json.loads(out.strip().splitlines()[-1])
            for fport, data, fcnt, dr, at_ms in ups:
                on_uplink({"dev_eui": eui, "fport": fport, "data": binascii.unhexlify(data), "fcnt": fcnt,
                           "dr": dr, "at_ms": at_ms})
                self._down = downlinks(eui)

    def outcome(self):
        """What the node did: {elapsed_ms, next_seq, dropped, records [(seq, span)],
        held_max (most log bytes of sent records held), lost (uplinks the network
        missed), uplinks [{fport, data, at_ms, airtime_us}] (all that went on air)}."""
        o = json.loads(self._exec("outcome()").strip().splitlines()[-1])
        o["uplinks"] = [{"fport": p, "data": binascii.unhexlify(d), "at_ms": t, "airtime_us": a}
                        for p, d, t, a in o["uplinks"]]
        return o

    def stop(self):
        if self.board is not None:
            self.board.stop()
            self.board = None
        shutil.rmtree(self._work, ignore_errors=True)
