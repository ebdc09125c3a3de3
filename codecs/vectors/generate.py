"""Write the contract's test vectors (uplink.json, downlink.json).

    python codecs/vectors/generate.py          # rewrite the files
    python codecs/vectors/generate.py --check  # fail if they would change

Valid vectors are encoded by the reference codec; invalid ones are built
byte by byte, each with one fault, and carry a correct tag so that a codec
reaches the fault. Every codec (Python, MicroPython, JavaScript) must give
exactly the recorded output. The shape follows The Things Network device
repository's codec examples: {description, input: {fPort, bytes}, output}.
"""
import json
import os
import sys

import cbor2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import vistelse_codec as vc  # noqa: E402
from vistelse_codec.tag import compute_tag  # noqa: E402

DEV_EUI = bytes.fromhex("70b3d57ed0000001")
TAG_KEY = bytes(range(32))
VARIABLES = {"devEui": DEV_EUI.hex(), "tagKey": TAG_KEY.hex()}
HIST = [20, 10, 5, 3, 1, 1, 0]


def zone(visits, person_s, max_occ, counts):
    return {"visits": visits, "person_s": person_s, "max_occupancy": max_occ,
            "dwell_hist": {"counts": counts} if counts else None}


def line(n_in, n_out, total_in, total_out):
    return {"in": n_in, "out": n_out, "total_in": total_in, "total_out": total_out}


def report(seq=1000, interval_s=300, age_s=2, battery=3300, health=(), cfg=3, reset=None, intervals=()):
    return {"seq": seq, "interval_s": interval_s, "age_s": age_s,
            "status": {"battery_mv": battery, "health": list(health), "config_version": cfg,
                       "reset_cause": reset},
            "intervals": list(intervals)}


def one_zone_one_line(**kw):
    return report(intervals=[{"zones": [zone(40, 2000, 6, HIST)], "lines": [line(20, 18, 1234, 1200)]}], **kw)


def frame(message, fport):
    return compute_tag(message, DEV_EUI, fport, TAG_KEY) + message


def vec(description, fport, data_bytes, output, roundtrip=True):
    v = {"description": description,
         "input": {"fPort": fport, "bytes": list(data_bytes), "variables": VARIABLES},
         "output": output}
    if not roundtrip:
        v["roundtrip"] = False  # decodes, but an encoder writes different bytes
    return v


def valid_up(description, rep):
    data = vc.encode_uplink(rep, dev_eui=DEV_EUI, key=TAG_KEY)
    out = vc.decode_uplink(data, 1, dev_eui=DEV_EUI, key=TAG_KEY)
    return vec(description + " (%d bytes)" % len(data), 1, data, {"data": out})


def raw_up(description, wire_bytes, roundtrip=True, fport=1):
    data = frame(wire_bytes, fport)
    try:
        out = {"data": vc.decode_uplink(data, fport, dev_eui=DEV_EUI, key=TAG_KEY)}
    except vc.PayloadError as exc:
        out = {"errors": [exc.reason]}
    return vec(description, fport, data, out, roundtrip)


def plain_wire():
    return [1000, 300, 2, [3300, 0, 3, 0], [1234, 1200], [[[[40, 2000, 6, HIST]], [20, 18]]]]


