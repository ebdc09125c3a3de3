# `machine` for the virtual board: MicroPython's WebAssembly build has no
# hardware, so this gives the firmware the parts of `machine` it uses.
# UARTs are pseudo-terminals on the host (a modem emulator, a sensor
# replay); everything else does what a board would, minus the electrons.
# This file lives in the virtual board's /vboard and is never deployed.
import time
from binascii import hexlify, unhexlify

import vboard

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
    # The virtual board cannot interrupt a running interpreter, so an unfed
    # watchdog is recorded, not enforced.
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.last_feed = time.ticks_ms()

    def feed(self):
        self.last_feed = time.ticks_ms()


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
