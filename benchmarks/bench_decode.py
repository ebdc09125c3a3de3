"""Time per call of the ingest worker's two per-uplink parsers: the strict
report decoder (the largest report among the shared vectors, tag verified,
and its field checks alone) and parse_rfc3339 on a network server's timestamp.

    .venv/bin/python benchmarks/bench_decode.py
    .venv/bin/python benchmarks/bench_decode.py --compare /tmp/before   # a `git archive` of older code

With --compare, the older tree's codec and timeutil are loaded into the same
process and timed interleaved with this tree's, round by round, so that both
see the same moments of a shared machine; each figure is the minimum over the
rounds (many short rounds: a shared host's speed changes within seconds). The
minimum still moves from process to process, so compare a few runs.
"""
import argparse
import importlib
import json
import os
import sys
import timeit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAMP = "2026-12-03T06:31:27.123456789Z"


def load(tree):
    """(report module, timeutil module) of the codec and gateway under tree."""
    for name in [k for k in sys.modules if k.split(".")[0] in ("vistelse_codec", "vistelse_gateway")]:
        del sys.modules[name]
    sys.path[:0] = [os.path.join(tree, "codecs", "python"), os.path.join(tree, "gateway")]
    try:
        report = importlib.import_module("vistelse_codec.report")
        timeutil = importlib.import_module("vistelse_gateway.timeutil")
    finally:
        del sys.path[:2]
    for module in (report, timeutil):
        if not os.path.realpath(module.__file__).startswith(os.path.realpath(tree) + os.sep):
            sys.exit("%s did not load from %s" % (module.__name__, tree))
    return report, timeutil


def largest_report():
    with open(os.path.join(ROOT, "codecs", "vectors", "uplink.json")) as f:
        vectors = json.load(f)
    valid = [v["input"] for v in vectors if v["input"]["fPort"] == 1 and not v["output"].get("errors")]
    case = max(valid, key=lambda i: len(i["bytes"]))
    return (bytes(case["bytes"]), bytes.fromhex(case["variables"]["devEui"]),
            bytes.fromhex(case["variables"]["tagKey"]))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--compare", metavar="DIR", help="an older tree (with gateway/ and codecs/) to time beside this one")
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--calls", type=int, default=500, help="calls per timing (default 500)")
    args = p.parse_args()
    trees = ([("compared", args.compare)] if args.compare else []) + [("this tree", ROOT)]
    frame, dev_eui, key = largest_report()
    cases = {}
    for label, tree in trees:
        report, timeutil = load(tree)
        wire = report._to_wire(report.decode_uplink(frame, 1, dev_eui=dev_eui, key=key))
        cases[label] = {
            "decode_uplink": lambda r=report: r.decode_uplink(frame, 1, dev_eui=dev_eui, key=key),
            "field checks": lambda r=report, w=wire: r._from_wire(w),
            "parse_rfc3339": lambda t=timeutil: t.parse_rfc3339(STAMP),
        }
    best = {(label, name): float("inf") for label in cases for name in cases[label]}
    for _ in range(args.rounds):
        for label, fns in cases.items():
            for name, fn in fns.items():
                best[label, name] = min(best[label, name], timeit.timeit(fn, number=args.calls) / args.calls)
    result = {"report_bytes": len(frame), "rounds": args.rounds, "calls": args.calls,
              "us_per_call": {label: {name: round(best[label, name] * 1e6, 2) for name in fns}
                              for label, fns in cases.items()}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