def uplinks():
    d = cbor2.dumps
    good = d(plain_wire(), canonical=True)
    v = [
        valid_up("one zone, one line, full dwell histogram, status", one_zone_one_line()),
        valid_up("first report after a watchdog reset: reset cause sent once",
                 one_zone_one_line(reset="watchdog")),
        valid_up("counting line only, totals and period counts (compare Milesight VS133)",
                 report(intervals=[{"zones": [], "lines": [line(20, 18, 1234, 1200)]}])),
        valid_up("four zones with dwell histograms, no lines",
                 report(intervals=[{"zones": [zone(12, 900, 3, [5, 4, 2, 1, 0, 0, 0]),
                                              zone(7, 2400, 4, [1, 1, 2, 2, 1, 0, 0]),
                                              zone(30, 400, 5, [25, 3, 1, 0, 0, 0, 0]),
                                              zone(9, 3100, 6, [0, 1, 2, 3, 2, 1, 0])],
                                    "lines": []}])),
        valid_up("batch of four intervals at a low data rate, totals sent once",
                 report(seq=65534, interval_s=300, age_s=1, intervals=[
                     {"zones": [zone(8, 700, 3, [4, 2, 1, 1, 0, 0, 0])], "lines": [line(5, 3, 65533, 40)]},
                     {"zones": [zone(11, 950, 4, [6, 3, 1, 1, 0, 0, 0])], "lines": [line(6, 4, 3, 44)]},
                     {"zones": [zone(3, 120, 2, None)], "lines": [line(2, 1, 5, 45)]},
                     {"zones": [zone(15, 1800, 5, [9, 3, 2, 1, 0, 0, 0])], "lines": [line(9, 7, 14, 52)]}])),
        valid_up("no visit ended in the record: empty dwell histogram",
                 report(intervals=[{"zones": [zone(3, 95, 2, None)], "lines": [line(2, 1, 10, 9)]}])),
        valid_up("overhead ToF: height classes, none sent in the second record",
                 report(interval_s=60, intervals=[
                     {"zones": [zone(14, 40, 3, [13, 1, 0, 0, 0, 0, 0])], "lines": [line(8, 6, 108, 96)],
                      "height_classes": {"counts": [3, 11]}},
                     {"zones": [zone(2, 6, 1, None)], "lines": [line(1, 1, 109, 97)],
                      "height_classes": None}])),
        valid_up("quiet hours: 24 intervals merged until the record describes 5 people",
                 report(interval_s=300, intervals=[
                     {"span": 24, "zones": [zone(6, 2150, 2, [2, 1, 1, 0, 1, 0, 1])],
                      "lines": [line(3, 2, 412, 398)]}])),
        valid_up("queue overflow: three intervals merged into one record",
                 report(health=["queue_merged"], intervals=[
                     {"span": 3, "zones": [zone(60, 5400, 7, [30, 15, 8, 4, 2, 1, 0])],
                      "lines": [line(31, 29, 2000, 1990)]},
                     {"zones": [zone(18, 1500, 5, [9, 5, 2, 1, 1, 0, 0])], "lines": [line(9, 8, 2009, 1998)]}])),
        valid_up("after a restart: age unknown, sensor and modem trouble flagged",
                 report(age_s=None, health=["sensor_silent", "modem_trouble", "sensor_restarted"],
                        reset="power_on",
                        intervals=[{"zones": [zone(0, 0, 0, None)], "lines": [line(0, 0, 77, 70)]}])),
        valid_up("configuration rejected: the version in force is unchanged",
                 one_zone_one_line(health=["config_rejected"], cfg=4)),
        valid_up("largest values of every field",
                 report(seq=65535, interval_s=86400, age_s=4294967295, battery=65535, cfg=65535,
                        reset="soft", health=["sensor_silent", "sensor_blocked", "modem_trouble",
                                              "config_rejected", "queue_merged", "sensor_restarted"],
                        intervals=[{"zones": [zone(65535, 4294967295, 255, [65535] * 7)],
                                    "lines": [line(65535, 65535, 65535, 65535)]}])),
        valid_up("heartbeat: no zones, no lines, mains powered",
                 report(battery=0, intervals=[{"zones": [], "lines": []}])),
        raw_up("unknown extension key is ignored",
               d(plain_wire() + [{9: "later"}], canonical=True), roundtrip=False),
        raw_up("unknown health bit and reset cause are reported, not rejected",
               d([1000, 300, 2, [3300, 1 << 9, 3, 9], [], [[[], []]]], canonical=True), roundtrip=False),
        # invalid
        raw_up("truncated: last byte missing", good[:-1]),
        raw_up("trailing byte after the message", good + b"\x00"),
        raw_up("indefinite-length array", b"\x9f" + good[1:] + b"\xff"),
        raw_up("duplicate key in the extension map",
               d(plain_wire(), canonical=True)[:0] + b"\x87" + good[1:] + b"\xa2\x00\x81\x01\x00\x81\x01"),
        raw_up("text where seq should be", d(["1000"] + plain_wire()[1:], canonical=True)),
        raw_up("floating-point person-seconds",
               good.replace(bytes.fromhex("1907d0"), bytes.fromhex("f967d0"))),
        raw_up("CBOR tag around the report", b"\xc1" + good),
        raw_up("non-shortest integer head", good.replace(bytes.fromhex("0687"), bytes.fromhex("180687"), 1)),
        raw_up("interval of 30 s (below 60 s)", d([1000, 30] + plain_wire()[2:], canonical=True)),
        raw_up("max_occupancy 256 out of range",
               d([1000, 300, 2, [3300, 0, 3, 0], [1234, 1200], [[[[40, 2000, 256, HIST]], [20, 18]]]], canonical=True)),
        raw_up("dwell histogram with 5 counts",
               d([1000, 300, 2, [3300, 0, 3, 0], [1234, 1200], [[[[40, 2000, 6, HIST[:5]]], [20, 18]]]], canonical=True)),
        raw_up("line counts do not match the totals",
               d([1000, 300, 2, [3300, 0, 3, 0], [1234, 1200], [[[[40, 2000, 6, HIST]], [20]]]], canonical=True)),
        raw_up("intervals with different numbers of zones",
               d([1000, 300, 2, [3300, 0, 3, 0], [], [[[[1, 2, 1, []]], []], [[], []]]], canonical=True)),
        raw_up("status with 3 items", d([1000, 300, 2, [3300, 0, 3], [], [[[], []]]], canonical=True)),
        raw_up("no intervals", d([1000, 300, 2, [3300, 0, 3, 0], [], []], canonical=True)),
        raw_up("text key in the extension map", d(plain_wire() + [{"a": 1}], canonical=True)),
        raw_up("age given although time_lost is set",
               d([1000, 300, 5, [3300, 64, 3, 0], [], [[[], []]]], canonical=True)),
        raw_up("report is a map, not an array", d({0: 1}, canonical=True)),
        raw_up("unknown format version (fPort 3)", good, fport=3),
    ]
    bad_tag = bytearray(frame(good, 1))
    bad_tag[0] ^= 0x01
    v.append(vec("authenticity tag altered by one bit", 1, bytes(bad_tag),
                 {"errors": ["authenticity tag does not match"]}))
    v.append(vec("payload altered after tagging (count changed)", 1,
                 frame(good, 1)[:-1] + b"\x13", {"errors": ["authenticity tag does not match"]}))
    v.append(vec("too short for a tag and a message", 1, bytes(5),
                 {"errors": ["frame too short: 5 bytes, a tag (8) and a message are needed"]}))
    over = frame(bytes([0x59, 0x00, 0xea]) + bytes(234), 1)
    v.append(vec("oversize: 245 bytes", 1, over,
                 {"errors": ["frame is 245 bytes; the largest LoRaWAN payload is 242"]}))
    return v


