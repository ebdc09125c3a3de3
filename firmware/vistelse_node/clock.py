# Millisecond ticks that wrap like MicroPython's, on both runtimes.
#
# MicroPython's time.ticks_ms() wraps at 2^30 on the microcontroller ports
# (about 12.4 days); CPython has no ticks at all. Every interval in the
# firmware is measured with ticks_diff/ticks_add from here, never with
# plain subtraction, so the same code is right across the wrap.
#
# Clocks are objects (ticks_ms(), sleep_ms(ms)) injected into the node, so
# tests and the demo can run simulated time, started just before a wrap.
try:
    import time as _time
    _ticks_ms = _time.ticks_ms
    _sleep_ms = _time.sleep_ms
except AttributeError:        # CPython
    import time as _time
    _ticks_ms = None
    _sleep_ms = None

TICKS_PERIOD = 1 << 30
TICKS_MAX = TICKS_PERIOD - 1
TICKS_HALF = TICKS_PERIOD >> 1


def ticks_add(ticks, delta):
    return (ticks + delta) & TICKS_MAX


def ticks_diff(end, start):
    """Signed difference end - start, right across the wrap (|diff| < 2^29)."""
    return ((end - start + TICKS_HALF) & TICKS_MAX) - TICKS_HALF


def ticks_less(a, b):
    return ticks_diff(a, b) < 0


class SysClock:
    """The board's clock (or, on CPython, a monotonic one wrapping at 2^30)."""

    def ticks_ms(self):
        if _ticks_ms is not None:
            return _ticks_ms()
        return int(_time.monotonic() * 1000) & TICKS_MAX

    def sleep_ms(self, ms):
        if ms <= 0:
            return
        if _sleep_ms is not None:
            _sleep_ms(ms)
        else:
            _time.sleep(ms / 1000)


class SimClock:
    """Simulated time for tests and the demo: advances only when told to.

    `start` defaults to just before the 2^30 wrap, so every test that runs
    longer than 10 simulated seconds crosses it.
    """

    def __init__(self, start=TICKS_PERIOD - 10000):
        self.now = start & TICKS_MAX
        self.elapsed_ms = 0          # unwrapped, for the test's own bookkeeping

    def ticks_ms(self):
        return self.now

    def sleep_ms(self, ms):
        if ms > 0:
            self.advance(ms)

    def advance(self, ms):
        self.now = (self.now + ms) & TICKS_MAX
        self.elapsed_ms += ms
