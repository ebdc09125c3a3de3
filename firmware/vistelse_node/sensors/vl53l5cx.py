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
# the sensor is mounted turned; confirm on site by walking along +x and +y
# under the sensor before recording. Status 5 and 9 are valid ranges; the
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

    def __init__(self, driver, clock, resolution=8, rate_hz=15, rotate=0, mirror=False, continuous=True):
        if resolution not in (4, 8):
            raise ValueError("resolution must be 4 (4x4) or 8 (8x8)")
        if not 1 <= rate_hz <= (60 if resolution == 4 else 15):
            raise ValueError("rate_hz must be 1..15 at 8x8, 1..60 at 4x4")
        self.driver = driver
        self.clock = clock
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

    def setup(self):
        """Upload the sensor's firmware (begin) and start ranging."""
        if not self.driver.begin():
            raise VL53L5CXError("the VL53L5CX did not start: check wiring and I2C address 0x29, and that "
                                "vl53l5cx_bin/firmware.bin is on the board (driver dataPath)")
        self._configure()
        self.ready = True

    def _configure(self):
        d = self.driver
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

    def reinit(self):
        """Recover a silent sensor: stop, upload the firmware again, restart."""
        self.reinits += 1
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
