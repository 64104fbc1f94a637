"""Scale check: curate + split 100,000 synthetic tickets (5% planted near duplicates) without a tokenizer.

Run `python benchmarks/curate_scale.py [ROWS]`; the last line printed is a JSON summary with "rows",
"seconds" and the near-duplicate counts. Budget: <= 60 s for 100,000 rows on 2 CPU cores.
"""
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ftplay import data  # noqa: E402

LABELS = ["billing", "account", "bug", "shipping", "refund", "feature", "cancellation", "security", "other"]
NEAR_SHARE = 0.05


def synthetic_rows(n, seed=0):
    """n rows of 12-30 random words from a 5,000-word vocabulary; NEAR_SHARE of them one-word edits."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
             for _ in range(5000)]
    rows, planted = [], 0
    for i in range(n):
        if rows and rng.random() < NEAR_SHARE:
            src = rng.choice(rows)
            words = src[1].split()
            words[rng.randrange(len(words))] = rng.choice(vocab)    # one substituted word
            rows.append((f"T{i:06d}", " ".join(words), src[2]))
            planted += 1
        else:
            words = [rng.choice(vocab) for _ in range(rng.randint(12, 30))]
            rows.append((f"T{i:06d}", " ".join(words).capitalize() + ".", rng.choice(LABELS)))
    return rows, planted


def main(n=100_000):
    rows, planted = synthetic_rows(n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tickets.csv"
        import csv
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["ticket_id", "text", "label"])
            w.writerows(rows)
        started = time.perf_counter()
        cur = data.curate(data.DataConfig(train_path=str(path), production_path=None))
        seconds = time.perf_counter() - started
    rep = cur.report
    return {"rows": n, "seconds": round(seconds, 2), "planted_near_duplicates": planted,
            "near_duplicate_groups": rep["near_duplicates"], "near_duplicate_rows": rep["near_duplicate_rows"],
            "near_duplicate_rows_dropped": rep["near_duplicate_rows_dropped"],
            "rows_out": rep["rows_out"], "train": rep["split"]["train"], "heldout": rep["split"]["heldout"],
            "leakage": rep["leakage"]}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)))
