"""`vistelse selfcheck`: every contract vector through all three codecs.

Python (the gateway's codec), MicroPython (the node's, run under the
official MicroPython WebAssembly build) and JavaScript (the network
server's, run under Node) must all give exactly the recorded output.
"""
import argparse
import json
import os
import subprocess
import sys

import vistelse_codec as vc

from . import REPO_ROOT

VECTOR_DIR = os.path.join(REPO_ROOT, "codecs", "vectors")
JS_CODEC = os.path.join(REPO_ROOT, "codecs", "js", "vistelse-codec.js")


def load_vectors():
    vectors = []
    for name in ("uplink.json", "downlink.json"):
        with open(os.path.join(VECTOR_DIR, name)) as f:
            kind = "up" if name.startswith("up") else "down"
            vectors += [(kind, v) for v in json.load(f)]
    return vectors


def _keys(vector):
    var = vector["input"]["variables"]
    return bytes.fromhex(var["devEui"]), bytes.fromhex(var["tagKey"])


def check_python(vectors):
    """Decode every vector; re-encode the valid ones. Returns failure texts."""
    failures = []
    for kind, v in vectors:
        eui, key = _keys(v)
        data = bytes(v["input"]["bytes"])
        decode = vc.decode_uplink if kind == "up" else vc.decode_downlink
        try:
            got = {"data": decode(data, v["input"]["fPort"], dev_eui=eui, key=key)}
        except vc.PayloadError as exc:
            got = {"errors": [exc.reason]}
        if got != v["output"]:
            failures.append("%s: decoded %s" % (v["description"], json.dumps(got)[:200]))
        elif "data" in got and v.get("roundtrip", True):
            fields = dict(got["data"])
            fields.pop("tag")
            encode = vc.encode_uplink if kind == "up" else vc.encode_downlink
            if list(encode(fields, dev_eui=eui, key=key)) != v["input"]["bytes"]:
                failures.append("%s: re-encoded bytes differ" % v["description"])
    return failures


_JS_RUNNER = r"""
const codec = require(process.argv[1]);
const vectors = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const failures = [];
for (const [kind, v] of vectors) {
  const fn = kind === 'up' ? codec.decodeUplink : codec.decodeDownlink;
  const res = fn(v.input);
  const got = (res.errors && res.errors.length) ? {errors: res.errors} : {data: res.data};
  if (JSON.stringify(sortKeys(got)) !== JSON.stringify(sortKeys(v.output)))
    failures.push(v.description + ': decoded ' + JSON.stringify(got).slice(0, 200));
  else if (kind === 'down' && got.data && v.roundtrip !== false) {
    const data = Object.assign({}, got.data); delete data.tag;
    const enc = codec.encodeDownlink({data: data, variables: v.input.variables});
    if (JSON.stringify(enc.bytes) !== JSON.stringify(v.input.bytes))
      failures.push(v.description + ': re-encoded bytes differ');
  }
}
function sortKeys(x) {
  if (Array.isArray(x)) return x.map(sortKeys);
  if (x && typeof x === 'object')
    return Object.keys(x).sort().reduce((o, k) => (o[k] = sortKeys(x[k]), o), {});
  return x;
}
process.stdout.write(JSON.stringify(failures));
"""


def check_javascript(vectors):
    if not os.path.exists(JS_CODEC):
        return ["JavaScript codec missing: %s" % JS_CODEC]
    proc = subprocess.run(["node", "-e", _JS_RUNNER, JS_CODEC], input=json.dumps(vectors),
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return ["node failed: %s" % proc.stderr.strip()[-500:]]
    return json.loads(proc.stdout)


_MPY_SCRIPT = """
import json
import vistelse_mcodec as mc
vectors = json.loads(%r)
failures = []
for kind, v in vectors:
    var = v["input"]["variables"]
    eui = bytes.fromhex(var["devEui"])
    key = bytes.fromhex(var["tagKey"])
    out = v["output"]
    if kind == "up":
        if "data" in out and v.get("roundtrip", True):
            got = mc.encode_uplink(out["data"], eui, key)
            if list(got) != v["input"]["bytes"]:
                failures.append(v["description"] + ": encoded bytes differ")
        continue
    try:
        got = {"data": mc.decode_downlink(bytes(v["input"]["bytes"]), v["input"]["fPort"], eui, key)}
    except mc.PayloadError as exc:
        got = {"errors": [str(exc)]}
    if got != out:
        failures.append(v["description"] + ": decoded " + json.dumps(got)[:200])
print(json.dumps(failures))
"""


def check_micropython(vectors):
    """Uplink vectors through the node's encoder, downlinks through its decoder."""
    from .micropython import run_micropython
    return json.loads(run_micropython(_MPY_SCRIPT % json.dumps(vectors)).strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="vistelse selfcheck", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    vectors = load_vectors()
    print("payload contract v1: %d vectors (%s)" % (len(vectors), os.path.relpath(VECTOR_DIR)))
    results = [("Python", "gateway", check_python), ("MicroPython", "node", check_micropython),
               ("JavaScript", "network server", check_javascript)]
    bad = 0
    for runtime, role, check in results:
        try:
            failures = check(vectors)
        except Exception as exc:  # a missing runtime is a failed check, said plainly
            failures = ["could not run: %s" % exc]
        bad += bool(failures)
        print("  %-12s %-15s %s" % (runtime, "(" + role + ")", "ok" if not failures else "FAILED"))
        for text in failures[:10]:
            print("      " + text)
    print("all runtimes agree" if not bad else "%d runtime(s) disagree with the contract" % bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
