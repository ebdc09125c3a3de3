"""Test doubles for the node: a flash filesystem that loses power on cue."""
import random


class PowerCut(BaseException):
    """The power went: nothing after this point happens (not an OSError,
    so no firmware code can catch it and carry on)."""


class MemFS:
    """flashfs.FlashFS in memory, counting write steps.

    A step is one append, one truncation (the first half of a replace) or
    one write of content (its second half), or one removal. At step
    `cut_at` the write is torn: a random prefix of it (possibly none)
    reaches flash, then PowerCut is raised, and every later call raises it.
    """

    def __init__(self, files=None, cut_at=None, seed=0):
        self.files = {k: bytearray(v) for k, v in (files or {}).items()}
        self.cut_at = cut_at
        self.steps = 0
        self.dead = False
        self.rng = random.Random(seed)

    def _step(self, name, data, mode):
        if self.dead:
            raise PowerCut()
        self.steps += 1
        if self.cut_at is not None and self.steps == self.cut_at:
            self.dead = True
            if data is not None and mode != "truncate":
                keep = self.rng.randrange(len(data)) if data else 0
                self.files.setdefault(name, bytearray()).extend(data[:keep])
            raise PowerCut()

    def read(self, name):
        if self.dead:
            raise PowerCut()
        data = self.files.get(name)
        return None if data is None else bytes(data)

    def append(self, name, data):
        self._step(name, data, "append")
        self.files.setdefault(name, bytearray()).extend(data)

    def replace(self, name, data):
        self._step(name, None, "truncate")
        self.files[name] = bytearray()
        self._step(name, data, "write")
        self.files[name].extend(data)

    def remove(self, name):
        self._step(name, None, "truncate")
        self.files.pop(name, None)

    def size(self, name):
        return len(self.files.get(name, b""))

    def after_power_cut(self):
        """The flash as the next start finds it."""
        return MemFS(self.files)


class FailingFS(MemFS):
    """Writes fail with OSError (flash full) while `full` is set."""

    def __init__(self, files=None):
        MemFS.__init__(self, files)
        self.full = False

    def _step(self, name, data, mode):
        if self.full:
            raise OSError(28, "ENOSPC")
        MemFS._step(self, name, data, mode)


class ScriptedUart:
    """A UART whose other end answers each write with reply(data) -> bytes
    (a modem's replies scripted line by line, for the driver's parsing)."""

    def __init__(self, reply):
        self.reply = reply
        self.out = bytearray()

    def write(self, data):
        self.out += self.reply(bytes(data))
        return len(data)

    def any(self):
        return len(self.out)

    def readinto(self, buf):
        n = min(len(buf), len(self.out))
        buf[:n] = self.out[:n]
        del self.out[:n]
        return n
