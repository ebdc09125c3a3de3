// Vistelse payload contract v1: LoRa Alliance TS013 codec (ES5.1).
//
// For ChirpStack v4 device profiles (QuickJS) and The Things Stack
// (The Things Network device repository). Self-contained: neither network
// server ships a CBOR library, so a small strict decoder is included.
//
//   decodeUplink({bytes, fPort, variables?})    fPort 1: report
//   decodeDownlink({bytes, fPort, variables?})  fPort 2: configuration
//   encodeDownlink({data, variables})           -> fPort 2 frame
//
// Frames are tag (8 bytes) || deterministic CBOR. With the device variables
// `devEui` and `tagKey` the HMAC-SHA-256/64 tag is verified; without them it
// is not (the Vistelse gateway verifies it: giving the tag key to the network
// server defeats its purpose). Reasons for rejection are word for word those
// of the reference codec (codecs/python). Specification: codecs/vistelse.cddl.

var FPORT_REPORT = 1;
var FPORT_CONFIG = 2;
var FPORT_RECEIPT = 3;
var MAX_RECEIPT_BITMAP = 32;
var TAG_LEN = 8;
var MAX_FRAME = 242;
var U16 = 65535;
var U32 = 4294967295;
var DWELL_EDGES_S = [0, 5, 15, 60, 300, 900, 3600];
var HEIGHT_EDGES_MM = [0, 1400];
var HEALTH_FLAGS = ["sensor_silent", "sensor_blocked", "modem_trouble", "config_rejected",
  "queue_merged", "sensor_restarted", "time_lost"];
var TIME_LOST_BIT = 6;
var RESET_CAUSES = [null, "power_on", "hard", "watchdog", "deep_sleep", "soft"];
var SENSOR_MODES = [null, "radar_multi", "radar_single", "tof_8x8", "tof_4x4"];
var MAX_ZONES = 8;
var MAX_LINES = 4;
var TRUNCATED = "truncated: the message ends inside a CBOR item";
var NOT_DETERMINISTIC = "CBOR is not in deterministic encoding (shortest form, sorted keys)";

function PayloadError(reason) { this.reason = reason; }

function fail(reason) { throw new PayloadError(reason); }

function fmt(template) {
  // "%s" and "%d" placeholders, as in the reference codec's messages
  var args = arguments, i = 1;
  return template.replace(/%[sd]/g, function () { return String(args[i++]); });
}

// --- SHA-256 and HMAC ---------------------------------------------------------

var K256 = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2];

function sha256(bytes) {
  var h = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
  var n = bytes.length, padded = bytes.slice(0), i, j, t;
  padded.push(0x80);
  while (padded.length % 64 !== 56) padded.push(0);
  var bits = n * 8;
  for (i = 7; i >= 0; i--) { padded.push(i >= 4 ? 0 : (bits >>> (8 * i)) & 0xff); }
  // lengths above 2^32 bits do not occur here (frames are at most 242 bytes)
  var w = new Array(64);
  for (var block = 0; block < padded.length; block += 64) {
    for (i = 0; i < 16; i++) {
      j = block + 4 * i;
      w[i] = ((padded[j] << 24) | (padded[j + 1] << 16) | (padded[j + 2] << 8) | padded[j + 3]) >>> 0;
    }
    for (i = 16; i < 64; i++) {
      var x = w[i - 15], y = w[i - 2];
      var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (i = 0; i < 64; i++) {
      var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      var ch = (e & f) ^ (~e & g);
      var t1 = (k + S1 + ch + K256[i] + w[i]) >>> 0;
      var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      var maj = (a & b) ^ (a & c) ^ (b & c);
      t = (S0 + maj) >>> 0;
      k = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t) >>> 0;
    }
    h[0] = (h[0] + a) >>> 0; h[1] = (h[1] + b) >>> 0; h[2] = (h[2] + c) >>> 0; h[3] = (h[3] + d) >>> 0;
    h[4] = (h[4] + e) >>> 0; h[5] = (h[5] + f) >>> 0; h[6] = (h[6] + g) >>> 0; h[7] = (h[7] + k) >>> 0;
  }
  var out = [];
  for (i = 0; i < 8; i++) out.push((h[i] >>> 24) & 0xff, (h[i] >>> 16) & 0xff, (h[i] >>> 8) & 0xff, h[i] & 0xff);
  return out;
}

