# Hi-Link LD2450 radar on a UART at 256000 baud, 8N1.
#
# Setup talks the radar's command protocol (Hi-Link "serial communication
# protocol" V1.03, little-endian throughout):
#
#   command  fd fc fb fa | len u16 | word u16, value... | 04 03 02 01
#   ACK      fd fc fb fa | len u16 | word|0x0100 u16, status u16 (0 = ok), data... | 04 03 02 01
#
#   0x00FF value 0x0001  enable configuration; the ACK adds protocol version
#                        u16 and buffer size u16. Every other command is
#                        ignored (no ACK at all) unless this came first.
#   0x0090               multi-target tracking (up to 3 targets)
#   0x00FE               end configuration: the radar reports again
#
# The radar streams data frames (10 per second) until it is in
# configuration mode, so the first ACK may arrive behind data frames, and
# the first enable command is sometimes missed while it streams: each
# command is retried. While configuring the radar should not report; data
# frames that arrive anyway are skipped while an ACK is awaited.
#
# After setup, read_frame() is non-blocking: it takes what the UART holds
# into a preallocated buffer and hands it to ld2450_frames.FrameReader,
# which resynchronises on the header across garbage and partial frames.
#
#   radar = LD2450(machine.UART(2, 256000, rxbuf=1024), SysClock())
#   radar.setup()                     # raises LD2450Error with what failed
#   frame = radar.read_frame()        # 30 bytes or None; call every turn
#
# rxbuf: at 10 frames of 30 bytes per second the ESP32's default 256-byte
# receive buffer holds under a second of frames if the loop is held up
# (a flash write, a modem command, USB output in record mode).
import struct

from vistelse_node.clock import ticks_diff
from vistelse_node.sensors import ld2450_frames

BAUDRATE = 256000
CMD_HEADER = b"\xfd\xfc\xfb\xfa"
CMD_TAIL = b"\x04\x03\x02\x01"

ENABLE_CONFIG = 0x00FF
END_CONFIG = 0x00FE
SINGLE_TARGET = 0x0080
MULTI_TARGET = 0x0090
QUERY_TRACKING = 0x0091
READ_FIRMWARE = 0x00A0
ACK_BIT = 0x0100
MODES = {"radar_multi": MULTI_TARGET, "radar_single": SINGLE_TARGET}   # config.SENSOR_MODES


class LD2450Error(Exception):
    """Setup failed: no ACK in time, or the radar answered with a failure."""


