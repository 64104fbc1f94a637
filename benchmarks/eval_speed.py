"""Evaluation speed: label scoring against batched greedy generation, same model, same rows; and
label scoring's cost per row as the label set grows.

    .venv/bin/python benchmarks/eval_speed.py --run runs/both2 [--rows 500] [--batch-size 16] [--repeats 3]
    .venv/bin/python benchmarks/eval_speed.py --run runs/both2 --labels 9,38,75,150 [--rows 200]
    .venv/bin/python benchmarks/eval_speed.py --run RUN --rows-from RUN/data/heldout.jsonl   (a run on other data)

With --run, the run's fine-tuned adapter is evaluated, with the system prompt it was trained with, on
tickets that run never trained on (its train.jsonl ids excluded) from data/tickets_raw.csv and
data/production_samples.csv, or from --rows-from; without, the base model. The methods (or label counts)
run in turn, --repeats times, and each one's median counts.

"scoring" is LabelScorer.predict as the notebooks call it: constrained decoding's probability of each label
(method "constrained"), by best-first search of the label trie, stopping at the best label; "exact" is the
same scorer with margin=None (every label's log-prob); "joint" is the same scorer with method="joint" (each
label's full likelihood with its end-of-turn, searched with --margin nats), the method the notebooks used
before; all run beside generation, on the same rows.
Default mode, last line JSON: {"scoring_seconds", "generation_seconds" (medians), "ratio" (generation ÷
scoring), "exact_scoring_seconds", "exact_ratio", "joint_seconds", "joint_ratio", "scoring_accuracy",
"generation_accuracy", "joint_accuracy", "equal_accuracy", "rows_answered_differently",
"pruned_vs_exact_labels_differ", "scoring_vs_joint_labels_differ", ...}.
With --labels: the run's labels plus made-up support intents (verb_noun, built deterministically) up to
each count; last line JSON {"labels", "seconds_per_row" (one per count, pruned), "growth" (last count ÷
first), "exact_seconds_per_row", "exact_growth", "joint_seconds_per_row", "joint_growth",
"trie_nodes_run_per_row", ...}.
"""
import argparse
import itertools
import json
import os
import random
import statistics
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars cost time in the loops being timed

from ftplay import data, evaluate, models, prompts, rundir  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VERBS = ["track", "cancel", "change", "check", "report", "update", "request", "reset", "delete", "renew",
         "upgrade", "confirm", "dispute", "transfer", "recover"]
NOUNS = ["order", "invoice", "password", "delivery", "subscription", "address", "payment", "warranty",
         "coupon", "device", "plan", "email", "refund", "return", "login", "card"]


def pick_rows(run, n, seed=0, source=""):
    """n tickets never trained on by `run` (all of them when no run), in a seeded order: from `source` (a file
    of text,label rows, e.g. a run's data/heldout.jsonl) or data/tickets_raw.csv and data/production_samples.csv."""
    rows = data.load(source) if source else \
        data.load(ROOT / "data" / "tickets_raw.csv") + data.load(ROOT / "data" / "production_samples.csv")
    if run:
        trained = data.load_split(run, "train")
        ids, texts = {r["id"] for r in trained}, {r["text"] for r in trained}
        rows = [r for r in rows if r["id"] not in ids and r["text"] not in texts]
    random.Random(seed).shuffle(rows)
    return rows[:n]


