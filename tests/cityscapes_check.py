#!/usr/bin/env python3
"""Recomputes l2s's IoU with the official Cityscapes evaluation (cityscapesscripts).

Usage: python3 tests/cityscapes_check.py RUN/cityscapes

RUN/cityscapes is written by a segmentation experiment on a target dataset: pred/*.png
(the predictions of one model trained on psi*, as Cityscapes label ids), gt/*.png (the
test labels they were scored against: ids outside the class table are 0, unlabeled, as
l2s ignores them) and l2s_scores.json (l2s's IoU of those predictions). Exits 0 when
every class IoU, the car IoU and the mean IoU agree to 1e-3, 1 otherwise, 2 when
cityscapesscripts is not installed (pip install cityscapesscripts).
"""

import json
import math
import os
import sys


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    run = sys.argv[1]
    try:
        from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev
        from cityscapesscripts.helpers.labels import id2label
    except ImportError:
        print("cityscapes_check: cityscapesscripts is not installed (pip install cityscapesscripts)", file=sys.stderr)
        return 2
    with open(os.path.join(run, "l2s_scores.json")) as f:
        l2s = json.load(f)
    names = sorted(os.listdir(os.path.join(run, "gt")))
    if len(names) != l2s["images"]:
        print(f"cityscapes_check: {len(names)} label files, l2s scored {l2s['images']} images", file=sys.stderr)
        return 1
    args = ev.args
    args.evalInstLevelScore = False
    args.JSONOutput = False
    args.quiet = True
    args.colorized = False
    args.bold = args.nocol = ""
    predictions = [os.path.join(run, "pred", n) for n in names]
    truths = [os.path.join(run, "gt", n) for n in names]
    results = ev.evaluateImgLists(predictions, truths, args)
    scores = results["classScores"]
    failed = False
    print(f"{'class':<12} {'l2s':>8} {'cityscapes':>11}")
    for c in l2s["classes"]:
        theirs = scores[id2label[c["label_id"]].name]
        ours = c["iou"]
        same = (ours is None and math.isnan(theirs)) or (ours is not None and abs(ours - theirs) <= 1e-3)
        failed |= not same
        print(f"{c['name']:<12} {ours if ours is not None else float('nan'):>8.4f} {theirs:>11.4f} {'' if same else 'DIFFERS'}")
    car = next(c for c in l2s["classes"] if c["name"] == "car")
    car_theirs = scores[id2label[car["label_id"]].name]
    present = [v for v in scores.values() if not math.isnan(v)]
    mean_theirs = sum(present) / len(present)
    for what, ours, theirs in [("car IoU", l2s["car_iou"], car_theirs), ("mean IoU", l2s["mean_iou"], mean_theirs)]:
        same = abs(ours - theirs) <= 1e-3
        failed |= not same
        print(f"{what:<12} {ours:>8.4f} {theirs:>11.4f} {'' if same else 'DIFFERS'}")
    print(f"cityscapes_check: {len(names)} images, {'DISAGREE' if failed else 'agree to 1e-3'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
