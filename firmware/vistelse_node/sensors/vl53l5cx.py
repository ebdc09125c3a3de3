# ST VL53L5CX multizone time-of-flight sensor, ceiling mounted, looking down.
#
# Adapter from SparkFun's maintained driver (PyPI sparkfun-qwiic-vl53l5cx,
# module qwiic_vl53l5cx, class QwiicVL53L5CX; MicroPython, CircuitPython and
# Linux) to the node's frames: `mm` and `status`, R*R ints each, zone index
# i = row * R + col exactly as the recording format defines it
# (recordings/recording-format.md). The driver object is injected, so
# tests pass a fake with the same methods:
#
#   begin() -> bool          set_resolution(16|64) -> status (0 ok)
#   set_ranging_mode(m) -> status, m = kRangingModeContinous (sic)
#   set_ranging_frequency_hz(hz) -> bool     start_ranging() -> status (0 ok)
#   stop_ranging() -> status  check_data_ready() -> bool
#   get_ranging_data() -> results with distance_mm[64], target_status[64]
#
# Zone order. By default the driver's own zone order is the recording's
# (the format stores distance_mm and target_status "as ST's driver returns
# them"). `rotate` (quarter turns counter-clockwise, seen from above in the
# recording's floor frame) and `mirror` (swap columns first) re-map it when
# the sensor is mounted turned. They come from the node file's mount
# ("rotate", "mirror": `vistelse provision`) or a configuration downlink
# (orientation, set_orientation); SparkFun's own examples mirror
# x, so a mount can swap in and out: confirm with the walk test
# (docs/evaluation.md) before the node goes into service.
#
# The bus. SparkFun's qwiic_i2c finds no bus on the STM32 port and, on the
# ESP32, builds I2C(scl=, sda=) without an id, which MicroPython 1.20-1.24
# makes a bit-banged SoftI2C (qwiic_i2c/micropython_i2c.py,
# _connectToI2CBus). board_i2c() opens the board's hardware bus by its id
# (the board file's I2C_ID) at 1 MHz and hands it to the driver.
#
# The frame read. The package's get_ranging_data() (2.0.0) steps through the
# ~1.4 KB result buffer with `for i in range(...)` and `i += msize` in the
# body, which has no effect in Python: every 4-byte word is parsed as a
# block header (~360 a frame at 8x8), data words that happen to look like a
# header overwrite results, and it returns distances in quarter-millimetres
# (ST's ULD, vl53l5cx_api.c vl53l5cx_get_ranging_data, divides by 4). With
# the board's bus, read_frame() reads the buffer in one transfer into a
# preallocated bytearray and walks the block headers as ST's ULD does
# (i += 4 + msize), decoding only distance, target status and targets
# detected; docs/firmware.md has the per-frame cost of both. Status 5 and 9 are valid ranges; the
# driver reports 255 for a zone with no target and clamps negative
# distances to 0.
#
# The firmware blob. The sensor has no flash: begin() uploads ST's ranging
# firmware (vl53l5cx_bin/firmware.bin, 86,016 bytes = 84 KiB) over I2C at
# every power-up, in three windows (32 KiB, 32 KiB, 20 KiB) of 31-byte
# register writes (2,793 writes), then the default configuration (972 B),
# crosstalk (776 B) and NVM command (40 B) files. The files live on the
# board's filesystem beside the driver (default dataPath
# /lib/qwiic_vl53l5cx/vl53l5cx_bin; pass dataPath= where the flash is
# /flash, as on STM32). RAM, from the driver's source and measured on the
# 32-bit MicroPython WebAssembly build: the upload reads the file 4,096
# bytes at a time and turns each piece into a list of ints, 4 KiB of
# bytes plus a 16 KiB list (one contiguous block; 32 KiB on a 64-bit
# port), so it needs about 20 KiB free; it allocates ~24 bytes per
# firmware byte in all (~2 MB of garbage collections). The driver object
# keeps ~11 KiB (temp_buffer 1,440 ints, offset 488, crosstalk 776), and
# importing its 62 KB source costs ~40 KB (ship it as .mpy). Each frame
# allocates a results object with ten 64-entry lists and a ~1.4 KB read
# list. With 88 KB of files this fits an ESP32, not an STM32WL55 (64 KB
# RAM, 24 KB filesystem). begin() takes several seconds (it sleeps 1 s);
# run the I2C bus at 1 MHz, the sensor's maximum, so get_ranging_data()
# (~1.4 KB read in 32-byte pieces) stays short.
from vistelse_node.clock import ticks_diff