def valid_down(description, config, fport=2):
    data = vc.encode_downlink(config, dev_eui=DEV_EUI, key=TAG_KEY)
    out = vc.decode_downlink(data, fport, dev_eui=DEV_EUI, key=TAG_KEY)
    return vec(description + " (%d bytes)" % len(data), fport, data, {"data": out})


def raw_down(description, wire_bytes, roundtrip=True, fport=2):
    data = frame(wire_bytes, fport)
    try:
        out = {"data": vc.decode_downlink(data, fport, dev_eui=DEV_EUI, key=TAG_KEY)}
    except vc.PayloadError as exc:
        out = {"errors": [exc.reason]}
    return vec(description, fport, data, out, roundtrip)


def downlinks():
    d = cbor2.dumps
    return [
        valid_down("interval only: 600 s", {"config_version": 2, "interval_s": 600}),
        valid_down("one zone as a polygon", {"config_version": 3, "zones": [
            {"index": 0, "polygon_mm": [[-2000, 500], [2000, 500], [2000, 5000], [-2000, 5000]]}]}),
        valid_down("one counting line and the suppression threshold", {"config_version": 4, "lines": [
            {"index": 0, "a_mm": [-1500, 3000], "b_mm": [1500, 3000]}], "min_count": 5}),
        valid_down("delete zone 1 and line 0", {"config_version": 5, "zones": [{"index": 1, "delete": True}],
                                                "lines": [{"index": 0, "delete": True}]}),
        valid_down("sensor mode and still-person hold time",
                   {"config_version": 6, "sensor_mode": "tof_8x8", "still_hold_s": 120}),
        valid_down("ToF orientation: a quarter turn, columns mirrored",
                   {"config_version": 10, "orientation": {"rotate": 1, "mirror": True}}),
        valid_down("ToF orientation back to the mount as recorded",
                   {"config_version": 11, "orientation": {"rotate": 0, "mirror": False}}),
        raw_down("unknown key is ignored", d({1: 7, 2: 300, 20: [1, 2]}, canonical=True), roundtrip=False),
        raw_down("interval of 5 (minutes meant?) rejected", d({1: 8, 2: 5}, canonical=True)),
        raw_down("config_version missing", d({2: 300}, canonical=True)),
        raw_down("config_version 0 is the factory default, not a downlink", d({1: 0}, canonical=True)),
        raw_down("polygon with two vertices", d({1: 9, 3: {0: [0, 0, 1000, 0]}}, canonical=True)),
        raw_down("odd number of coordinates", d({1: 9, 3: {0: [0, 0, 1000, 0, 1000, 1000, 5]}}, canonical=True)),
        raw_down("zone index 9 (0..7 allowed)", d({1: 9, 3: {9: None}}, canonical=True)),
        raw_down("coordinate beyond 32767 mm", d({1: 9, 4: {0: [0, 0, 40000, 0]}}, canonical=True)),
        raw_down("unknown sensor mode", d({1: 9, 6: 7}, canonical=True)),
        raw_down("orientation 8 (0..7: quarter turns + 4 if mirrored)", d({1: 9, 8: 8}, canonical=True)),
        raw_down("orientation as a map", d({1: 9, 8: {0: 1}}, canonical=True)),
        raw_down("configuration is an array", d([1, 300], canonical=True)),
        raw_down("duplicate key", b"\xa2\x01\x01\x01\x02"),
        raw_down("uplink port is not a configuration", d({1: 2, 2: 600}, canonical=True), fport=1),
        vec("authenticity tag altered (forged configuration)", 2,
            bytes([frame(d({1: 2, 2: 600}, canonical=True), 2)[0] ^ 0x80]) +
            frame(d({1: 2, 2: 600}, canonical=True), 2)[1:],
            {"errors": ["authenticity tag does not match"]}),
    ] + receipts()


