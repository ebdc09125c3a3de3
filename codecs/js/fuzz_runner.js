// Reads JSON lines {"kind": "up"|"down", "fPort": n, "bytes": [...]} and writes
// the codec's result for each as one JSON line. Used by the property tests.
'use strict';
const codec = require('./vistelse-codec.js');
const lines = require('node:fs').readFileSync(0, 'utf8').split('\n').filter(Boolean);
const out = [];
for (const line of lines) {
  const item = JSON.parse(line);
  const fn = item.kind === 'up' ? codec.decodeUplink : codec.decodeDownlink;
  let res;
  try {
    res = fn({ bytes: item.bytes, fPort: item.fPort, variables: item.variables });
  } catch (e) {
    res = { thrown: String(e && e.stack || e) };
  }
  out.push(JSON.stringify(res));
}
process.stdout.write(out.join('\n') + '\n');