def made_up_labels(labels, n):
    """`labels` plus distinct verb_noun support intents (track_order, cancel_invoice, ...) up to n in all,
    nouns varying fastest so that consecutive counts mix verbs and nouns alike."""
    extra = (f"{v}_{o}" for v, o in itertools.product(VERBS, NOUNS))
    fresh = (label for label in extra if label not in labels)
    out = list(labels) + list(itertools.islice(fresh, max(0, n - len(labels))))
    if len(out) < n:
        raise SystemExit(f"--labels asks for {n} labels; at most {len(labels) + len(VERBS) * len(NOUNS)} can be made")
    return out


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def compare(model, tok, labels, texts, truth, a):
    """Label scoring against generation, alternating, a.repeats times each: medians and both accuracies.
    Generation may write as many tokens as the longest label has (end-of-turn included)."""
    sp = a.system_prompt
    methods = {"scoring": evaluate.LabelScorer(model, tok, labels, sp, batch_size=a.batch_size, margin=a.margin),
               "exact": evaluate.LabelScorer(model, tok, labels, sp, batch_size=a.batch_size, margin=None),
               "joint": evaluate.LabelScorer(model, tok, labels, sp, batch_size=a.batch_size, margin=a.margin,
                                             method="joint")}
    longest = max(len(c) for c in methods["scoring"].cand)
    methods["generation"] = evaluate.Generator(model, tok, labels, sp, batch_size=a.batch_size,
                                               max_new_tokens=max(8, longest))
    for m in methods.values():
        m.predict(texts[:a.batch_size])  # warm-up
    secs, preds = {name: [] for name in methods}, {}
    for rep in range(a.repeats):
        for name, m in methods.items():
            sec, preds[name] = timed(lambda: m.predict(texts))
            secs[name].append(sec)
            print(f"{name:<10} run {rep + 1}: {sec:.2f} s", flush=True)
    med = {name: statistics.median(s) for name, s in secs.items()}
    out = {"scoring_seconds": round(med["scoring"], 3), "generation_seconds": round(med["generation"], 3),
           "ratio": round(med["generation"] / med["scoring"], 3), "rows": len(texts), "repeats": a.repeats,
           "batch_size": a.batch_size, "prefix_tokens": methods["scoring"].prefix_tokens, "margin": a.margin,
           "method": methods["scoring"].method,
           "exact_scoring_seconds": round(med["exact"], 3), "exact_ratio": round(med["generation"] / med["exact"], 3),
           "joint_seconds": round(med["joint"], 3), "joint_ratio": round(med["generation"] / med["joint"], 3),
           "trie_nodes_run_per_row": round(methods["scoring"].expanded / len(texts), 2),
           "trie_nodes_exact": len(methods["exact"]._tree()[0])}
    for name, ps in preds.items():
        out[f"{name}_accuracy"] = round(sum(p.label == t for p, t in zip(ps, truth)) / len(ps), 4)
        out[f"{name}_valid_rate"] = round(sum(p.label in labels for p in ps) / len(ps), 4)
    out["equal_accuracy"] = out["scoring_accuracy"] == out["generation_accuracy"]
    out["rows_answered_differently"] = sum(p.label != q.label for p, q in zip(preds["scoring"], preds["generation"]))
    out["pruned_vs_exact_labels_differ"] = sum(p.label != q.label for p, q in zip(preds["scoring"], preds["exact"]))
    out["scoring_vs_joint_labels_differ"] = sum(p.label != q.label for p, q in zip(preds["scoring"], preds["joint"]))
    out["scoring_vs_joint_max_confidence_diff"] = max(abs(p.confidence - q.confidence)
                                                      for p, q in zip(preds["scoring"], preds["joint"]))
    out["pruned_vs_exact_max_confidence_diff"] = max(abs(p.confidence - q.confidence)
                                                     for p, q in zip(preds["scoring"], preds["exact"]))
    out["scoring_with_confidence"] = all(0.0 < p.confidence <= 1.0 for p in preds["scoring"])
    print(f"ratio {out['ratio']:.2f} (generation {med['generation']:.2f} s / scoring {med['scoring']:.2f} s, "
          f"medians of {a.repeats}); accuracy: scoring {out['scoring_accuracy']:.4f}, generation "
          f"{out['generation_accuracy']:.4f}: {'equal' if out['equal_accuracy'] else 'NOT equal'} "
          f"({out['rows_answered_differently']} of {len(texts)} rows answered differently); exact scoring "
          f"{med['exact']:.2f} s (ratio {out['exact_ratio']:.2f}), pruned vs exact: "
          f"{out['pruned_vs_exact_labels_differ']} labels differ, confidence within "
          f"{out['pruned_vs_exact_max_confidence_diff']:.1e}, {out['trie_nodes_run_per_row']} trie nodes run per row "
          f"(joint likelihood's trie: {out['trie_nodes_exact']})")
    print(f"joint likelihood (the notebooks' method before constrained decoding): {med['joint']:.2f} s, ratio "
          f"{out['joint_ratio']:.2f}, accuracy {out['joint_accuracy']:.4f}; "
          f"{out['scoring_vs_joint_labels_differ']} rows labelled differently, confidence within "
          f"{out['scoring_vs_joint_max_confidence_diff']:.1e}")
    return out


