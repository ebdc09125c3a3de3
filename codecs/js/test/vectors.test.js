// Every contract vector through the JavaScript codec (node --test codecs/js/test/).
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const codec = require('../vistelse-codec.js');

const VECTORS = path.join(__dirname, '..', '..', 'vectors');
const load = (name) => JSON.parse(fs.readFileSync(path.join(VECTORS, name), 'utf8'));

function outcome(res) {
  return res.errors && res.errors.length ? { errors: res.errors } : { data: res.data };
}

for (const v of load('uplink.json')) {
  test('uplink: ' + v.description, () => {
    assert.deepStrictEqual(outcome(codec.decodeUplink(v.input)), v.output);
  });
}

for (const v of load('downlink.json')) {
  test('downlink: ' + v.description, () => {
    assert.deepStrictEqual(outcome(codec.decodeDownlink(v.input)), v.output);
    if (v.output.data && v.roundtrip !== false) {
      const data = Object.assign({}, v.output.data);
      delete data.tag;
      const enc = codec.encodeDownlink({ data: data, variables: v.input.variables });
      assert.deepStrictEqual(enc.errors, []);
      assert.strictEqual(enc.fPort, v.input.fPort);
      assert.deepStrictEqual(enc.bytes, v.input.bytes);
    }
  });
}

test('encodeDownlink needs the signing variables', () => {
  const res = codec.encodeDownlink({ data: { config_version: 2, interval_s: 600 } });
  assert.deepStrictEqual(res.errors, ['tagKey and devEui variables are needed to sign a configuration']);
});

test('encodeDownlink rejects minutes given as the interval', () => {
  const variables = { devEui: '70b3d57ed0000001', tagKey: '00'.repeat(32) };
  const res = codec.encodeDownlink({ data: { config_version: 2, interval_s: 5 }, variables });
  assert.deepStrictEqual(res.errors, ['interval_s must be an integer from 60 to 86400']);
});

test('SHA-256 and HMAC agree with node:crypto', () => {
  for (let n = 0; n < 300; n += 7) {
    const msg = Array.from(crypto.randomBytes(n));
    const key = Array.from(crypto.randomBytes(32));
    assert.deepStrictEqual(codec.sha256(msg), Array.from(crypto.createHash('sha256').update(Buffer.from(msg)).digest()));
    assert.deepStrictEqual(codec.hmacSha256(key, msg),
      Array.from(crypto.createHmac('sha256', Buffer.from(key)).update(Buffer.from(msg)).digest()));
  }
});

test('without variables the tag is reported, not verified', () => {
  const v = load('uplink.json')[0];
  const res = codec.decodeUplink({ bytes: v.input.bytes, fPort: 1 });
  assert.deepStrictEqual(res.data, v.output.data);
});
