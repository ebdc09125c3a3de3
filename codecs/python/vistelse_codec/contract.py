"""Constants of contract v1, shared by the report and config codecs."""

FPORT_REPORT = 1   # uplink: report, format version 1
FPORT_CONFIG = 2   # downlink: configuration, format version 1
FPORT_RECEIPT = 3  # downlink: receipt (what the gateway has stored), version 1

# A receipt's bitmap of stored intervals after next_seq: 32 bytes, 256
# intervals (21 h at 5-minute intervals); the frame stays 8 + 42 bytes,
# inside the 51 bytes of the slowest EU868 data rate.
MAX_RECEIPT_BITMAP = 32

TAG_LEN = 8        # HMAC 256/64
MAX_FRAME = 242    # largest LoRaWAN application payload (EU868 DR4-7)

# Dwell-time histogram edges in seconds; the last bin is open-ended.
DWELL_EDGES_S = (0, 5, 15, 60, 300, 900, 3600)
# Standing-height class edges in millimetres: child below 1.40 m, adult from.
HEIGHT_EDGES_MM = (0, 1400)

# Health bits, in bit order. Bit 6 (time_lost) is folded into age_s = None.
HEALTH_FLAGS = (
    "sensor_silent", "sensor_blocked", "modem_trouble", "config_rejected",
    "queue_merged", "sensor_restarted", "time_lost",
)
TIME_LOST_BIT = 6

# reset_cause codes; 0 means no restart since the last report.
RESET_CAUSES = {1: "power_on", 2: "hard", 3: "watchdog", 4: "deep_sleep", 5: "soft"}

SENSOR_MODES = {1: "radar_multi", 2: "radar_single", 3: "tof_8x8", 4: "tof_4x4"}

MAX_ZONES = 8
MAX_LINES = 4


class PayloadError(ValueError):
    """A frame or a message that does not follow the contract.

    `reason` is the human-readable explanation; every codec of the
    contract (Python, MicroPython, JavaScript) uses the same wording.
    """

    def __init__(self, reason):
        ValueError.__init__(self, reason)
        self.reason = reason
