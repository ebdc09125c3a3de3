"""Sensor recordings, truth and prediction files (recording format v1).

The format is a contract: recordings/recording-format.md. Readers are
strict and say which line is wrong; writers produce exactly the format, so
a file written by `vistelse record` reads back with `read_recording`.

    header, frames = read_recording("site.rec.jsonl.gz")
    for frame in frames: ...            # dicts, in file order
"""
import gzip
import json
import math

SENSORS = ("ld2450", "vl53l5cx")
LD2450_FRAME_HEX = 60          # 30 bytes: aa ff 03 00, 3 x 8-byte targets, 55 cc


class RecordingError(ValueError):
    """A file that does not follow the recording format; says where."""


def _open_text(path, mode):
    if str(path).endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def _point(value, where):
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in value)):
        raise RecordingError("%s must be [x, y] in millimetres" % where)
    return value


def check_header(header, where="line 1"):
    """Validate a recording header; return it."""
    if not isinstance(header, dict):
        raise RecordingError("%s: the header must be a JSON object" % where)
    if header.get("format") != "vistelse-recording":
        raise RecordingError("%s: format must be \"vistelse-recording\"" % where)
    if header.get("version") != 1:
        raise RecordingError("%s: version %r is not supported (this reader knows version 1)"
                             % (where, header.get("version")))
    sensor = header.get("sensor")
    if sensor not in SENSORS:
        raise RecordingError("%s: sensor must be one of %s" % (where, ", ".join(SENSORS)))
    rate = header.get("rate_hz")
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate <= 0:
        raise RecordingError("%s: rate_hz must be a positive number" % where)
    mount = header.get("mount")
    if not isinstance(mount, dict) or not isinstance(mount.get("height_mm"), (int, float)) or mount["height_mm"] <= 0:
        raise RecordingError("%s: mount.height_mm must be a positive number" % where)
    if sensor == "vl53l5cx":
        if mount.get("resolution") not in (4, 8):
            raise RecordingError("%s: mount.resolution must be 4 or 8 for vl53l5cx" % where)
        fov = mount.get("fov_deg")
        if not isinstance(fov, (int, float)) or not 0 < fov < 180:
            raise RecordingError("%s: mount.fov_deg must be an angle in degrees for vl53l5cx" % where)
    for key in ("zones", "lines"):
        if not isinstance(header.get(key), list):
            raise RecordingError("%s: %s must be a list (it may be empty)" % (where, key))
    ids = set()
    for i, zone in enumerate(header["zones"]):
        at = "%s: zones[%d]" % (where, i)
        if not isinstance(zone, dict) or not isinstance(zone.get("id"), str):
            raise RecordingError("%s needs an id" % at)
        poly = zone.get("polygon_mm")
        if not isinstance(poly, list) or len(poly) < 3:
            raise RecordingError("%s.polygon_mm must have at least 3 points" % at)
        for k, p in enumerate(poly):
            _point(p, "%s.polygon_mm[%d]" % (at, k))
        ids.add(zone["id"])
    for i, line in enumerate(header["lines"]):
        at = "%s: lines[%d]" % (where, i)
        if not isinstance(line, dict) or not isinstance(line.get("id"), str):
            raise RecordingError("%s needs an id" % at)
        _point(line.get("a_mm"), at + ".a_mm")
        _point(line.get("b_mm"), at + ".b_mm")
        if line["a_mm"] == line["b_mm"]:
            raise RecordingError("%s: a_mm and b_mm must differ" % at)
    interval = header.get("interval_s")
    if not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval <= 0:
        raise RecordingError("%s: interval_s must be a positive number of seconds" % where)
    return header


