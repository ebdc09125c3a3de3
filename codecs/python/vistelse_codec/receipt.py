"""Receipt downlink (fPort 3): what the gateway has stored, wire <-> decoded.

Wire: [number, next_seq, stored]. Every interval before next_seq (modulo
2^16, counted back over the node's own sent intervals) is stored and
next_seq itself is not; bit k of `stored` (byte k // 8, least significant
bit first) says interval next_seq + 1 + k is stored. An empty `stored`
means nothing after next_seq is known. `number` counts the device's
receipts upwards: a node ignores a receipt whose number is not above the
last it accepted, so a replayed receipt changes nothing.
"""
from .contract import FPORT_RECEIPT, MAX_RECEIPT_BITMAP, PayloadError
from .wire import open_frame, seal, uint

U16 = 0xFFFF


def receipt_from_wire(wire):
    if type(wire) is not list or len(wire) != 3:
        raise PayloadError("receipt must be an array of 3 items")
    number = uint(wire[0], "receipt number", 1, 0xFFFFFFFF)
    next_seq = uint(wire[1], "next_seq", 0, U16)
    bitmap = wire[2]
    if type(bitmap) is not bytes or len(bitmap) > MAX_RECEIPT_BITMAP:
        raise PayloadError("stored must be a byte string of at most %d bytes" % MAX_RECEIPT_BITMAP)
    if bitmap and bitmap[-1] == 0:
        raise PayloadError("stored must not end with a zero byte")
    stored = [(next_seq + 1 + k) & U16 for k in range(8 * len(bitmap)) if bitmap[k >> 3] >> (k & 7) & 1]
    return {"receipt": number, "next_seq": next_seq, "stored_seq": stored}


def receipt_to_wire(data):
    if not isinstance(data, dict) or "receipt" not in data or "next_seq" not in data:
        raise PayloadError("a receipt needs receipt, next_seq and stored_seq")
    next_seq = uint(data["next_seq"], "next_seq", 0, U16)
    bitmap = bytearray(MAX_RECEIPT_BITMAP)
    top = -1
    for seq in data.get("stored_seq") or []:
        k = (uint(seq, "stored_seq", 0, U16) - next_seq - 1) & U16
        if k >= 8 * MAX_RECEIPT_BITMAP:
            raise PayloadError("stored_seq must lie within %d intervals after next_seq" % (8 * MAX_RECEIPT_BITMAP))
        bitmap[k >> 3] |= 1 << (k & 7)
        top = max(top, k)
    return [data["receipt"], next_seq, bytes(bitmap[:top // 8 + 1] if top >= 0 else b"")]


def decode_receipt(frame, fport, *, dev_eui=None, key=None):
    return open_frame(frame, fport, FPORT_RECEIPT, "receipt", dev_eui, key, receipt_from_wire)


def encode_receipt(data, *, dev_eui, key):
    return seal(receipt_to_wire(data), receipt_from_wire, dev_eui, FPORT_RECEIPT, key)
