# Hi-Link LD2450 radar as the firmware sees it on its UART (256000 baud).
#
# A Python object with write/any/read/readinto, so it can stand in for
# machine.UART in tests, and, served on a pseudo-terminal (PtyLD2450
# below), for the radar wired to the virtual board's UART.
#
# It acknowledges command frames as the radar does (protocol V1.03):
#
#   fd fc fb fa | len u16 | word u16 [value] | 04 03 02 01
#   ACK: word | 0x0100, status u16 (0 ok, 1 failed), data
#
# - enable configuration (0x00FF, value 0x0001) -> ACK with protocol
#   version 0x0001 and buffer size 0x0040; the radar then stops reporting;
# - every other command before that is ignored: no ACK at all;
# - 0x0080 single / 0x0090 multi-target tracking, 0x0091 query mode,
#   0x00A0 firmware version, 0x00FE end configuration (reporting resumes);
#   an unknown command is acknowledged with status 1.
#
# It streams 30-byte data frames at rate_hz (10 by default) from a list of
# frames (bytes or hex; from the simulator's LD2450 model or a recording,
# see simulated_frames and recording_frames), and can make the line as
# untidy as a real one: garbage bytes and false headers between frames,
# frames cut short (lost), reads that return a few bytes at a time, an
# enable command missed while streaming. `sent` lists the frames that went
# out whole, so a test can compare what the driver read with it.
#
# Plain Python that also runs under MicroPython (like the modem
# emulators), so the driver test runs both in one MicroPython process.
from binascii import unhexlify
import struct

from .uart import EmulatedUart

CMD_HEADER = b"\xfd\xfc\xfb\xfa"
CMD_TAIL = b"\x04\x03\x02\x01"
FIRMWARE = b"\x00\x00\x02\x01\x16\x24\x06\x22"    # type 0, V1.02.22062416