FOV_DEG = 45
MODES = {"tof_8x8": 8, "tof_4x4": 4}     # config.SENSOR_MODES
ADDRESS = 0x29
# ST ULD block header indices (vl53l5cx_api.h; qwiic_vl53l5cx constants)
NB_TARGET_DETECTED_IDX = 0xCF7C
DISTANCE_IDX = 0xD33C
TARGET_STATUS_IDX = 0xD47C
NO_TARGET = 255


def board_i2c(i2c_id, sda=None, scl=None, freq=1000000):
    """qwiic_i2c's MicroPython driver on the board's hardware I2C bus `i2c_id`."""
    import machine
    from qwiic_i2c.micropython_i2c import MicroPythonI2C
    kw = {"freq": freq}
    if sda is not None and scl is not None:
        kw["sda"] = machine.Pin(sda)
        kw["scl"] = machine.Pin(scl)
    bus = machine.I2C(i2c_id, **kw)

    class BoardI2C(MicroPythonI2C):
        def __init__(self):           # not MicroPythonI2C's: it would open its own bus
            self._i2cbus = bus
            self._sda, self._scl, self._freq = sda, scl, freq
    return BoardI2C(), bus


def _sw(buf, k):
    """Byte k of the buffer as ST's ULD sees it after its 4-byte swap."""
    return buf[(k & ~3) + 3 - (k & 3)]


def parse_ranging(buf, size, zones, mm, status):
    """Distance (mm) and target status of `zones` zones from the raw result
    buffer, walking its block headers as ST's ULD does (vl53l5cx_api.c,
    vl53l5cx_get_ranging_data: headers from byte 16, each followed by its
    block, big-endian words). Returns the number of headers read."""
    targets = None
    i = 16
    headers = 0
    while i + 4 <= size:
        h = (buf[i] << 24) | (buf[i + 1] << 16) | (buf[i + 2] << 8) | buf[i + 3]
        kind = h & 0x0F
        n = (h >> 4) & 0xFFF
        idx = h >> 16
        msize = kind * n if 1 < kind < 13 else n
        base = i + 4
        headers += 1
        if idx == DISTANCE_IDX:
            for z in range(zones):
                k = base + 2 * z
                v = _sw(buf, k) | (_sw(buf, k + 1) << 8)
                mm[z] = 0 if v & 0x8000 else v >> 2       # int16 quarter-mm; negatives to 0
        elif idx == TARGET_STATUS_IDX:
            for z in range(zones):
                status[z] = _sw(buf, base + z)
        elif idx == NB_TARGET_DETECTED_IDX:
            targets = base
        i = base + msize
    if targets is not None:
        for z in range(zones):
            if _sw(buf, targets + z) == 0:
                status[z] = NO_TARGET
    return headers


class VL53L5CXError(Exception):
    """The sensor did not start or refused a setting."""


def zone_map(resolution, rotate=0, mirror=False):
    """[driver zone index] for each recording zone index i = row * R + col."""
    r = resolution
    out = [0] * (r * r)
    for row in range(r):
        for col in range(r):
            y, x = row, (r - 1 - col) if mirror else col
            for _ in range(rotate % 4):
                y, x = x, r - 1 - y        # a quarter turn counter-clockwise
            out[y * r + x] = row * r + col
    return out