function hmacSha256(key, message) {
  var k = key.length > 64 ? sha256(key) : key.slice(0), inner = [], outer = [], i;
  while (k.length < 64) k.push(0);
  for (i = 0; i < 64; i++) { inner.push(k[i] ^ 0x36); outer.push(k[i] ^ 0x5c); }
  return sha256(outer.concat(sha256(inner.concat(message))));
}

function bstrHead(n) { return n < 24 ? [0x40 | n] : n < 256 ? [0x58, n] : [0x59, n >> 8, n & 0xff]; }

function computeTag(message, devEui, fPort, key) {
  // COSE MAC_structure ["MAC0", h'a10104', DevEUI || fPort, message]
  var aad = devEui.concat([fPort]);
  var structure = [0x84, 0x64, 0x4d, 0x41, 0x43, 0x30, 0x43, 0xa1, 0x01, 0x04]
    .concat(bstrHead(aad.length), aad, bstrHead(message.length), message);
  return hmacSha256(key, structure).slice(0, TAG_LEN);
}

function fromHex(text, bytes, what) {
  if (typeof text !== "string" || text.length !== 2 * bytes || !/^[0-9a-fA-F]*$/.test(text)) {
    fail(fmt("%s must be %d hex digits", what, 2 * bytes));
  }
  var out = [];
  for (var i = 0; i < text.length; i += 2) out.push(parseInt(text.substr(i, 2), 16));
  return out;
}

