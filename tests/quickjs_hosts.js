// Runs a TS013 payload codec in QuickJS the way network servers run it.
//
// QuickJS is quickjs-ng (the engine rquickjs, and so ChirpStack v4, embeds),
// built to WebAssembly by quickjs-emscripten (npm, pinned in package.json).
// Each call gets a fresh runtime and context, as in both servers. Sources
// read: chirpstack/chirpstack at 8c26b22e0c97 (chirpstack/src/codec/),
// TheThingsNetwork/lorawan-stack at 1d2182161975 (v3.32.1+), and
// TheThingsNetwork/lorawan-devices as of 2022-10-31 (tools/runscript). The hosts:
//
//   chirpstack  ChirpStack v4, chirpstack/src/codec/js/mod.rs (decode, encode):
//               the codec wrapped in an ES module that imports Buffer, the
//               input in the global `chirpstack_input`, the result taken from
//               the module's default export and converted as
//               chirpstack/src/codec/convert.rs does; one deadline (100 ms,
//               config.rs `codec.js.max_execution_time`) set before the
//               runtime is made, so it covers setup, compilation and the call.
//               ChirpStack calls only decodeUplink and encodeDownlink.
//   tts         The Things Stack, pkg/messageprocessors/javascript/javascript.go:
//               the codec inside a script that defines main(input), run as a
//               global script; main is called with {bytes, fPort} (uplink and
//               downlink decoders) or {data, fPort} (encoder): no variables.
//               Timeout 100 ms (pkg/scripting/scripting.go DefaultOptions).
//   runscript   The Things Network device repository's example runner,
//               tools/runscript/main.go: the raw codec as a global script, the
//               routine called directly with the example's input, the whole
//               output returned as JSON (1 s timeout).
//
// Command line: JSON lines on stdin, each {host, fn, input} (input.recvTime
// in ms since the epoch for chirpstack); one JSON line out per job with the
// outcome and `ms`, the wall time of the call including runtime setup.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { newQuickJSWASMModuleFromVariant } = require('quickjs-emscripten-core');
const variant = require('@jitl/quickjs-ng-wasmfile-release-sync').default;

const ROOT = path.join(__dirname, '..');
const CODEC = fs.readFileSync(path.join(ROOT, 'codecs', 'js', 'vistelse-codec.js'), 'utf8');
// The modules ChirpStack registers with its BuiltinResolver/BuiltinLoader.
const CHIRPSTACK_MODULES = {};
for (const name of ['buffer', 'base64-js', 'ieee754']) {
  CHIRPSTACK_MODULES[name] = fs.readFileSync(path.join(__dirname, 'chirpstack_js', name + '.js'), 'utf8');
}
const CHIRPSTACK_DEADLINE_MS = 100;
const TTS_TIMEOUT_MS = 100;
const RUNSCRIPT_TIMEOUT_MS = 1000;

function loadQuickJS() {
  return newQuickJSWASMModuleFromVariant(variant);
}

class HostError extends Error {}

function toHandle(ctx, value) {
  if (value === null || value === undefined) return ctx.null;
  if (typeof value === 'boolean') return value ? ctx.true : ctx.false;
  if (typeof value === 'number') return ctx.newNumber(value);
  if (typeof value === 'string') return ctx.newString(value);
  const array = Array.isArray(value);
  const out = array ? ctx.newArray() : ctx.newObject();
  for (const [k, v] of Object.entries(value)) {
    const h = toHandle(ctx, v);
    ctx.setProp(out, array ? Number(k) : k, h);
    if (v !== null && v !== undefined && typeof v !== 'boolean') h.dispose();
  }
  return out;
}

function errorText(ctx, handle) {
  const e = ctx.dump(handle);
  handle.dispose();
  if (e && typeof e === 'object') return (e.name ? e.name + ': ' : '') + e.message + (e.stack ? '\n' + e.stack : '');
  return String(e);
}

// chirpstack/src/codec/convert.rs rquickjs_to_struct: numbers (NaN dropped),
// strings, booleans, arrays, objects by own enumerable keys; anything else
// (null, undefined, functions) becomes an empty value, written as null.
function chirpstackValue(ctx, isArray, h) {
  const type = ctx.typeof(h);
  if (type === 'number') {
    const n = ctx.getNumber(h);
    return Number.isNaN(n) ? null : n;
  }
  if (type === 'string') return ctx.getString(h);
  if (type === 'boolean') return ctx.dump(h);
  if (type !== 'object' || ctx.dump(h) === null) return null;
  const arrayCheck = ctx.callFunction(isArray, ctx.undefined, h).unwrap();
  const array = ctx.dump(arrayCheck);
  arrayCheck.dispose();
  if (array) {
    const out = [];
    for (let i = 0; i < ctx.getLength(h); i++) {
      const item = ctx.getProp(h, i);
      out.push(chirpstackValue(ctx, isArray, item));
      item.dispose();
    }
    return out;
  }
  const out = {};
  const names = ctx.getOwnPropertyNames(h, { strings: true, numbersAsStrings: true, onlyEnumerable: true }).unwrap();
  for (const name of names) {
    const key = ctx.getString(name);
    const item = ctx.getProp(h, key);
    out[key] = chirpstackValue(ctx, isArray, item);
    item.dispose();
  }
  names.dispose();
  return out;
}

