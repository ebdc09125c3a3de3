# A sensor that plays back a recording (docs/evaluation.md, the recording
# format) at its recorded pace: the node's replay input.
#
# The hardware-in-the-loop suite copies a scripted scene to the board's
# flash and starts the node with this in place of the radar or the ToF
# sensor; the rest of the node (pipeline, queue, modem) is the one that
# runs in the field. Frames come out with the same read_frame() as the
# real drivers: a 30-byte LD2450 data frame, or (mm, status) for the ToF.
#
#     sensor = ReplaySensor(open("/scene.rec.jsonl"), clock)
#
# `lines` is any iterable of recording lines (a file opened on flash is
# read one line at a time: a long recording never has to fit in RAM).
import binascii
import json

from vistelse_node.clock import ticks_diff


class ReplaySensor:
    def __init__(self, lines, clock, loop=False):
        self.lines = lines
        self.clock = clock
        self.loop = loop
        it = iter(lines)
        self._it = it
        self.header = json.loads(next(it))
        if self.header.get("format") != "vistelse-recording" or self.header.get("version") != 1:
            raise ValueError("not a vistelse-recording version 1")
        self.kind = self.header["sensor"]
        self.t0 = clock.ticks_ms()
        self.offset = 0               # recording ms already played in earlier loops
        self.last_t = 0
        self._next = self._read()
        self.frames = 0
        self.finished = False

    def _read(self):
        for line in self._it:
            line = line.strip()
            if line:
                return json.loads(line)
        return None

    def _decode(self, doc):
        if self.kind == "ld2450":
            return binascii.unhexlify(doc["raw"])
        return doc["mm"], doc["status"]

    def read_frame(self):
        doc = self._next
        if doc is None:
            if not self.loop:
                self.finished = True
                return None
            if hasattr(self.lines, "seek"):
                self.lines.seek(0)
            self._it = iter(self.lines)
            next(self._it)            # the header
            self.offset += self.last_t + 1
            doc = self._next = self._read()
            if doc is None:
                return None
        if ticks_diff(self.clock.ticks_ms(), self.t0) < self.offset + doc["t_ms"]:
            return None
        self.last_t = doc["t_ms"]
        self._next = self._read()
        self.frames += 1
        return self._decode(doc)

    def reinit(self):
        pass