def receipts():
    d = cbor2.dumps
    return [
        valid_down("receipt: everything before 1000 stored, nothing after",
                   {"receipt": 1, "next_seq": 1000, "stored_seq": []}, 3),
        valid_down("receipt: 1000 and 1002 missing, 1001 and 1003 to 1010 stored",
                   {"receipt": 2, "next_seq": 1000, "stored_seq": [1001] + list(range(1003, 1011))}, 3),
        valid_down("receipt across the sequence wrap, a 6-hour outage (72 intervals) missing",
                   {"receipt": 40, "next_seq": 65500, "stored_seq": list(range(36, 60))}, 3),
        valid_down("receipt: largest bitmap, 256 intervals after next_seq",
                   {"receipt": 4294967295, "next_seq": 0, "stored_seq": list(range(1, 257))}, 3),
        raw_down("receipt number 0 (numbers start at 1)", d([0, 1000, b""], canonical=True), fport=3),
        raw_down("receipt with 2 items", d([5, 1000], canonical=True), fport=3),
        raw_down("receipt bitmap of 33 bytes", d([5, 1000, b"\x01" * 33], canonical=True), fport=3),
        raw_down("receipt bitmap ends with a zero byte", d([5, 1000, b"\x01\x00"], canonical=True), fport=3),
        raw_down("receipt bitmap as an array, not a byte string", d([5, 1000, [1]], canonical=True), fport=3),
        raw_down("receipt next_seq beyond 65535", d([5, 65536, b""], canonical=True), fport=3),
        raw_down("receipt as a map", d({1: 5}, canonical=True), fport=3),
        vec("receipt tag altered (forged receipt would free the node's queue)", 3,
            bytes([frame(d([6, 1000, b""], canonical=True), 3)[0] ^ 0x01]) +
            frame(d([6, 1000, b""], canonical=True), 3)[1:],
            {"errors": ["authenticity tag does not match"]}),
        vec("receipt tagged for fPort 2, sent on fPort 3 (moved frame)", 3,
            frame(d([6, 1000, b""], canonical=True), 2), {"errors": ["authenticity tag does not match"]}),
    ]


def main(argv):
    outputs = {"uplink.json": uplinks(), "downlink.json": downlinks()}
    changed = []
    for name, vectors in outputs.items():
        text = json.dumps(vectors, indent=1) + "\n"
        path = os.path.join(HERE, name)
        old = open(path).read() if os.path.exists(path) else None
        if old != text:
            changed.append(name)
            if "--check" not in argv:
                with open(path, "w") as f:
                    f.write(text)
    if "--check" in argv and changed:
        print("vectors out of date: %s (run codecs/vectors/generate.py)" % ", ".join(changed))
        return 1
    for name, vectors in outputs.items():
        print("%s: %d vectors" % (name, len(vectors)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
