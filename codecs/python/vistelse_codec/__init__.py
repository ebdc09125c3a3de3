"""Vistelse payload contract v1: strict codec for reports and configuration.

    >>> frame = encode_uplink(report, dev_eui=eui, key=key)      # fPort 1
    >>> decode_uplink(frame, 1, dev_eui=eui, key=key)["intervals"][0]["zones"]

Every failure raises PayloadError with a reason a person can read.
The specification is ../../vistelse.cddl; field tables are in docs/payload.md.
"""
from .contract import (
    DWELL_EDGES_S,
    FPORT_CONFIG,
    FPORT_RECEIPT,
    FPORT_REPORT,
    MAX_RECEIPT_BITMAP,
    HEALTH_FLAGS,
    HEIGHT_EDGES_MM,
    MAX_FRAME,
    RESET_CAUSES,
    SENSOR_MODES,
    TAG_LEN,
    PayloadError,
)
from .tag import compute_tag
from .report import decode_uplink, encode_uplink
from .config import decode_downlink, encode_downlink
from .receipt import decode_receipt, encode_receipt

__all__ = [
    "DWELL_EDGES_S", "FPORT_CONFIG", "FPORT_RECEIPT", "MAX_RECEIPT_BITMAP", "FPORT_REPORT", "HEALTH_FLAGS",
    "HEIGHT_EDGES_MM", "MAX_FRAME", "RESET_CAUSES", "SENSOR_MODES", "TAG_LEN",
    "PayloadError", "compute_tag", "decode_uplink", "encode_uplink",
    "decode_downlink", "encode_downlink", "decode_receipt", "encode_receipt",
]
