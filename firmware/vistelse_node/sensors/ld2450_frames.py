# Hi-Link LD2450 radar data frames: bytes from the UART -> detections.
#
# A data frame is 30 bytes: header aa ff 03 00, three 8-byte target slots,
# footer 55 cc. A slot is x (mm), y (mm), speed (cm/s) and a distance
# resolution, each a little-endian u16 in sign-magnitude form where bit 15
# SET means positive (the radar's own convention, the opposite of the usual
# sign bit). An all-zero slot is no target. The UART may deliver partial
# frames, and garbage (or command ACKs) between frames: the reader keeps a
# small ring buffer and resynchronises on the header.
import struct

FRAME_LEN = 30
HEADER = b"\xaa\xff\x03\x00"
FOOTER = b"\x55\xcc"
SLOTS = 3


def _signed(v):
    return (v & 0x7FFF) if v & 0x8000 else -(v & 0x7FFF)


def parse_frame(frame, out):
    """Fill `out` (a list of 3 preallocated [x, y, speed] lists) from one
    30-byte frame; return how many slots hold a target. Empty slots get
    x = y = 0 and are skipped by callers through the count and the order:
    targets are moved to the front."""
    n = 0
    for k in range(SLOTS):
        x, y, v, _res = struct.unpack_from("<HHHH", frame, 4 + 8 * k)
        if x == 0 and y == 0 and v == 0 and _res == 0:
            continue
        t = out[n]
        t[0] = _signed(x)
        t[1] = _signed(y)
        t[2] = _signed(v)
        n += 1
    return n


class FrameReader:
    """Pulls complete data frames out of a byte stream, resynchronising."""

    def __init__(self, size=96):
        self.buf = bytearray(size)
        self.n = 0
        self.frame = bytearray(FRAME_LEN)   # the last complete frame
        self.dropped = 0                    # bytes skipped while resynchronising

    def feed(self, data):
        """Add bytes; return True when self.frame holds a new complete frame.
        Call again with b"" until it returns False to drain buffered frames."""
        if data:
            room = len(self.buf) - self.n
            if len(data) > room:            # a burst larger than the buffer: keep the newest
                self.dropped += len(data) - room
                data = data[len(data) - room:]
            self.buf[self.n:self.n + len(data)] = data
            self.n += len(data)
        while self.n >= FRAME_LEN:
            i = self.buf.find(HEADER, 0, self.n)
            if i < 0:
                keep = 3                    # a header may be split across reads
                self.dropped += self.n - keep
                self.buf[0:keep] = self.buf[self.n - keep:self.n]
                self.n = keep
                return False
            if i > 0:
                self.dropped += i
                self.buf[0:self.n - i] = self.buf[i:self.n]
                self.n -= i
                continue
            if self.n < FRAME_LEN:
                return False
            if self.buf[FRAME_LEN - 2:FRAME_LEN] != FOOTER:
                # a false header inside garbage: skip it and look again
                self.dropped += 1
                self.buf[0:self.n - 1] = self.buf[1:self.n]
                self.n -= 1
                continue
            self.frame[:] = self.buf[0:FRAME_LEN]
            self.buf[0:self.n - FRAME_LEN] = self.buf[FRAME_LEN:self.n]
            self.n -= FRAME_LEN
            return True
        return False
