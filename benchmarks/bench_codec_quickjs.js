// Time per call of the JavaScript codec in QuickJS, called as ChirpStack v4
// and The Things Stack call it (tests/quickjs_hosts.js: a fresh runtime per
// call, the wrapping each server uses). ChirpStack gives each call 100 ms
// for setup, compilation (its Buffer module and the codec) and the call.
//
//   node benchmarks/bench_codec_quickjs.js [--rounds 5]
//
// Each round runs every uplink vector once per host; ChirpStack calls carry
// the device variables, so the tag is verified (HMAC-SHA-256). Printed: the
// first (cold) call, then median, 95th percentile and maximum of the rest.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { loadQuickJS, runJob } = require('../tests/quickjs_hosts.js');

const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 5;
const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'codecs', 'vectors', 'uplink.json'), 'utf8'));
const data = vectors.filter((v) => v.output.data);

function stats(ms) {
  const s = ms.slice().sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return `median ${at(0.5).toFixed(1)} ms, p95 ${at(0.95).toFixed(1)} ms, max ${s[s.length - 1].toFixed(1)} ms (${s.length} calls)`;
}

(async () => {
  const t0 = performance.now();
  const QuickJS = await loadQuickJS();
  console.log(`QuickJS (quickjs-ng, WebAssembly) loaded in ${(performance.now() - t0).toFixed(1)} ms`);
  for (const host of ['chirpstack', 'tts']) {
    const times = [];
    let first = null;
    for (let r = 0; r < rounds; r++) {
      for (const v of data) {
        const input = { bytes: v.input.bytes, fPort: v.input.fPort };
        if (host === 'chirpstack') Object.assign(input, { recvTime: Date.now(), variables: v.input.variables });
        // a generous deadline here: the figure is the time taken, not whether it fits
        const res = runJob(QuickJS, { host, fn: 'decodeUplink', input, deadline_ms: 1e9 });
        if (!res.ok) throw new Error(`${v.description}: ${res.error}`);
        if (first === null) first = res.ms;
        else times.push(res.ms);
      }
    }
    console.log(`${host} decodeUplink: first call ${first.toFixed(1)} ms; then ${stats(times)}`);
  }
  // ChirpStack's own share: a fresh runtime, its Buffer module, a codec that does nothing
  const empty = 'function decodeUplink(input) { return { data: {} }; }';
  const times = [];
  for (let i = 0; i < rounds * data.length; i++) {
    const input = { bytes: [1], fPort: 1, recvTime: Date.now(), variables: {} };
    times.push(runJob(QuickJS, { host: 'chirpstack', fn: 'decodeUplink', input, codec: empty, deadline_ms: 1e9 }).ms);
  }
  console.log(`chirpstack, a codec that does nothing: ${stats(times)}`);
})();