class LD2450:
    name = "ld2450"
    baudrate = BAUDRATE
    rate_hz = 10

    def __init__(self, uart, clock, ack_timeout_ms=300, retries=3):
        self.uart = uart
        self.clock = clock
        self.ack_timeout_ms = ack_timeout_ms
        self.retries = retries
        self._has_any = hasattr(uart, "any")
        self._rx = bytearray(64)
        self._rxv = memoryview(self._rx)
        self._cmd = bytearray(16)
        self._ack = bytearray(64)      # bytes seen while waiting for an ACK
        self._ackn = 0
        self.reader = ld2450_frames.FrameReader()
        self.frames = 0                # complete data frames since construction
        self.last_frame_ms = None      # ticks of the last one (None: none yet)
        self.started_ms = clock.ticks_ms()
        self.reinits = 0
        self.protocol_version = None   # from the enable-configuration ACK
        self.buffer_size = None
        self.tracking = MULTI_TARGET
        self.ready = False             # set up at least once

    # --- configuration ----------------------------------------------------------

    def setup(self):
        """Enable configuration, select multi-target tracking (or single,
        see set_mode), end configuration."""
        data = self.command(ENABLE_CONFIG, 0x0001)
        if len(data) >= 4:
            self.protocol_version, self.buffer_size = struct.unpack_from("<HH", data, 0)
        try:
            self.command(self.tracking)
        except LD2450Error:
            # Leave configuration mode even when the mode command failed,
            # or the radar stays silent until it is power-cycled.
            try:
                self.command(END_CONFIG)
            except LD2450Error:
                pass
            raise
        self.command(END_CONFIG)
        self.reader.n = 0
        self.started_ms = self.clock.ticks_ms()
        self.ready = True

    def set_mode(self, mode):
        """"radar_multi" (up to 3 targets) or "radar_single"; applied at
        once when the radar is set up, else at setup()."""
        if mode not in MODES:
            raise ValueError("LD2450 mode must be radar_multi or radar_single")
        self.tracking = MODES[mode]
        if self.ready:
            self.setup()

    def reinit(self):
        """Recover a silent or confused radar: drop buffered bytes, set up again."""
        self.reinits += 1
        self._drain()
        self.reader.n = 0
        self.setup()

    def command(self, word, value=None):
        """Send one command frame; return the ACK's data after the status
        (bytes). Retries self.retries times; raises LD2450Error."""
        n = 2 if value is None else 4
        c = self._cmd
        c[0:4] = CMD_HEADER
        struct.pack_into("<HH", c, 4, n, word)
        if value is not None:
            struct.pack_into("<H", c, 8, value)
        c[6 + n:10 + n] = CMD_TAIL
        frame = bytes(c[0:10 + n])
        failure = None
        self._ackn = 0
        for _ in range(self.retries):
            self.uart.write(frame)
            start = self.clock.ticks_ms()
            while ticks_diff(self.clock.ticks_ms(), start) < self.ack_timeout_ms:
                ack = self._take_ack()
                if ack is None:
                    self.clock.sleep_ms(2)
                    continue
                got, status, data = ack
                if got != (word | ACK_BIT):
                    continue           # an ACK to an earlier, retried command
                if status != 0:
                    failure = "radar refused command 0x%04x (status %d)" % (word, status)
                    break
                return data
            if failure:
                break
        if failure is None:
            failure = "no ACK to command 0x%04x within %d ms (%d tries): check wiring (radar TX to board RX), " \
                      "5 V supply and %d baud" % (word, self.ack_timeout_ms, self.retries, BAUDRATE)
        raise LD2450Error(failure)

    def _take_ack(self):
        """Read the UART; return (word, status, data) of the next ACK frame, or None."""
        buf = self._ack
        while True:
            n = self._ackn
            i = buf.find(CMD_HEADER, 0, n) if n >= 4 else -1
            if i > 0:
                buf[0:n - i] = buf[i:n]
                self._ackn = n = n - i
                i = 0
            if i == 0 and n >= 6:
                length = buf[4] | (buf[5] << 8)
                total = 10 + length
                if length < 4 or total > len(buf):
                    self._shift(1)         # not an ACK we can hold: a false header
                    continue
                if n >= total:
                    if buf[total - 4:total] != CMD_TAIL:
                        self._shift(1)
                        continue
                    word, status = struct.unpack_from("<HH", buf, 6)
                    data = bytes(buf[10:6 + length])
                    self._shift(total)
                    return word, status, data
            if i < 0 and n > 3:
                self._shift(n - 3)         # keep 3 bytes: a header may be split
            # need more bytes
            if self._has_any and not self.uart.any():
                return None
            room = len(buf) - self._ackn
            if room <= 0:
                self._shift(1)
                continue
            got = self.uart.readinto(self._rxv[0:room])
            if not got:
                return None
            buf[self._ackn:self._ackn + got] = self._rxv[0:got]
            self._ackn += got

    def _shift(self, k):
        n = self._ackn
        self._ack[0:n - k] = self._ack[k:n]
        self._ackn = n - k

    def _drain(self):
        for _ in range(64):
            if self._has_any and not self.uart.any():
                return
            if not self.uart.readinto(self._rx):
                return

    # --- data frames ------------------------------------------------------------

    def read_frame(self):
        """The next complete 30-byte data frame (the reader's buffer, valid
        until the next call), or None when the UART holds no whole frame."""
        reader = self.reader
        if reader.feed(b""):
            return self._got()
        while True:
            if self._has_any and not self.uart.any():
                return None
            n = self.uart.readinto(self._rx)
            if not n:
                return None
            if reader.feed(self._rxv[0:n]):
                return self._got()

    def _got(self):
        self.frames += 1
        self.last_frame_ms = self.clock.ticks_ms()
        return self.reader.frame

    def silent_ms(self):
        """Milliseconds since the last frame (or since setup when none came)."""
        since = self.started_ms if self.last_frame_ms is None else self.last_frame_ms
        return ticks_diff(self.clock.ticks_ms(), since)

    def dropped_bytes(self):
        return self.reader.dropped