def check_frame(frame, header, where, last_t):
    if not isinstance(frame, dict):
        raise RecordingError("%s: a frame must be a JSON object" % where)
    t = frame.get("t_ms")
    if not isinstance(t, int) or isinstance(t, bool) or t < 0:
        raise RecordingError("%s: t_ms must be a non-negative integer" % where)
    if last_t is not None and t < last_t:
        raise RecordingError("%s: t_ms %d goes back in time (previous %d)" % (where, t, last_t))
    if header["sensor"] == "ld2450":
        raw = frame.get("raw")
        if (not isinstance(raw, str) or len(raw) != LD2450_FRAME_HEX
                or raw.lower() != raw or any(c not in "0123456789abcdef" for c in raw)):
            raise RecordingError("%s: raw must be the 30-byte frame as 60 lower-case hex digits" % where)
    else:
        n = header["mount"]["resolution"] ** 2
        for key in ("mm", "status"):
            values = frame.get(key)
            if (not isinstance(values, list) or len(values) != n
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)):
                raise RecordingError("%s: %s must be a list of %d integers" % (where, key, n))
    return t


def read_recording(path):
    """(header, frames): the header dict and an iterator over frame dicts.

    The frames are read lazily; an error in a frame is raised when the
    iteration reaches it.
    """
    f = _open_text(path, "r")
    first = f.readline()
    try:
        header = check_header(json.loads(first))
    except json.JSONDecodeError as exc:
        f.close()
        raise RecordingError("%s line 1: not JSON (%s)" % (path, exc)) from None
    except RecordingError as exc:
        f.close()
        raise RecordingError("%s %s" % (path, exc)) from None

    def frames():
        last_t = None
        with f:
            for number, line in enumerate(f, start=2):
                if not line.strip():
                    continue
                where = "%s line %d" % (path, number)
                try:
                    frame = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RecordingError("%s: not JSON (%s)" % (where, exc)) from None
                last_t = check_frame(frame, header, where, last_t)
                yield frame

    return header, frames()


class RecordingWriter:
    """Writes a recording: the header line, then one frame per line.

        with RecordingWriter("site.rec.jsonl.gz", header) as rec:
            rec.write_frame({"t_ms": 0, "raw": "aaff03..."})
    """

    def __init__(self, path, header):
        self.header = check_header(dict(header), "header")
        self.path = path
        self._last_t = None
        self._count = 0
        self._f = _open_text(path, "w")
        self._f.write(json.dumps(self.header) + "\n")

    def write_frame(self, frame):
        self._count += 1
        self._last_t = check_frame(frame, self.header, "frame %d" % self._count, self._last_t)
        # Compact separators, as the reference recordings are written.
        self._f.write(json.dumps(frame, separators=(",", ":")) + "\n")

    def close(self):
        if self._f:
            self._f.close()
            self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_truth(path):
    """The truth file (format vistelse-truth or vistelse-prediction) as a dict."""
    with _open_text(path, "r") as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as exc:
            raise RecordingError("%s: not JSON (%s)" % (path, exc)) from None
    if doc.get("format") not in ("vistelse-truth", "vistelse-prediction") or doc.get("version") != 1:
        raise RecordingError("%s: not a version 1 truth or prediction file" % path)
    if not isinstance(doc.get("intervals"), list):
        raise RecordingError("%s: intervals must be a list" % path)
    for i, iv in enumerate(doc["intervals"]):
        if not isinstance(iv, dict) or not isinstance(iv.get("start_ms"), int) or not isinstance(iv.get("end_ms"), int):
            raise RecordingError("%s: intervals[%d] needs integer start_ms and end_ms" % (path, i))
    return doc


def write_prediction(path, intervals):
    """Write a prediction file: the truth schema with format vistelse-prediction.

    One interval per line, as the truth files are laid out.
    """
    lines = [json.dumps(iv) for iv in intervals]
    with _open_text(path, "w") as f:
        f.write('{"format": "vistelse-prediction", "version": 1, "intervals": [\n ')
        f.write(",\n ".join(lines))
        f.write("\n]}\n")


def tof_zone_centres(header):
    """Floor point (x_mm, y_mm) of each ToF zone's centre ray, index = row * R + col."""
    mount = header["mount"]
    r, fov, h = mount["resolution"], mount["fov_deg"], mount["height_mm"]
    centres = []
    for row in range(r):
        ay = math.radians((row + 0.5 - r / 2) * fov / r)
        for col in range(r):
            ax = math.radians((col + 0.5 - r / 2) * fov / r)
            centres.append((h * math.tan(ax), h * math.tan(ay)))
    return centres