class VL53L5CX:
    name = "vl53l5cx"
    fov_deg = FOV_DEG

    def __init__(self, driver, clock, resolution=8, rate_hz=15, rotate=0, mirror=False, continuous=True, bus=None,
                 feed=None):
        if resolution not in (4, 8):
            raise ValueError("resolution must be 4 (4x4) or 8 (8x8)")
        if not 1 <= rate_hz <= (60 if resolution == 4 else 15):
            raise ValueError("rate_hz must be 1..15 at 8x8, 1..60 at 4x4")
        self.driver = driver
        self.clock = clock
        self.bus = bus                 # machine.I2C: the frame is read and parsed here (see above)
        self.feed = feed               # the watchdog's feed, called between the long steps of a set-up
        self.rotate = rotate
        self.mirror = mirror
        self.continuous = continuous
        self.rate_wanted = rate_hz
        self.frames = 0
        self.last_frame_ms = None
        self.started_ms = clock.ticks_ms()
        self.reinits = 0
        self.ready = False             # set up at least once
        self._grid(resolution)

    def _grid(self, resolution):
        n = resolution * resolution
        self.resolution = resolution
        self.rate_hz = min(self.rate_wanted, 15 if resolution == 8 else 60)
        self._map = zone_map(resolution, self.rotate, self.mirror)
        self.mm = [0] * n
        self.status = [255] * n
        self.frame = (self.mm, self.status)
        self._raw_mm = [0] * n
        self._raw_status = [255] * n
        self._buf = None               # the result buffer, sized once the driver knows it

    def _fed(self):
        if self.feed is not None:
            self.feed()

    def setup(self):
        """Upload the sensor's firmware (begin) and start ranging."""
        self._fed()
        if not self.driver.begin():
            raise VL53L5CXError("the VL53L5CX did not start: check wiring and I2C address 0x29, and that "
                                "vl53l5cx_bin/firmware.bin is on the board (driver dataPath)")
        self._fed()
        self._configure()
        self.ready = True

    def _configure(self):
        d = self.driver
        self._buf = None
        n = self.resolution * self.resolution
        if d.set_resolution(n) != 0:
            raise VL53L5CXError("the VL53L5CX refused resolution %dx%d" % (self.resolution, self.resolution))
        if self.continuous and hasattr(d, "set_ranging_mode"):
            # Continuous ranging: the full frame rate, no idle gap between frames.
            if d.set_ranging_mode(d.kRangingModeContinous) != 0:
                raise VL53L5CXError("the VL53L5CX refused continuous ranging")
        if not d.set_ranging_frequency_hz(self.rate_hz):
            raise VL53L5CXError("the VL53L5CX refused %d Hz" % self.rate_hz)
        if d.start_ranging() != 0:
            raise VL53L5CXError("the VL53L5CX did not start ranging")
        self.started_ms = self.clock.ticks_ms()

    def set_mode(self, mode):
        """"tof_8x8" (15 Hz at most) or "tof_4x4" (60 Hz at most). Frames
        change size; applied at once when the sensor is running (no new
        firmware upload), else at setup()."""
        if mode not in MODES:
            raise ValueError("VL53L5CX mode must be tof_8x8 or tof_4x4")
        if MODES[mode] == self.resolution:
            return
        self._grid(MODES[mode])
        if self.ready:
            self.driver.stop_ranging()
            self._configure()

    def set_orientation(self, rotate, mirror):
        """The mount's orientation (a configuration downlink after a walk
        test): re-maps the zones from the next frame, nothing else changes."""
        self.rotate = rotate % 4
        self.mirror = bool(mirror)
        self._map = zone_map(self.resolution, self.rotate, self.mirror)

    def reinit(self):
        """Recover a silent sensor: stop, upload the firmware again, restart.
        stop_ranging() may wait 5 s for a hung sensor and begin() takes
        several: the watchdog is fed between the steps (each is well inside
        its 15 s)."""
        self.reinits += 1
        self._fed()
        try:
            self.driver.stop_ranging()
        except Exception:
            pass                       # a hung sensor may not answer; begin() resets it
        self.setup()

    def stop(self):
        self.driver.stop_ranging()

    def read_frame(self):
        """(mm, status) of a new frame (lists reused by the next call), or None."""
        d = self.driver
        if not d.check_data_ready():
            return None
        if self.bus is not None:
            size = d.data_read_size
            if self._buf is None or len(self._buf) != size:
                self._buf = bytearray(size)
            self.bus.writeto(getattr(d, "address", ADDRESS), b"\x00\x00")     # register 0x0000
            self.bus.readfrom_into(getattr(d, "address", ADDRESS), self._buf)
            src_mm = self._raw_mm
            src_status = self._raw_status
            parse_ranging(self._buf, size, self.resolution * self.resolution, src_mm, src_status)
        else:
            data = d.get_ranging_data()
            src_mm = data.distance_mm
            src_status = data.target_status
        mm = self.mm
        status = self.status
        zmap = self._map
        for i in range(len(zmap)):
            j = zmap[i]
            mm[i] = src_mm[j]
            status[i] = src_status[j]
        self.frames += 1
        self.last_frame_ms = self.clock.ticks_ms()
        return self.frame

    def silent_ms(self):
        """Milliseconds since the last frame (or since setup when none came)."""
        since = self.started_ms if self.last_frame_ms is None else self.last_frame_ms
        return ticks_diff(self.clock.ticks_ms(), since)