class LD2450(EmulatedUart):
    baudrate = 256000

    def __init__(self, frames, clock, rate_hz=10, loop=False, garbage_rate=0.0, partial_rate=0.0,
                 chunk_max=0, miss_enable=0, refuse=(), seed=1):
        """clock() -> milliseconds (unwrapped). chunk_max > 0: each read
        returns 1..chunk_max bytes. miss_enable: ignore that many enable
        commands first. refuse: command words answered with status 1.
        garbage_rate / partial_rate: chance per frame."""
        self.frames = [unhexlify(f) if isinstance(f, str) else bytes(f) for f in frames]
        self.clock = clock
        self.period_ms = 1000 // rate_hz
        self.loop = loop
        self.garbage_rate = garbage_rate
        self.partial_rate = partial_rate
        self.chunk_max = chunk_max
        self.miss_enable = miss_enable
        self.refuse = refuse
        self._seed = seed & 0x7FFFFFFF or 1
        self._out = bytearray()
        self._in = bytearray()
        self.config = False          # in configuration mode: no data frames
        self.mode = 2                # 1 single, 2 multi-target tracking
        self.index = 0               # next frame to send
        self.next_due = clock()
        self.sent = []               # frames that went out whole, in order
        self.commands = []           # (word, value bytes) received, acknowledged or not
        self.powered = True

    # --- randomness that is the same on CPython and MicroPython -------------------

    def _rand(self, n):
        self._seed = (self._seed * 1103515245 + 12345) & 0x7FFFFFFF
        return (self._seed >> 8) % n

    def _chance(self, p):
        return p > 0 and self._rand(10000) < int(p * 10000)

    # --- the radar's side ---------------------------------------------------------

    def _stream(self):
        if not self.powered:
            return
        now = self.clock()
        while not self.config and now - self.next_due >= 0:
            if self.index >= len(self.frames):
                if not self.loop or not self.frames:
                    return
                self.index = 0
            frame = self.frames[self.index]
            self.index += 1
            self.next_due += self.period_ms
            if self._chance(self.garbage_rate):
                junk = bytearray(self._rand(12) + 1)
                for i in range(len(junk)):
                    junk[i] = self._rand(256)
                if self._rand(2):
                    junk = bytearray(b"\xaa\xff\x03\x00") + junk     # a false header
                self._out += junk
            if self._chance(self.partial_rate):
                self._out += frame[:self._rand(len(frame) - 1) + 1]  # cut short: this frame is lost
                continue
            self._out += frame
            self.sent.append(frame)

    def _ack(self, word, status, data=b""):
        body = struct.pack("<HH", word | 0x0100, status) + data
        self._out += CMD_HEADER + struct.pack("<H", len(body)) + body + CMD_TAIL

    def _command(self, word, value):
        self.commands.append((word, value))
        if word == 0x00FF:
            if self.miss_enable > 0:
                self.miss_enable -= 1
                return
            self.config = True
            self._ack(word, 0, struct.pack("<HH", 1, 0x40))
            return
        if not self.config:
            return                   # the radar ignores commands outside configuration mode
        if word in self.refuse:
            self._ack(word, 1)
            return
        if word == 0x00FE:
            self._ack(word, 0)
            self.config = False
            self.next_due = self.clock() + self.period_ms
        elif word == 0x0080 or word == 0x0090:
            self.mode = 1 if word == 0x0080 else 2
            self._ack(word, 0)
        elif word == 0x0091:
            self._ack(word, 0, struct.pack("<H", self.mode))
        elif word == 0x00A0:
            self._ack(word, 0, FIRMWARE)
        else:
            self._ack(word, 1)

    def _parse(self):
        while True:
            buf = self._in
            i = buf.find(CMD_HEADER)
            if i < 0:
                self._in = buf[max(0, len(buf) - 3):]
                return
            if i:
                self._in = buf = buf[i:]
            if len(buf) < 6:
                return
            length = buf[4] | (buf[5] << 8)
            if len(buf) < 10 + length:
                return
            if length < 2 or bytes(buf[6 + length:10 + length]) != CMD_TAIL:
                self._in = buf[1:]
                continue
            word = buf[6] | (buf[7] << 8)
            value = bytes(buf[8:6 + length])
            self._in = buf[10 + length:]
            self._command(word, value)

    # --- the UART's side ----------------------------------------------------------

    def _receive(self, data):
        if self.powered:
            self._in += data
            self._parse()

    def _produce(self):
        self._stream()

    def _chunk(self, n):
        if self.chunk_max > 0:
            return min(n, self._rand(self.chunk_max) + 1)
        return n

    # --- faults --------------------------------------------------------------------

    def power_cycle(self):
        """The radar restarts: out of configuration mode, reporting again."""
        self.powered = True
        self.config = False
        self._in = bytearray()
        self.next_due = self.clock()


# --- frame sources (CPython only) --------------------------------------------------

def simulated_frames(minutes=1.0, seed=1):
    """30-byte frames of the simulator's square site (LD2450 model)."""
    from vistelse_tools import simulate
    scene, header = simulate.square_site(minutes, seed)
    return [bytes.fromhex(f["raw"]) for f in simulate.ld2450_frames(scene, header, seed)]


def recording_frames(path):
    """30-byte frames of an ld2450 recording."""
    from vistelse_tools.recording import read_recording
    header, frames = read_recording(path)
    if header["sensor"] != "ld2450":
        raise ValueError("%s is a %s recording, not ld2450" % (path, header["sensor"]))
    return [bytes.fromhex(f["raw"]) for f in frames]


def PtyLD2450(emulator):
    """The emulator on a pseudo-terminal, in real time (CPython only).

        with PtyLD2450(LD2450(frames, clock)) as radar:
            VirtualBoard(uarts={2: radar.path}) ...
    """
    from .pty_server import PtyBridge
    return PtyBridge(emulator, baudrate=256000)
