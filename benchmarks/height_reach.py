"""How far from the point below an overhead ToF sensor people get a height class.

Walks single people under a simulated VL53L5CX (the scene simulator's body
model: head, torso, legs, gait, a bent head up to 40 mm) on straight paths
at a given lateral distance from the point below the sensor, through the
firmware pipeline, and prints per distance how many children (1.05-1.32 m)
and adults (1.60-1.88 m) were classified, and whether any got the wrong
class. Children are classified only where the top of their head is in view;
adults also where a part of them is seen above 1.45 m (a lower bound of
their stature), a little further out: docs/accuracy.md explains why the
children's share is then measured on the first group only.

    .venv/bin/python benchmarks/height_reach.py [--mount 2800] [--runs 2]
"""
import argparse
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tools"), os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tests")]

from test_heights import case, classes    # noqa: E402  the property tests' walker and pipeline

CHILDREN = (1050, 1150, 1250, 1320)
ADULTS = (1600, 1700, 1780, 1880)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mount", type=int, default=2800)
    p.add_argument("--runs", type=int, default=2, help="walks per height and distance")
    p.add_argument("--seed", type=int, default=3)
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    print("mount %d mm; classified of %d walks per class, wrong classes in brackets" % (
        args.mount, args.runs * len(CHILDREN)))
    print("| lateral (mm) | children | adults |")
    print("|---:|---:|---:|")
    for lateral in range(0, 901, 50):
        cells = []
        for heights in (CHILDREN, ADULTS):
            right = wrong = 0
            for h in heights:
                for _ in range(args.runs):
                    got = classes(*case(h, rng.randint(800, 1600), lateral * rng.choice((-1, 1)), rng.randint(0, 40),
                                        rng.uniform(0, 6.28), None, rng.randint(0, 10 ** 6), mount=args.mount))
                    want = 0 if h < 1400 else 1
                    right += got[want]
                    wrong += got[1 - want]
            cells.append("%d%s" % (right, " (%d wrong)" % wrong if wrong else ""))
        print("| %d | %s | %s |" % (lateral, cells[0], cells[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