def scaling(model, tok, labels, texts, counts, a):
    """Label scoring's seconds per row with each count of labels, counts in turn, a.repeats times: medians."""
    sp = a.system_prompt
    kinds = ("pruned", "exact", "joint")
    scorers = {(n, kind): evaluate.LabelScorer(model, tok, made_up_labels(labels, n), sp, batch_size=a.batch_size,
                                               margin=None if kind == "exact" else a.margin,
                                               method="joint" if kind == "joint" else "constrained")
               for n in counts for kind in kinds}
    for (n, kind), s in scorers.items():
        s.predict(texts[:a.batch_size])  # warm-up
        if kind == "exact":
            print(f"{n:>4} labels: prompt {len(s._prompt_ids(texts[0]))} tokens for the first ticket, shared prefix "
                  f"{s.prefix_tokens}, {len(s._tree()[0])} label-trie tokens per row")
    secs, preds = {k: [] for k in scorers}, {}
    for rep in range(a.repeats):
        for (n, kind), s in scorers.items():
            sec, preds[n, kind] = timed(lambda: s.predict(texts))
            secs[n, kind].append(sec / len(texts))
            print(f"{n:>4} labels {kind:<6} run {rep + 1}: {1000 * secs[n, kind][-1]:.2f} ms/row"
                  + (f", {s.expanded / len(texts):.1f} trie nodes run per row" if kind != "exact" else ""), flush=True)
    per_row = {kind: [statistics.median(secs[n, kind]) for n in counts] for kind in kinds}
    out = {"labels": counts, "seconds_per_row": [round(s, 5) for s in per_row["pruned"]],
           "growth": round(per_row["pruned"][-1] / per_row["pruned"][0], 3),
           "exact_seconds_per_row": [round(s, 5) for s in per_row["exact"]],
           "exact_growth": round(per_row["exact"][-1] / per_row["exact"][0], 3),
           "joint_seconds_per_row": [round(s, 5) for s in per_row["joint"]],
           "joint_growth": round(per_row["joint"][-1] / per_row["joint"][0], 3),
           "joint_trie_nodes_run_per_row": [round(scorers[n, "joint"].expanded / len(texts), 2) for n in counts],
           "rows": len(texts), "repeats": a.repeats, "batch_size": a.batch_size, "margin": a.margin,
           "trie_tokens": [len(scorers[n, "exact"]._tree()[0]) for n in counts],
           "trie_nodes_run_per_row": [round(scorers[n, "pruned"].expanded / len(texts), 2) for n in counts],
           "prefix_tokens": [scorers[n, "exact"].prefix_tokens for n in counts],
           "pruned_vs_exact_labels_differ": [
               sum(p.label != q.label for p, q in zip(preds[n, "pruned"], preds[n, "exact"])) for n in counts]}
    for kind in kinds:
        g = out["growth"] if kind == "pruned" else out[f"{kind}_growth"]
        print(f"{kind} seconds per row: "
              + ", ".join(f"{n} labels {1000 * s:.2f} ms" for n, s in zip(counts, per_row[kind]))
              + f"; {counts[-1]} vs {counts[0]} labels: {g:.2f}x")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="", help="a playbook run directory: evaluate its adapter")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument("--rows-from", default="", help="a file of text,label rows to draw them from (e.g. the run's "
                                                    "data/heldout.jsonl); default: data/'s tickets")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each method (or label count); medians count")
    ap.add_argument("--labels", default="", help="comma-separated label counts, e.g. 9,38,75,150: time label "
                                                 "scoring's seconds per row at each instead of comparing methods")
    ap.add_argument("--margin", type=float, default=15.0, help="the joint method's margin in nats (predict's "
                                                                  "default; constrained scoring needs none)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default")
    a = ap.parse_args()

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.run:
        meta = rundir.read_json(Path(a.run) / "train" / "adapter" / "ftplay_adapter.json")
        ref, adapter = models.resolve(meta["base"]["requested"]), str(Path(a.run) / "train" / "adapter")
        labels = meta["labels"]
        a.system_prompt = meta.get("system_prompt") or prompts.DEFAULT_SYSTEM_PROMPT  # the one it was trained with
    else:
        ref, adapter = models.resolve(a.model), None
        labels = sorted({r["label"] for r in data.load(a.rows_from or ROOT / "data" / "tickets_raw.csv")})
        a.system_prompt = prompts.DEFAULT_SYSTEM_PROMPT
    rows = pick_rows(a.run, a.rows * 2, source=a.rows_from)
    tok = models.load_tokenizer(ref)
    # as curation would (MAX_SEQ_LEN 512): the raw export has planted over-long tickets
    rows = [r for r in rows if len(tok(r["text"])["input_ids"]) <= 400][:a.rows]
    texts, truth = [r["text"] for r in rows], [r["label"] for r in rows]
    model = models.load_model(ref, adapter)
    model.eval()
    print(f"{len(rows)} rows, {len(labels)} labels, adapter={adapter}, {torch.get_num_threads()} threads")
    if a.labels:
        out = scaling(model, tok, labels, texts, [int(n) for n in a.labels.split(",")], a)
    else:
        out = compare(model, tok, labels, texts, truth, a)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
