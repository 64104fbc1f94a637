"""Evaluation speed: label scoring against batched greedy generation, same model, same 500 rows.

    .venv/bin/python benchmarks/eval_speed.py [--run runs/full1] [--rows 500] [--batch-size 16]

With --run, the run's fine-tuned adapter is evaluated on tickets that run never trained on (its
train.jsonl ids excluded) from data/tickets_raw.csv and data/production_samples.csv; without, the
base model. Each method runs twice (alternated) and its faster run counts. Last line printed: JSON
{"scoring_seconds", "generation_seconds", "ratio" (generation ÷ scoring), "scoring_accuracy",
"generation_accuracy", "scoring_valid_rate", "generation_valid_rate", ...}.
"""
import argparse
import json
import random
import time
from pathlib import Path

from ftplay import data, evaluate, models, prompts, rundir

ROOT = Path(__file__).resolve().parent.parent


def pick_rows(run, n, seed=0):
    """n tickets never trained on by `run` (all of data/ when no run), in a seeded order."""
    rows = data.load(ROOT / "data" / "tickets_raw.csv") + data.load(ROOT / "data" / "production_samples.csv")
    if run:
        trained = data.load_split(run, "train")
        ids, texts = {r["id"] for r in trained}, {r["text"] for r in trained}
        rows = [r for r in rows if r["id"] not in ids and r["text"] not in texts]
    random.Random(seed).shuffle(rows)
    return rows[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="", help="a playbook run directory: evaluate its adapter")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default")
    a = ap.parse_args()

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.run:
        meta = rundir.read_json(Path(a.run) / "train" / "adapter" / "ftplay_adapter.json")
        ref, adapter, labels = models.resolve(meta["base"]["requested"]), str(Path(a.run) / "train" / "adapter"), meta["labels"]
    else:
        ref, adapter = models.resolve(a.model), None
        labels = sorted({r["label"] for r in data.load(ROOT / "data" / "tickets_raw.csv")})
    rows = pick_rows(a.run, a.rows * 2)
    tok = models.load_tokenizer(ref)
    # as curation would (MAX_SEQ_LEN 512): the raw export has planted over-long tickets
    rows = [r for r in rows if len(tok(r["text"])["input_ids"]) <= 400][:a.rows]
    texts, truth = [r["text"] for r in rows], [r["label"] for r in rows]
    model = models.load_model(ref, adapter)
    model.eval()
    sp = prompts.DEFAULT_SYSTEM_PROMPT
    methods = {"scoring": evaluate.LabelScorer(model, tok, labels, sp, batch_size=a.batch_size),
               "generation": evaluate.Generator(model, tok, labels, sp, batch_size=a.batch_size)}
    print(f"{len(rows)} rows, {len(labels)} labels, adapter={adapter}, {torch.get_num_threads()} threads")
    for m in methods.values():
        m.predict(texts[:a.batch_size])  # warm-up
    best, preds = {}, {}
    for rep in range(2):
        for name, m in methods.items():
            t0 = time.perf_counter()
            preds[name] = m.predict(texts)
            sec = time.perf_counter() - t0
            best[name] = min(best.get(name, sec), sec)
            print(f"{name:<10} run {rep + 1}: {sec:.2f} s")
    out = {"scoring_seconds": round(best["scoring"], 3), "generation_seconds": round(best["generation"], 3),
           "ratio": round(best["generation"] / best["scoring"], 3), "rows": len(rows)}
    for name, ps in preds.items():
        valid = [p for p in ps if p.label in labels]
        out[f"{name}_accuracy"] = round(sum(p.label == t for p, t in zip(ps, truth)) / len(ps), 4)
        out[f"{name}_valid_rate"] = round(len(valid) / len(ps), 4)
    out["scoring_with_confidence"] = all(0.0 < p.confidence <= 1.0 for p in preds["scoring"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