// chirpstack/src/codec/js/mod.rs decode() and encode().
function chirpstack(QuickJS, fn, input, codec = CODEC, deadlineMs = CHIRPSTACK_DEADLINE_MS) {
  const deadline = performance.now() + deadlineMs; // max_run_ts, taken before the runtime is made
  const rt = QuickJS.newRuntime();
  rt.setInterruptHandler(() => performance.now() > deadline);
  rt.setModuleLoader(
    (name) => (name in CHIRPSTACK_MODULES ? CHIRPSTACK_MODULES[name] : { error: new Error('module not found: ' + name) }),
    (base, name) => name,
  );
  const ctx = rt.newContext();
  try {
    const js = ctx.newObject();
    if (fn === 'decodeUplink') {
      const bytes = toHandle(ctx, input.bytes); // Vec<u8> into_js: an Array of numbers
      ctx.setProp(js, 'bytes', bytes);
      bytes.dispose();
      const port = ctx.newNumber(input.fPort);
      ctx.setProp(js, 'fPort', port);
      port.dispose();
      const date = ctx.evalCode('new Date(' + Number(input.recvTime) + ')', 'recv_time', { type: 'global' }).unwrap();
      ctx.setProp(js, 'recvTime', date); // DateTime<Utc> into_js: a Date
      date.dispose();
    } else if (fn === 'encodeDownlink') {
      const data = toHandle(ctx, input.data); // struct_to_rquickjs
      ctx.setProp(js, 'data', data);
      data.dispose();
    } else {
      throw new HostError('ChirpStack calls only decodeUplink and encodeDownlink, not ' + fn);
    }
    const variables = toHandle(ctx, input.variables || {}); // HashMap<String, String>
    ctx.setProp(js, 'variables', variables);
    variables.dispose();
    ctx.setProp(ctx.global, 'chirpstack_input', js);
    js.dispose();

    const script = `
        import { Buffer } from "buffer";

        ${codec}

        export default ${fn}(chirpstack_input);
        `;
    const evaluated = ctx.evalCode(script, 'main', { type: 'module' });
    if (evaluated.error) throw new HostError('JS error: ' + errorText(ctx, evaluated.error));
    // Module::eval then promise.finish(): run the jobs until the module's promise settles
    const ns = evaluated.value;
    let state = ctx.getPromiseState(ns);
    if (state.type === 'pending') {
      rt.executePendingJobs();
      state = ctx.getPromiseState(ns);
    }
    if (state.type === 'rejected') throw new HostError('JS error: ' + errorText(ctx, state.error));
    if (state.type === 'pending') throw new HostError('JS error: the module did not finish');
    if (!state.notAPromise) state.value.dispose();
    // the module's namespace (quickjs-emscripten returns it from a module eval)
    const res = ctx.getProp(ns, 'default');
    ns.dispose();
    const arrayCtor = ctx.getProp(ctx.global, 'Array');
    const isArray = ctx.getProp(arrayCtor, 'isArray');
    arrayCtor.dispose();
    const out = chirpstackValue(ctx, isArray, res);
    isArray.dispose();
    res.dispose();
    const errors = out && Array.isArray(out.errors) && out.errors.every((e) => typeof e === 'string') ? out.errors : [];
    if (errors.length) throw new HostError(fn + ' returned errors: ' + errors.join(', '));
    if (fn === 'decodeUplink') {
      if (!out || !out.data || typeof out.data !== 'object' || Array.isArray(out.data)) throw new HostError("decodeUplink did not return 'data'");
      return { data: out.data };
    }
    // Vec<f64> then `as u8`; fPort falls back to the requested one
    if (!out || !Array.isArray(out.bytes)) throw new HostError('JS error: encodeDownlink did not return bytes');
    const bytes = out.bytes.map((v) => Math.min(255, Math.max(0, Math.trunc(v))));
    const fPort = typeof out.fPort === 'number' ? out.fPort : input.fPort;
    return { bytes, fPort };
  } finally {
    ctx.dispose();
    rt.dispose();
  }
}

