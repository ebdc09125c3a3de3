# `machine` for the virtual board: MicroPython's WebAssembly build has no
# hardware, so this gives the firmware the parts of `machine` it uses.
# UARTs are pseudo-terminals on the host (a modem emulator, a sensor
# replay); everything else does what a board would, minus the electrons.
# This file lives in the virtual board's /vboard and is never deployed.
import sys
import time
from binascii import hexlify, unhexlify

import vboard


def _bite_if_due():
    """The watchdog was not fed in time: the board resets here and now."""
    if vboard.wdt_check():
        raise SystemExit


class _WatchedTime:
    """`time` as the firmware sees it on the virtual board: the same
    functions, each a moment at which an overdue watchdog resets the board
    (a real board's watchdog interrupts whatever runs)."""

    def __getattr__(self, name):
        return getattr(time, name)

    def sleep_ms(self, ms):
        _bite_if_due()
        time.sleep_ms(ms)
        _bite_if_due()

    def sleep(self, s):
        _bite_if_due()
        time.sleep(s)
        _bite_if_due()

    def sleep_us(self, us):
        _bite_if_due()
        time.sleep_us(us)

    def ticks_ms(self):
        _bite_if_due()
        return time.ticks_ms()

    def ticks_us(self):
        _bite_if_due()
        return time.ticks_us()


sys.modules["time"] = _WatchedTime()


def _flash_statvfs(total):
    """os.statvfs for a flash of `total` bytes in 4 KB blocks (littlefs)."""
    import os

    def used(path):
        n = 0
        for entry in os.ilistdir(path):
            p = path + "/" + entry[0]
            if entry[1] == 0x4000:
                n += 4096 + used(p)
            else:
                n += (os.stat(p)[6] + 4095) // 4096 * 4096
        return n

    def statvfs(path):
        blocks = total // 4096
        free = max(0, blocks - used("/flash") // 4096)
        return (4096, 4096, blocks, free, free, 0, 0, 0, 0, 255)
    os.statvfs = statvfs


if vboard.flash_bytes():
    _flash_statvfs(vboard.flash_bytes())


def _board_heap(total):
    """`gc` of a board whose heap is `total` bytes: mem_free() is what is left of it."""
    import gc

    class BoardGC:
        def __getattr__(self, name):
            return getattr(gc, name)

        def mem_free(self):
            return max(0, total - gc.mem_alloc())
    sys.modules["gc"] = BoardGC()


if vboard.heap_bytes():
    _board_heap(vboard.heap_bytes())

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


class UART:
    def __init__(self, id, baudrate=115200, **kwargs):
        self.id = str(id)
        self.baudrate = baudrate
        self._pending = b""

    def init(self, baudrate=115200, **kwargs):
        self.baudrate = baudrate

    def _fill(self, n=256):
        _bite_if_due()
        data = vboard.uart_read(self.id, n)
        if data:
            self._pending += unhexlify(data)

    def any(self):
        self._fill()
        return len(self._pending)

    def read(self, n=-1):
        self._fill(n if n and n > 0 else 256)
        if not self._pending:
            return None
        if n is None or n < 0:
            n = len(self._pending)
        data, self._pending = self._pending[:n], self._pending[n:]
        return data

    def readinto(self, buf, nbytes=None):
        data = self.read(len(buf) if nbytes is None else nbytes)
        if not data:
            return None
        buf[:len(data)] = data
        return len(data)

    def readline(self):
        self._fill()
        i = self._pending.find(b"\n")
        if i < 0:
            return None
        line, self._pending = self._pending[:i + 1], self._pending[i + 1:]
        return line

    def write(self, buf):
        _bite_if_due()
        return vboard.uart_write(self.id, hexlify(bytes(buf)).decode())

    def deinit(self):
        pass


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self._value = value or 0

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = v

    def on(self):
        self._value = 1

    def off(self):
        self._value = 0


class I2C:
    def __init__(self, id=0, **kwargs):
        self.id = id

    def scan(self):
        return []


class ADC:
    # A battery at 3.6 V behind the boards' 1:2 divider: 1.8 V at the pin.
    ATTN_11DB = 3

    def __init__(self, pin, **kwargs):
        self.pin = pin

    def atten(self, value):
        pass

    def read_uv(self):
        return 1800000

    def read_u16(self):
        return 1800 * 65535 // 3300


class WDT:
    # Enforced by virtual_board.mjs: once started it cannot be stopped (as on
    # the ESP32 and STM32 ports); a new WDT re-times the running one.
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        if vboard.wdt_start(timeout):
            raise SystemExit

    def feed(self):
        if vboard.wdt_feed():
            raise SystemExit


def reset():
    vboard.request_reset()
    raise SystemExit


def soft_reset():
    raise SystemExit


def reset_cause():
    return vboard.reset_cause()


def unique_id():
    return b"vboard01"


def freq(hz=None):
    return 160000000


def lightsleep(ms=None):
    if ms:
        time.sleep_ms(ms)


def idle():
    pass