function toHex(bytes) {
  var s = "";
  for (var i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
  return s;
}

function credentials(variables) {
  if (!variables || !variables.tagKey || !variables.devEui) return null;
  return { key: fromHex(variables.tagKey, 32, "tagKey"), devEui: fromHex(variables.devEui, 8, "devEui") };
}

function splitFrame(bytes, fPort, expected, kind, variables) {
  if (fPort !== expected) fail(fmt("fPort %d carries no Vistelse %s (version 1 uses fPort %d)", fPort, kind, expected));
  if (bytes.length > MAX_FRAME) fail(fmt("frame is %d bytes; the largest LoRaWAN payload is %d", bytes.length, MAX_FRAME));
  if (bytes.length <= TAG_LEN) fail(fmt("frame too short: %d bytes, a tag (8) and a message are needed", bytes.length));
  var tag = bytes.slice(0, TAG_LEN), message = bytes.slice(TAG_LEN), cred = credentials(variables);
  if (cred) {
    var want = computeTag(message, cred.devEui, fPort, cred.key), diff = 0;
    for (var i = 0; i < TAG_LEN; i++) diff |= want[i] ^ tag[i];
    if (diff !== 0) fail("authenticity tag does not match");
  }
  return { tag: tag, message: message };
}

// --- strict CBOR decoder -------------------------------------------------------
// The reference codec's order: every head in document order, then trailing
// bytes, then duplicate keys, then integer keys, then key order.

function CborMap(pairs) { this.pairs = pairs; }
function CborBytes(bytes) { this.bytes = bytes; }

function readArg(msg, pos, info) {
  if (info < 24) return { value: info, pos: pos };
  if (info > 27) fail("malformed CBOR");
  var size = Math.pow(2, info - 24), value = 0;
  if (pos + size > msg.length) fail(TRUNCATED);
  for (var i = 0; i < size; i++) value = value * 256 + msg[pos + i];
  if (value < (size === 1 ? 24 : Math.pow(2, 4 * size))) fail(NOT_DETERMINISTIC);
  return { value: value, pos: pos + size };
}

function scan(msg, pos, depth) {
  if (depth > 16) fail("CBOR nested too deeply");
  if (pos >= msg.length) fail(TRUNCATED);
  var major = msg[pos] >> 5, info = msg[pos] & 31, i;
  pos += 1;
  if (info === 31) fail("indefinite-length CBOR items are not allowed");
  if (major === 7) {
    if (info === 25 || info === 26 || info === 27) fail("floating-point numbers are not allowed");
    if (info !== 22) fail("simple values other than null are not allowed");
    return pos;
  }
  if (major === 6) fail("CBOR tags are not allowed");
  var arg = readArg(msg, pos, info);
  pos = arg.pos;
  if (major === 2 || major === 3) {
    if (pos + arg.value > msg.length) fail(TRUNCATED);
    return pos + arg.value;
  }
  if (major === 4) for (i = 0; i < arg.value; i++) pos = scan(msg, pos, depth + 1);
  if (major === 5) for (i = 0; i < 2 * arg.value; i++) pos = scan(msg, pos, depth + 1);
  return pos;
}

function utf8(bytes) {
  var out = "", i = 0, c, n, cp;
  while (i < bytes.length) {
    c = bytes[i++];
    if (c < 0x80) { out += String.fromCharCode(c); continue; }
    if (c >= 0xc2 && c < 0xe0) { n = 1; cp = c & 0x1f; }
    else if (c >= 0xe0 && c < 0xf0) { n = 2; cp = c & 0x0f; }
    else if (c >= 0xf0 && c < 0xf5) { n = 3; cp = c & 0x07; }
    else fail("malformed CBOR");
    if (i + n > bytes.length) fail("malformed CBOR");
    for (var k = 0; k < n; k++) {
      if ((bytes[i] & 0xc0) !== 0x80) fail("malformed CBOR");
      cp = cp * 64 + (bytes[i++] & 0x3f);
    }
    if ((n === 2 && cp < 0x800) || (n === 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) fail("malformed CBOR");
    if (cp >= 0x10000) { cp -= 0x10000; out += String.fromCharCode(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff)); }
    else out += String.fromCharCode(cp);
  }
  return out;
}

function keyId(value) {
  // equality of decoded keys, as Python compares them
  if (value === null) return "n";
  if (typeof value === "number") return "i" + value;
  if (typeof value === "string") return "s" + value;
  if (value instanceof CborBytes) return "b" + value.bytes.join(",");
  if (value instanceof CborMap) {
    var parts = [];
    for (var i = 0; i < value.pairs.length; i++) parts.push(keyId(value.pairs[i][0]) + ":" + keyId(value.pairs[i][1]));
    return "m{" + parts.join(",") + "}";
  }
  var items = [];
  for (var j = 0; j < value.length; j++) items.push(keyId(value[j]));
  return "a[" + items.join(",") + "]";
}

function build(msg, pos) {
  var major = msg[pos] >> 5, info = msg[pos] & 31, i;
  if (major === 7) return { value: null, pos: pos + 1 };
  var arg = readArg(msg, pos + 1, info), n = arg.value;
  pos = arg.pos;
  if (major === 0) return { value: n, pos: pos };
  if (major === 1) return { value: -1 - n, pos: pos };
  if (major === 2) return { value: new CborBytes(msg.slice(pos, pos + n)), pos: pos + n };
  if (major === 3) return { value: utf8(msg.slice(pos, pos + n)), pos: pos + n };
  var item, items = [];
  if (major === 4) {
    for (i = 0; i < n; i++) { item = build(msg, pos); items.push(item.value); pos = item.pos; }
    return { value: items, pos: pos };
  }
  var seen = {};
  for (i = 0; i < n; i++) {
    var key = build(msg, pos), id = keyId(key.value);
    if (seen.hasOwnProperty(id)) fail("duplicate map key");
    seen[id] = true;
    item = build(msg, key.pos);
    items.push([key.value, item.value]);
    pos = item.pos;
  }
  return { value: new CborMap(items), pos: pos };
}

function isInt(v) { return typeof v === "number"; }
function isArray(v) { return Object.prototype.toString.call(v) === "[object Array]"; }

function checkKeys(value) {
  var i;
  if (isArray(value)) { for (i = 0; i < value.length; i++) checkKeys(value[i]); }
  else if (value instanceof CborMap) {
    for (i = 0; i < value.pairs.length; i++) {
      if (!isInt(value.pairs[i][0])) fail("map keys must be integers");
      checkKeys(value.pairs[i][1]);
    }
  }
}

function head(major, value) {
  var m = major << 5;
  if (value < 24) return [m | value];
  if (value < 256) return [m | 24, value];
  if (value < 65536) return [m | 25, value >> 8, value & 0xff];
  if (value < 4294967296) return [m | 26, (value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
  var hi = Math.floor(value / 4294967296), lo = value % 4294967296;
  return [m | 27, (hi >>> 24) & 0xff, (hi >>> 16) & 0xff, (hi >>> 8) & 0xff, hi & 0xff,
    (lo >>> 24) & 0xff, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff];
}

function intBytes(k) { return k >= 0 ? head(0, k) : head(1, -1 - k); }

function keyBefore(a, b) {
  // deterministic order: shorter encoding first, then bytewise
  if (a.length !== b.length) return a.length < b.length;
  for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

function checkOrder(value) {
  var i;
  if (isArray(value)) { for (i = 0; i < value.length; i++) checkOrder(value[i]); }
  else if (value instanceof CborMap) {
    for (i = 0; i < value.pairs.length; i++) {
      if (i > 0 && !keyBefore(intBytes(value.pairs[i - 1][0]), intBytes(value.pairs[i][0]))) fail(NOT_DETERMINISTIC);
      checkOrder(value.pairs[i][1]);
    }
  }
}

function loads(msg) {
  var end = scan(msg, 0, 0);
  if (end !== msg.length) fail(fmt("%d trailing bytes after the message", msg.length - end));
  var value = build(msg, 0).value;
  checkKeys(value);
  checkOrder(value);
  return value;
}

function mapGet(map, key) {
  for (var i = 0; i < map.pairs.length; i++) if (map.pairs[i][0] === key) return map.pairs[i][1];
  return undefined;
}

// --- field checks (the reference codec's wording) -----------------------------

function uint(value, name, lo, hi) {
  if (!isInt(value) || value < lo || value > hi) fail(fmt("%s must be an integer from %d to %d", name, lo, hi));
  return value;
}

function array(value, name, lo, hi) {
  if (!isArray(value) || value.length < lo || (hi !== undefined && value.length > hi)) {
    if (hi === undefined) fail(fmt("%s must be an array of at least %d items", name, lo));
    if (lo === hi) fail(fmt("%s must be an array of %d items", name, lo));
    fail(fmt("%s must be an array of %d to %d items", name, lo, hi));
  }
  return value;
}

function counts(value, name, size) {
  if (!isArray(value) || (value.length !== 0 && value.length !== size)) fail(fmt("%s must have 0 or %d counts", name, size));
  for (var k = 0; k < value.length; k++) uint(value[k], fmt("%s[%d]", name, k), 0, U16);
  return value;
}

// --- report (fPort 1) ----------------------------------------------------------

function reportFromWire(wire) {
  var i, j, k;
  array(wire, "report", 6, 7);
  var seq = uint(wire[0], "seq", 0, U16);
  var intervalS = uint(wire[1], "interval_s", 60, 86400);
  var ageS = uint(wire[2], "age_s", 0, U32);
  var status = array(wire[3], "status", 4, 4);
  var batteryMv = uint(status[0], "status.battery_mv", 0, U16);
  var health = uint(status[1], "status.health", 0, U16);
  var configVersion = uint(status[2], "status.config_version", 0, U16);
  var resetCode = uint(status[3], "status.reset_cause", 0, 255);
  var totals = array(wire[4], "totals", 0, 2 * MAX_LINES);
  if (totals.length % 2) fail("totals must have 2 counts (in, out) per line");
  for (k = 0; k < totals.length; k++) uint(totals[k], fmt("totals[%d]", k), 0, U16);
  var nLines = totals.length / 2;
  var records = array(wire[5], "intervals", 1);
  var n = records.length, spans = [], heights = null;
  for (i = 0; i < n; i++) spans.push(1);
  if (wire.length === 7) {
    var ext = wire[6];
    if (!(ext instanceof CborMap)) fail("ext must be a map");
    var extSpans = mapGet(ext, 0), extHeights = mapGet(ext, 1);
    if (extSpans !== undefined) {
      spans = array(extSpans, "spans (ext 0)", n, n);
      for (i = 0; i < n; i++) uint(spans[i], fmt("intervals[%d].span", i), 1, U16);
    }
    if (extHeights !== undefined) {
      heights = array(extHeights, "height classes (ext 1)", n, n);
      for (i = 0; i < n; i++) counts(heights[i], fmt("intervals[%d].height_classes", i), HEIGHT_EDGES_MM.length);
    }
  }
  var timeLost = (health & (1 << TIME_LOST_BIT)) !== 0;
  if (timeLost && ageS) fail("age_s must be 0 when the time_lost flag is set");

  var intervals = [], nZones = null;
  for (i = 0; i < n; i++) {
    var name = fmt("intervals[%d]", i), record = records[i];
    array(record, name, 2, 2);
    var zones = array(record[0], name + ".zones", 0, MAX_ZONES);
    if (nZones === null) nZones = zones.length;
    else if (zones.length !== nZones) fail(fmt("%s has %d zones but intervals[0] has %d", name, zones.length, nZones));
    var lines = record[1];
    if (!isArray(lines) || lines.length !== 2 * nLines) {
      fail(fmt("%s.lines must have 2 counts (in, out) for each of the %d lines in totals", name, nLines));
    }
    var outZones = [];
    for (j = 0; j < zones.length; j++) {
      var zname = fmt("%s.zones[%d]", name, j);
      array(zones[j], zname, 4, 4);
      var dwell = counts(zones[j][3], zname + ".dwell_hist", DWELL_EDGES_S.length);
      outZones.push({
        visits: uint(zones[j][0], zname + ".visits", 0, U16),
        person_s: uint(zones[j][1], zname + ".person_s", 0, U32),
        max_occupancy: uint(zones[j][2], zname + ".max_occupancy", 0, 255),
        dwell_hist: dwell.length ? { edges_s: DWELL_EDGES_S.slice(0), counts: dwell.slice(0) } : null
      });
    }
    var outLines = [];
    for (k = 0; k < nLines; k++) {
      outLines.push({
        "in": uint(lines[2 * k], fmt("%s.lines[%d].in", name, k), 0, U16),
        out: uint(lines[2 * k + 1], fmt("%s.lines[%d].out", name, k), 0, U16)
      });
    }
    var interval = { span: spans[i], duration_s: spans[i] * intervalS, zones: outZones, lines: outLines };
    if (heights !== null) {
      interval.height_classes = heights[i].length ? { edges_mm: HEIGHT_EDGES_MM.slice(0), counts: heights[i].slice(0) } : null;
    }
    intervals.push(interval);
  }
  // sequence numbers forward; totals and ages backward from the last interval
  var nextSeq = seq;
  for (i = 0; i < n; i++) { intervals[i].seq = nextSeq; nextSeq = (nextSeq + intervals[i].span) % 65536; }
  var running = totals.slice(0), endAge = timeLost ? null : ageS;
  for (i = n - 1; i >= 0; i--) {
    for (k = 0; k < nLines; k++) {
      var line = intervals[i].lines[k];
      line.total_in = running[2 * k];
      line.total_out = running[2 * k + 1];
      running[2 * k] = (running[2 * k] - line["in"] + 65536) % 65536;
      running[2 * k + 1] = (running[2 * k + 1] - line.out + 65536) % 65536;
    }
    intervals[i].end_age_s = endAge;
    if (endAge !== null) endAge += intervals[i].duration_s;
  }
  var names = [];
  for (var bit = 0; bit < 16; bit++) {
    if ((health & (1 << bit)) && bit !== TIME_LOST_BIT) names.push(bit < HEALTH_FLAGS.length ? HEALTH_FLAGS[bit] : "bit_" + bit);
  }
  return {
    seq: seq, interval_s: intervalS, age_s: timeLost ? null : ageS,
    status: {
      battery_mv: batteryMv, health: names, config_version: configVersion,
      reset_cause: resetCode === 0 ? null : (resetCode < RESET_CAUSES.length ? RESET_CAUSES[resetCode] : "unknown")
    },
    intervals: intervals
  };
}

// --- configuration (fPort 2) -----------------------------------------------------

function coords(values, name, lo, hi) {
  array(values, name, lo, hi);
  if (values.length % 2) fail(fmt("%s must have an even number of coordinates (x, y pairs)", name));
  var out = [];
  for (var i = 0; i < values.length; i++) uint(values[i], name + " coordinates", -32768, 32767);
  for (var k = 0; k < values.length; k += 2) out.push([values[k], values[k + 1]]);
  return out;
}

function edits(value, name, maxIndex) {
  if (!(value instanceof CborMap) || !value.pairs.length) fail(fmt("%ss must be a non-empty map of index to definition or null", name));
  var out = [];
  for (var i = 0; i < value.pairs.length; i++) out.push([uint(value.pairs[i][0], name + " index", 0, maxIndex - 1), value.pairs[i][1]]);
  out.sort(function (a, b) { return a[0] - b[0]; });
  return out;
}

function configFromWire(wire) {
  var i;
  if (!(wire instanceof CborMap)) fail("configuration must be a map");
  if (mapGet(wire, 1) === undefined) fail("config_version is missing");
  var out = { config_version: uint(mapGet(wire, 1), "config_version", 1, U16) };
  var v = mapGet(wire, 2);
  if (v !== undefined) out.interval_s = uint(v, "interval_s", 60, 86400);
  v = mapGet(wire, 3);
  if (v !== undefined) {
    var zoneEdits = edits(v, "zone", MAX_ZONES);
    out.zones = [];
    for (i = 0; i < zoneEdits.length; i++) {
      var zi = zoneEdits[i][0], poly = zoneEdits[i][1];
      out.zones.push(poly === null ? { index: zi, "delete": true }
        : { index: zi, polygon_mm: coords(poly, fmt("zones[%d]", zi), 6, 16) });
    }
  }
  v = mapGet(wire, 4);
  if (v !== undefined) {
    var lineEdits = edits(v, "line", MAX_LINES);
    out.lines = [];
    for (i = 0; i < lineEdits.length; i++) {
      var li = lineEdits[i][0], seg = lineEdits[i][1];
      if (seg === null) { out.lines.push({ index: li, "delete": true }); continue; }
      var ab = coords(seg, fmt("lines[%d]", li), 4, 4);
      out.lines.push({ index: li, a_mm: ab[0], b_mm: ab[1] });
    }
  }
  v = mapGet(wire, 5);
  if (v !== undefined) out.min_count = uint(v, "min_count", 0, 255);
  v = mapGet(wire, 6);
  if (v !== undefined) out.sensor_mode = SENSOR_MODES[uint(v, "sensor_mode", 1, SENSOR_MODES.length - 1)];
  v = mapGet(wire, 7);
  if (v !== undefined) out.still_hold_s = uint(v, "still_hold_s", 0, 3600);
  v = mapGet(wire, 8);
  if (v !== undefined) {
    // a ToF sensor's mount: quarter turns in bits 0-1, mirrored columns in bit 2
    var orient = uint(v, "orientation", 0, 7);
    out.orientation = { rotate: orient & 3, mirror: (orient & 4) !== 0 };
  }
  return out;
}

function configToWire(data) {
  var i;
  if (!data || typeof data !== "object" || isArray(data)) fail("configuration must be a map");
  if (data.config_version === undefined) fail("config_version is missing");
  var pairs = [[1, data.config_version]];
  if (data.interval_s !== undefined) pairs.push([2, data.interval_s]);
  var lists = [["zones", 3], ["lines", 4]];
  for (var l = 0; l < lists.length; l++) {
    var entries = data[lists[l][0]];
    if (entries === undefined) continue;
    var editPairs = [];
    for (i = 0; i < entries.length; i++) {
      var e = entries[i];
      if (!e || typeof e !== "object" || e.index === undefined) fail(lists[l][0] + " entries need an index");
      var flat = null;
      if (!e["delete"]) {
        var points = lists[l][0] === "zones" ? (e.polygon_mm || []) : [e.a_mm || [], e.b_mm || []];
        flat = [];
        for (var p = 0; p < points.length; p++) flat = flat.concat(points[p]);
      }
      editPairs.push([e.index, flat]);
    }
    pairs.push([lists[l][1], new CborMap(editPairs)]);
  }
  if (data.min_count !== undefined) pairs.push([5, data.min_count]);
  if (data.sensor_mode !== undefined) {
    var code = SENSOR_MODES.indexOf(data.sensor_mode);
    if (code < 1) fail("sensor_mode must be one of " + SENSOR_MODES.slice(1).join(", "));
    pairs.push([6, code]);
  }
  if (data.still_hold_s !== undefined) pairs.push([7, data.still_hold_s]);
  if (data.orientation !== undefined) {
    var o = data.orientation;
    if (!o || typeof o !== "object" || isArray(o) || Object.keys(o).length !== 2
        || [0, 1, 2, 3].indexOf(o.rotate) < 0 || typeof o.mirror !== "boolean") {
      fail("orientation must be {rotate: 0..3, mirror: true or false}");
    }
    pairs.push([8, o.rotate + (o.mirror ? 4 : 0)]);
  }
  return new CborMap(pairs);
}

// --- receipt (fPort 3) ---------------------------------------------------------
// [number, next_seq, stored]: every interval before next_seq is stored and
// next_seq is not; bit k of stored (byte k >> 3, least significant bit
// first) says interval next_seq + 1 + k is stored.

function receiptFromWire(wire) {
  if (!isArray(wire) || wire.length !== 3) fail("receipt must be an array of 3 items");
  var number = uint(wire[0], "receipt number", 1, U32);
  var nextSeq = uint(wire[1], "next_seq", 0, U16);
  var bitmap = wire[2];
  if (!(bitmap instanceof CborBytes) || bitmap.bytes.length > MAX_RECEIPT_BITMAP) {
    fail(fmt("stored must be a byte string of at most %d bytes", MAX_RECEIPT_BITMAP));
  }
  var b = bitmap.bytes, stored = [];
  if (b.length && b[b.length - 1] === 0) fail("stored must not end with a zero byte");
  for (var k = 0; k < 8 * b.length; k++) if ((b[k >> 3] >> (k & 7)) & 1) stored.push((nextSeq + 1 + k) & U16);
  return { receipt: number, next_seq: nextSeq, stored_seq: stored };
}

function receiptToWire(data) {
  if (!data || data.receipt === undefined || data.next_seq === undefined) {
    fail("a receipt needs receipt, next_seq and stored_seq");
  }
  var nextSeq = uint(data.next_seq, "next_seq", 0, U16), bitmap = [], top = -1, seqs = data.stored_seq || [];
  for (var i = 0; i < MAX_RECEIPT_BITMAP; i++) bitmap.push(0);
  for (i = 0; i < seqs.length; i++) {
    var k = (uint(seqs[i], "stored_seq", 0, U16) - nextSeq - 1) & U16;
    if (k >= 8 * MAX_RECEIPT_BITMAP) fail(fmt("stored_seq must lie within %d intervals after next_seq", 8 * MAX_RECEIPT_BITMAP));
    bitmap[k >> 3] |= 1 << (k & 7);
    if (k > top) top = k;
  }
  return [data.receipt, nextSeq, new CborBytes(bitmap.slice(0, top >= 0 ? (top >> 3) + 1 : 0))];
}

function dumps(value) {
  // deterministic encoding of what configToWire and receiptToWire build
  // (ints, arrays, maps, byte strings, null)
  var out = [], i;
  if (value === null) return [0xf6];
  if (value instanceof CborBytes) return head(2, value.bytes.length).concat(value.bytes);
  if (isInt(value)) return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (isArray(value)) {
    out = head(4, value.length);
    for (i = 0; i < value.length; i++) out = out.concat(dumps(value[i]));
    return out;
  }
  var pairs = value.pairs.slice(0).sort(function (a, b) {
    return keyBefore(intBytes(a[0]), intBytes(b[0])) ? -1 : keyBefore(intBytes(b[0]), intBytes(a[0])) ? 1 : 0;
  });
  out = head(5, pairs.length);
  for (i = 0; i < pairs.length; i++) out = out.concat(dumps(pairs[i][0]), dumps(pairs[i][1]));
  return out;
}

function checkedValues(value) {
  // integers only where the wire has integers (a number from JSON may be 1.5)
  if (typeof value === "number" && (value % 1 !== 0 || !isFinite(value))) fail("numbers must be whole");
  if (isArray(value)) for (var i = 0; i < value.length; i++) checkedValues(value[i]);
  if (value instanceof CborMap) for (var j = 0; j < value.pairs.length; j++) checkedValues(value.pairs[j][1]);
}

// --- TS013 entry points -------------------------------------------------------------

function run(fn) {
  try {
    return { data: fn(), warnings: [], errors: [] };
  } catch (e) {
    if (e instanceof PayloadError) return { warnings: [], errors: [e.reason] };
    return { warnings: [], errors: ["internal error: " + (e && e.message ? e.message : String(e))] };
  }
}

function inputBytes(input) {
  var bytes = [];
  for (var i = 0; i < input.bytes.length; i++) bytes.push(input.bytes[i] & 0xff);
  return bytes;
}

function decodeUplink(input) {
  return run(function () {
    var parts = splitFrame(inputBytes(input), input.fPort, FPORT_REPORT, "report", input.variables);
    var data = reportFromWire(loads(parts.message));
    data.tag = toHex(parts.tag);
    return data;
  });
}

function decodeDownlink(input) {
  return run(function () {
    var receipt = input.fPort === FPORT_RECEIPT;
    var parts = splitFrame(inputBytes(input), input.fPort, receipt ? FPORT_RECEIPT : FPORT_CONFIG,
      receipt ? "receipt" : "configuration", input.variables);
    var wire = loads(parts.message);
    var data = receipt ? receiptFromWire(wire) : configFromWire(wire);
    data.tag = toHex(parts.tag);
    return data;
  });
}

function encodeDownlink(input) {
  var fPort = FPORT_CONFIG, result = run(function () {
    var cred = credentials(input.variables);
    if (!cred) fail("tagKey and devEui variables are needed to sign a configuration");
    var receipt = input.data && input.data.receipt !== undefined;
    var wire = receipt ? receiptToWire(input.data) : configToWire(input.data);
    checkedValues(wire);
    if (receipt) receiptFromWire(wire); else configFromWire(wire);
    var message = dumps(wire);
    if (message.length + TAG_LEN > MAX_FRAME) {
      fail(fmt("frame is %d bytes; the largest LoRaWAN payload is %d", message.length + TAG_LEN, MAX_FRAME));
    }
    fPort = receipt ? FPORT_RECEIPT : FPORT_CONFIG;
    return computeTag(message, cred.devEui, fPort, cred.key).concat(message);
  });
  if (result.errors.length) return result;
  return { bytes: result.data, fPort: fPort, warnings: [], errors: [] };
}

if (typeof module !== "undefined" && module.exports) {
  module.exports = {
    decodeUplink: decodeUplink, decodeDownlink: decodeDownlink, encodeDownlink: encodeDownlink,
    sha256: sha256, hmacSha256: hmacSha256, computeTag: computeTag
  };
}
