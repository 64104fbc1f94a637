"""Which label-error check: configurations of ftplay.label_issues compared on data nobody here wrote.

The sample export's planted wrong labels are the test of the check, so its settings are chosen elsewhere: on
BANKING77 and Bitext (../shared/datasets), a seeded subsample of each with wrong labels planted as the sample
generator plants them (tools/make_sample_data.py: half to the label a clean classifier confuses the row's label with
most, half to any other label), at the sample's rate (45 of 1,188 rows, 3.8%). Each configuration's precision,
recall and F1 against the planted rows, per dataset and seed, then the sample export's own figures for the record.

    .venv/bin/python benchmarks/label_issues_choice.py [--rows 2000] [--seeds 2]
"""
import argparse
import csv
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ftplay import data, label_issues  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
RATE = 45 / 1188


def _load(name, rows, seed):
    path = SHARED / name / "train.csv"
    with path.open(newline="", encoding="utf-8") as f:
        got = [(r.get("text") or r.get("instruction"), r.get("label") or r.get("intent")) for r in csv.DictReader(f)]
    rng = random.Random(seed)
    got = rng.sample(got, min(rows, len(got)))
    return [t for t, _ in got], [lab for _, lab in got]


def _plant(texts, labels, seed):
    """(given labels, {index: true label}) with RATE of the rows relabelled, half to the most confused label."""
    classes = sorted(set(labels))
    y = np.array([classes.index(x) for x in labels])
    probs = label_issues.out_of_fold(texts, y, seed=seed, models=("svm",), repeats=1)
    confuse = {}
    for c in range(len(classes)):
        p = probs[y == c].mean(0)
        p[c] = -1
        confuse[c] = int(p.argmax())
    rng = random.Random(seed + 29)
    idx = rng.sample(range(len(texts)), round(RATE * len(texts)))
    given, truth = list(labels), {}
    for k, i in enumerate(idx):
        c = classes.index(labels[i])
        wrong = confuse[c] if k % 2 == 0 else rng.choice([j for j in range(len(classes)) if j != c])
        given[i] = classes[wrong]
        truth[i] = labels[i]
    return given, truth


def _score(flagged, truth):
    hit = len(set(flagged) & set(truth))
    p = hit / len(flagged) if flagged else 0.0
    r = hit / len(truth)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0), len(flagged)


def _configs():
    """name -> (classifiers, repeats, filter_by)"""
    return {"svm, 1 split, both (before)": (("svm",), 1, "both"),
            "svm, 3 splits averaged, both": (("svm",), 3, "both"),
            "svm + logreg, 1 split, both": (("svm", "logreg"), 1, "both"),
            "svm + logreg, 3 splits averaged, both": (("svm", "logreg"), 3, "both"),
            "svm, 1 split, prune_by_noise_rate": (("svm",), 1, "prune_by_noise_rate"),
            "svm, 1 split, confident_learning": (("svm",), 1, "confident_learning")}


def _flag(texts, labels, models, repeats, filter_by, seed):
    from cleanlab.filter import find_label_issues

    classes = sorted(set(labels))
    y = np.array([classes.index(x) for x in labels])
    probs = label_issues.out_of_fold(texts, y, seed=seed, models=models, repeats=repeats)
    return [int(i) for i in find_label_issues(y, probs, filter_by=filter_by,
                                                     return_indices_ranked_by="self_confidence")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} is absent: this benchmark needs the team's shared datasets")
    configs = _configs()
    table = {name: [] for name in configs}
    for ds in ("banking77", "bitext_customer_support"):
        for seed in range(args.seeds):
            texts, labels = _load(ds, args.rows, seed)
            given, truth = _plant(texts, labels, seed)
            for name, (models, repeats, filter_by) in configs.items():
                t0 = time.perf_counter()
                p, r, f1, n = _score(_flag(texts, given, models, repeats, filter_by, seed), truth)
                table[name].append((p, r, f1))
                print(f"{ds:24} seed {seed}  {name:40} flagged {n:4}  precision {p:.3f}  recall {r:.3f}  "
                      f"F1 {f1:.3f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\nmean over 2 datasets x {args.seeds} seeds ({args.rows} rows each, {RATE:.1%} planted):")
    print(f"{'configuration':40} precision  recall  F1")
    for name, got in table.items():
        p, r, f1 = np.mean(got, axis=0)
        print(f"{name:40} {p:9.3f} {r:7.3f} {f1:.3f}")
    print("\nthe sample export as 02 checks it (curated; its planted rows test the check, they do not tune it):")
    for name, (models, repeats, filter_by) in configs.items():
        if filter_by != "both":
            continue
        label_issues.MODELS, label_issues.REPEATS = models, repeats
        got = data.curate(data.DataConfig(production_path=None)).report["label_issues"]
        p = got["planted"]
        print(f"{name:40} flagged {p['flagged']:4}  precision {p['precision']:.3f}  recall {p['recall']:.3f}")

if __name__ == "__main__":
    main()