// The Things Stack's wrappers (javascript.go wrapUplinkDecoderScript,
// wrapDownlinkDecoderScript, wrapDownlinkEncoderScript), verbatim.
const TTS_WRAPPERS = {
  decodeUplink: (script) => `
		${script}

		function main(input) {
			const bytes = input.bytes.slice();
			const { fPort } = input;
			if (typeof decodeUplink === 'function') {
				const decoded = decodeUplink({ bytes, fPort });
				let normalized;
				const { data, errors } = decoded;
				if ((!errors || !errors.length) && data && typeof normalizeUplink === 'function') {
					normalized = normalizeUplink({ data });
				}
				return { decoded, normalized };
			}
			return {
				decoded: {
					data: Decoder(bytes, fPort)
				}
			}
		}
	`,
  decodeDownlink: (script) => `
		${script}

		function main(input) {
			const bytes = input.bytes.slice();
			const { fPort } = input;
			return decodeDownlink({ bytes, fPort });
		}
	`,
  encodeDownlink: (script) => `
		${script}

		function main(input) {
			const { data, fPort } = input;
			if (typeof encodeDownlink === 'function') {
				return encodeDownlink({ data, fPort });
			}
			return {
				bytes: Encoder(data, fPort),
				fPort: input.fPort
			}
		}
	`,
};

// pkg/scripting/javascript/javascript.go run(): a new VM, the script run as
// a global script, then the global function `entry` called with `input`;
// the result exported whole (ExportTo into an interface{}).
function runGlobal(QuickJS, script, entry, input, timeoutMs) {
  const deadline = performance.now() + timeoutMs;
  const rt = QuickJS.newRuntime();
  rt.setInterruptHandler(() => performance.now() > deadline);
  const ctx = rt.newContext();
  try {
    const ran = ctx.evalCode(script, '', { type: 'global' });
    if (ran.error) throw new HostError(errorText(ctx, ran.error));
    ran.value.dispose();
    const fn = ctx.getProp(ctx.global, entry);
    if (ctx.typeof(fn) !== 'function') throw new HostError('entrypoint `' + entry + '` not found');
    const arg = toHandle(ctx, input);
    const called = ctx.callFunction(fn, ctx.undefined, arg);
    fn.dispose();
    arg.dispose();
    if (called.error) throw new HostError(errorText(ctx, called.error));
    const out = ctx.dump(called.value);
    called.value.dispose();
    if (out === null || out === undefined) throw new HostError('no script output');
    return out;
  } finally {
    ctx.dispose();
    rt.dispose();
  }
}

// javascript.go decodeUplink / decodeDownlink / encodeDownlink: what the
// application receives, or the error The Things Stack reports.
function tts(QuickJS, fn, input, codec = CODEC) {
  const arg = fn === 'encodeDownlink' ? { data: input.data, fPort: input.fPort } : { bytes: input.bytes, fPort: input.fPort };
  const out = runGlobal(QuickJS, TTS_WRAPPERS[fn](codec), 'main', arg, TTS_TIMEOUT_MS);
  const result = fn === 'decodeUplink' ? out.decoded : out;
  if (result.errors && result.errors.length) throw new HostError(result.errors.join(', '));
  if (fn === 'encodeDownlink') return { bytes: result.bytes, fPort: result.fPort === undefined ? input.fPort : result.fPort, warnings: result.warnings };
  return { data: result.data, warnings: result.warnings };
}

// lorawan-devices tools/runscript/main.go: the whole output, as JSON.
function runscript(QuickJS, fn, input, codec = CODEC) {
  return JSON.parse(JSON.stringify(runGlobal(QuickJS, codec, fn, input, RUNSCRIPT_TIMEOUT_MS)));
}

const HOSTS = { chirpstack, tts, runscript };

function runJob(QuickJS, job) {
  const start = performance.now();
  let res;
  try {
    res = { ok: HOSTS[job.host](QuickJS, job.fn, job.input, job.codec === undefined ? CODEC : job.codec, job.deadline_ms) };
  } catch (e) {
    if (!(e instanceof HostError)) throw e;
    res = { error: e.message };
  }
  res.ms = performance.now() - start;
  return res;
}

// The WebAssembly engine is compiled by V8 in tiers: its first calls run
// several times slower than later ones (a native QuickJS, as in ChirpStack,
// has no such start). Warming up keeps that out of the 100 ms deadline.
function warmUp(QuickJS, calls = 8) {
  const frame = { bytes: [0, 1, 2, 3, 4, 5, 6, 7, 134, 25, 3, 232, 25, 1, 44, 2, 132, 25, 12, 228, 0, 3, 0, 128, 128], fPort: 1, recvTime: 0 };
  for (let i = 0; i < calls; i++) {
    runJob(QuickJS, { host: 'chirpstack', fn: 'decodeUplink', input: frame, deadline_ms: 1e9 });
    runJob(QuickJS, { host: 'tts', fn: 'decodeUplink', input: frame });
  }
}

module.exports = { loadQuickJS, warmUp, runJob, chirpstack, tts, runscript, HostError, CODEC };

if (require.main === module) {
  (async () => {
    const QuickJS = await loadQuickJS();
    if (process.argv.includes('--warmup')) warmUp(QuickJS);
    const jobs = fs.readFileSync(0, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const out = jobs.map((job) => JSON.stringify(runJob(QuickJS, job)));
    process.stdout.write(out.join('\n') + '\n');
  })().catch((e) => {
    process.stderr.write(String((e && e.stack) || e) + '\n');
    process.exit(1);
  });
}
