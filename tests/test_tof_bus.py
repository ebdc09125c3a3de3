"""The VL53L5CX on the board's hardware I2C bus, and its frame read.

SparkFun's get_ranging_data() (sparkfun-qwiic-vl53l5cx 2.0.0) walks the
result buffer word by word (its `i += msize` in a for loop has no effect)
and skips ST's division by 4; the adapter's parse_ranging() walks the
block headers as ST's ULD does (vl53l5cx_api.c, vl53l5cx_get_ranging_data).
Both read the same buffer here, laid out as the sensor's firmware sends it;
the real SparkFun package runs on CPython with a stand-in qwiic I2C driver."""
import struct
import sys

import pytest

from vistelse_node.clock import SimClock
from vistelse_node.sensors import vl53l5cx as tof
from vistelse_tools import deploy

STATUS_VALID = 5


def st_buffer(mm, status, targets, decoy=True):
    """The raw result buffer (big-endian words, as read over I2C) for 8x8
    zones: 16 bytes of stream header, then blocks. `decoy` puts, inside a
    block after the distances, a data word that reads as a distance-block
    header."""
    logical = bytearray(16)
    logical[0] = 7                                  # stream count

    def block(idx, kind, size, payload):
        logical.extend(struct.pack("<I", (idx << 16) | (size << 4) | kind))
        logical.extend(payload)
        while len(logical) % 4:
            logical.append(0)
    block(0x54D0, 4, 64, struct.pack("<64I", *([300] * 64)))                   # ambient rate
    block(tof.NB_TARGET_DETECTED_IDX, 1, 64, bytes(targets))
    block(tof.DISTANCE_IDX, 2, 64, struct.pack("<64h", *[4 * v for v in mm]))   # quarter-millimetres
    block(tof.TARGET_STATUS_IDX, 1, 64, bytes(status))
    sigma = [128] * 32
    if decoy:
        sigma[10] = (tof.DISTANCE_IDX << 16) | (4 << 4) | 2      # reads as "distance, 4 x int16"
        sigma[11] = 0x7FFF7FFF
        sigma[12] = 0x7FFF7FFF
    block(0x55D0, 2, 64, struct.pack("<32I", *sigma))                               # range sigma
    raw = bytearray(len(logical))
    for i in range(0, len(logical), 4):                              # ST's 4-byte swap, undone
        raw[i:i + 4] = logical[i:i + 4][::-1]
    return bytes(raw)


class FakeBus:
    """machine.I2C as the adapter uses it: a register write, then one read."""

    def __init__(self, raw):
        self.raw = raw
        self.reads = 0

    def writeto(self, addr, data, stop=True):
        assert addr == 0x29 and data == b"\x00\x00"

    def readfrom_into(self, addr, buf):
        buf[:] = self.raw[:len(buf)]
        self.reads += 1


class FakeDriver:
    address = 0x29
    kRangingModeContinous = 1

    def __init__(self, size):
        self.data_read_size = size

    def check_data_ready(self):
        return True


def scene():
    mm = [2800 - 13 * z for z in range(64)]
    status = [STATUS_VALID] * 64
    targets = [1] * 64
    targets[5] = 0                              # no target in zone 5: status 255
    mm[9] = -3                                  # a negative range: 0
    return mm, status, targets


def test_parse_ranging_walks_the_block_headers_as_st_does():
    mm, status, targets = scene()
    raw = st_buffer(mm, status, targets)
    out_mm, out_status = [0] * 64, [0] * 64
    headers = tof.parse_ranging(raw, len(raw), 64, out_mm, out_status)
    assert headers == 5                         # one per block, not one per word
    want = [max(0, v) for v in mm]
    assert out_mm == want
    assert out_status[5] == 255 and out_status[:5] == [STATUS_VALID] * 5


def test_the_adapter_reads_a_frame_in_one_transfer_into_its_own_buffer():
    mm, status, targets = scene()
    raw = st_buffer(mm, status, targets)
    bus = FakeBus(raw)
    sensor = tof.VL53L5CX(FakeDriver(len(raw)), SimClock(), bus=bus, rotate=1, mirror=True)
    got_mm, got_status = sensor.read_frame()
    buf = sensor._buf
    assert bus.reads == 1
    zmap = tof.zone_map(8, 1, True)              # the mount's orientation from the node file
    assert got_mm == [max(0, mm[zmap[i]]) for i in range(64)]
    sensor.read_frame()
    assert sensor._buf is buf                    # preallocated, reused every frame


@pytest.fixture(scope="module")
def sparkfun(tmp_path_factory):
    wheels = deploy.fetch_wheels([deploy.WHEELS[n] for n in deploy.SENSOR_DEPS["vl53l5cx"]])
    dest = str(tmp_path_factory.mktemp("wheels"))
    for path, name in zip(wheels, deploy.SENSOR_DEPS["vl53l5cx"]):
        deploy.unpack_wheel(path, deploy.WHEELS[name], dest)
    sys.path.insert(0, dest)
    try:
        import qwiic_vl53l5cx
        yield qwiic_vl53l5cx
    finally:
        sys.path.remove(dest)


def test_sparkfuns_parse_of_the_same_buffer_is_off(sparkfun):
    """What the workaround is for: on the same bytes the package reports
    quarter-millimetres and lets a data word that looks like a header
    overwrite distances."""
    mm, status, targets = scene()
    raw = st_buffer(mm, status, targets)

    class QwiicStandIn:
        def __init__(self):
            self.pos = 0

        def write_byte(self, addr, reg_hi, reg_lo):
            self.pos = (reg_hi << 8) | reg_lo

        def read_block(self, addr, reg, n):
            data = raw[self.pos:self.pos + n]
            self.pos += n
            return data
    driver = sparkfun.QwiicVL53L5CX(i2c_driver=QwiicStandIn())
    driver.data_read_size = len(raw)
    theirs = driver.get_ranging_data()
    ours_mm, ours_status = [0] * 64, [0] * 64
    tof.parse_ranging(raw, len(raw), 64, ours_mm, ours_status)
    assert theirs.distance_mm != ours_mm
    assert theirs.distance_mm[20:] == [4 * v for v in ours_mm[20:]]      # quarter-millimetres
    assert theirs.distance_mm[:4] != [4 * v for v in ours_mm[:4]]        # the decoy overwrote these
    # without the decoy the package's values are ours times four
    raw = st_buffer(mm, status, targets, decoy=False)
    theirs = driver.get_ranging_data()
    tof.parse_ranging(raw, len(raw), 64, ours_mm, ours_status)
    assert theirs.distance_mm == [4 * v for v in ours_mm]
