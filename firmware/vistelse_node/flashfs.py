# The node's flash filesystem, as the queue and the configuration see it.
#
# Four operations, each one step that a power cut can interrupt: read a
# whole (small) file, append bytes, replace a file's content, remove. The
# fault-injection tests put a simulated filesystem with the same methods
# in its place and cut the power at every step.
#
# Entries: every record the node keeps on flash is framed
#     0xA5, type (1 byte), length (u16 LE), payload, CRC-32 (u32 LE)
# with the CRC over type, length and payload, so a torn write is seen as
# the end of the valid entries and never misread.
import struct

try:
    import os
except ImportError:       # pragma: no cover
    import uos as os

MAGIC = 0xA5
_HEAD = "<BBH"
_CRC = "<I"

try:
    from binascii import crc32 as _crc32
    _crc32(b"")
except (ImportError, AttributeError):       # ports built without binascii.crc32
    _crc32 = None

_TABLE = None


def crc32(data, crc=0):
    if _crc32 is not None:
        return _crc32(data, crc) & 0xFFFFFFFF
    global _TABLE
    if _TABLE is None:
        _TABLE = [0] * 16
        for i in range(16):
            c = i
            for _ in range(4):
                c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
            _TABLE[i] = c
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = (crc >> 4) ^ _TABLE[(crc ^ b) & 15]
        crc = (crc >> 4) ^ _TABLE[(crc ^ (b >> 4)) & 15]
    return crc ^ 0xFFFFFFFF


def frame(kind, payload):
    """One entry: kind is a one-letter str, payload bytes (< 64 KB)."""
    head = struct.pack(_HEAD, MAGIC, ord(kind), len(payload))
    crc = crc32(payload, crc32(head[1:]))
    return head + payload + struct.pack(_CRC, crc)


def entries(data):
    """[(kind, payload)] of the valid entries at the start of data, and
    whether anything (a torn or corrupt entry) follows them."""
    out = []
    pos = 0
    n = len(data)
    while pos + 8 <= n:
        magic, kind, length = struct.unpack_from(_HEAD, data, pos)
        end = pos + 4 + length
        if magic != MAGIC or end + 4 > n:
            break
        crc = crc32(data[pos + 4:end], crc32(data[pos + 1:pos + 4]))
        if struct.unpack_from(_CRC, data, end)[0] != crc:
            break
        out.append((chr(kind), bytes(data[pos + 4:end])))
        pos = end + 4
    return out, pos != n


class FlashFS:
    """Files under `root` on the board's (or host's) filesystem."""

    def __init__(self, root="/"):
        self.root = root.rstrip("/")

    def _path(self, name):
        return self.root + "/" + name

    def read(self, name):
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def append(self, name, data):
        with open(self._path(name), "ab") as f:
            f.write(data)

    def replace(self, name, data):
        with open(self._path(name), "wb") as f:
            f.write(data)

    def remove(self, name):
        try:
            os.remove(self._path(name))
        except OSError:
            pass

    def size(self, name):
        try:
            return os.stat(self._path(name))[6]
        except OSError:
            return 0


class DualSlot:
    """A small document kept in two files, written alternately.

    Each file holds one entry: (generation, payload). Loading takes the
    valid one with the higher generation, so a torn save leaves the
    previous document in force.
    """

    def __init__(self, fs, base):
        self.fs = fs
        self.names = (base + ".0", base + ".1")
        self.gen = 0
        self.slot = 1

    def load(self):
        best = None
        for i in range(2):
            data = self.fs.read(self.names[i])
            if not data:
                continue
            found, _ = entries(data)
            if not found or found[0][0] != "D":
                continue
            payload = found[0][1]
            gen = struct.unpack_from("<I", payload, 0)[0] if len(payload) >= 4 else -1
            if best is None or gen > best[0]:
                best = (gen, i, payload[4:])
        if best is None:
            return None
        self.gen, self.slot = best[0], best[1]
        return best[2]

    def save(self, payload):
        gen = self.gen + 1
        slot = 1 - self.slot
        self.fs.replace(self.names[slot], frame("D", struct.pack("<I", gen) + payload))
        self.gen, self.slot = gen, slot
