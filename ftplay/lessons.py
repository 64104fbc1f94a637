"""The seed's common mistakes, measured on the run's own data instead of only named.

Mistake 2, leakage: a row-by-row split of the raw export (`row_split`) scored by each task's cheap
reference, its held-out rows grouped by what they share with train (the task's `leakage_demo`).
Mistake 4, edge cases: the fine-tune's accuracy on the training rows of a slice against the same slice's
held-out and production rows.
Mistake 5, the base model updates: the adapter on its own base, the same adapter loaded on the new
base (what a silent upgrade serves), and a re-fine-tune on the new base, on the same rows.
"""
import re
import warnings
from dataclasses import replace

import numpy as np

from . import evaluate, identity, models, prompts, train


def row_split(raw_rows, fraction=0.2, seed=0):
    """The raw export split row by row, as a naive split does: (train, held-out), `fraction` held out."""
    order = np.random.default_rng(seed).permutation(len(raw_rows))
    k = int(round(len(raw_rows) * (1 - fraction)))
    return [raw_rows[i] for i in order[:k]], [raw_rows[i] for i in order[k:]]


def edge_cases(train_rows, splits, preds, predict, pattern, labels, max_train=80, seed=0):
    """Mistake 4 ("5 examples of an edge case: the model memorises them; production has different
    edge cases") measured: the fine-tune's accuracy on the training rows of an edge-case slice (what it
    was taught), on the held-out and production rows of the same slice, for the rows matching
    `pattern` (a regex) and for the label with the fewest training rows. `preds`: {split: fine-tuned
    predictions, one per row of splits[split]}; `predict`: texts -> predictions (the fine-tune)."""
    rx = re.compile(pattern, re.IGNORECASE) if pattern else None
    counts = {lab: sum(r["label"] == lab for r in train_rows) for lab in labels}
    rarest = min(labels, key=lambda lab: (counts[lab], lab))
    slices = {f"rarest label ({rarest})": lambda r: r["label"] == rarest}
    if rx:
        slices["edge-case pattern"] = lambda r: bool(rx.search(r["text"]))
    rng = np.random.default_rng(seed)
    out = {}
    for name, keep in slices.items():
        tr = [r for r in train_rows if keep(r)]
        sample = [tr[i] for i in sorted(rng.permutation(len(tr))[:max_train])]
        p = predict([r["text"] for r in sample]) if sample else []
        right = [a.label == r["label"] for a, r in zip(p, sample)]
        row = {"pattern": pattern if name == "edge-case pattern" else None, "train_rows": len(tr),
               "train": {"n": len(sample), "accuracy": float(np.mean(right)) if sample else None}}
        for split, rows in splits.items():
            idx = [i for i, r in enumerate(rows) if keep(r)]
            row[split] = {"n": len(idx), "accuracy": float(np.mean([preds[split][i].label == rows[i]["label"]
                                                                    for i in idx])) if idx else None}
        out[name] = row
    return out


def read_edge_cases(edge):
    """The edge-case demonstration in words: memorised (train far above held-out and production) or not."""
    def acc(x):
        return "-" if x is None else f"{x:.2f}"
    parts = []
    for name, r in edge.items():
        t, h, p = (r["train"]["accuracy"], (r.get("heldout") or {}).get("accuracy"),
                   (r.get("production") or {}).get("accuracy"))
        if t is not None and h is not None and t - h > 0.2:
            reading = "memorised: right on the rows it was taught, not on new ones"
        elif p is not None and max(x for x in (t, h, p) if x is not None) - p > 0.15:
            # production below what it was taught or scored on held-out (0.59 / 0.56 -> 0.41: a drop of 0.18)
            reading = ("learned for rows like the training data, but production's cases differ: the distribution "
                       "mismatch the seed warns of")
        elif t is not None and t < 0.5:
            reading = "not learned: wrong even on the rows it was taught"
        else:
            reading = "learned: about as right on new rows as on the taught ones"
        parts.append(f"{name} ({r['train_rows']} training rows): train {acc(t)}, held-out {acc(h)}, production "
                     f"{acc(p)}; {reading}.")
    return " ".join(parts)


def edge_table(edge):
    """The edge-case demonstration as a table: {slice: {"train rows", "<split> accuracy", ...}}."""
    return {name: {"train rows": r["train_rows"], **{f"{s} accuracy": (r.get(s) or {}).get("accuracy")
                                                    for s in ("train", "heldout", "production")}}
            for name, r in edge.items()}


def record(leakage=None, edge_cases=None, base_update=None):
    """04's record of the lessons it measured (None where one did not run)."""
    return {"leakage": leakage, "edge_cases": edge_cases, "base_update": base_update}


def base_update(old_ref, new_ref, adapter, cfg, train_rows, heldout, labels, system_prompt, old_preds, out_dir,
                batch_size=32, n_boot=200, method="constrained"):
    """Mistake 5 ("your fine-tune is on 3.1, Llama 3.3 ships") measured on `heldout`: the adapter on the
    base it was trained on (`old_preds`, 04's scores), the same adapter loaded on `new_ref` (what a
    silent base upgrade serves; the pre-flight check says it no longer fits), and the same recipe
    `cfg` re-trained on `new_ref` from `train_rows` into `out_dir`, each scored by label scoring's `method`."""
    check = identity.check_base(adapter, new_ref)
    tok = models.load_tokenizer(new_ref)
    y = [r["label"] for r in heldout]

    def scored(model):
        scorer = evaluate.LabelScorer(model, tok, labels, system_prompt, batch_size=batch_size, method=method)
        return evaluate.score(y, scorer.predict([r["text"] for r in heldout]), labels, n_boot=n_boot)

    stale = scored(models.load_model(new_ref, adapter))
    msgs = [prompts.messages(r["text"], labels, r["label"], system_prompt=system_prompt) for r in train_rows]
    with warnings.catch_warnings():
        if not train._gpu_present():  # Unsloth's CPU fallback is the stock transformers path: import order is moot
            warnings.filterwarnings("ignore", message="WARNING: Unsloth should be imported before",
                                    category=UserWarning)
        res = train.train(replace(cfg, save_steps=0, logging_steps=max(cfg.logging_steps, 40)), new_ref, msgs, None,
                          out_dir, resume=False)
    train.write_adapter_meta(res.adapter_dir, new_ref, labels, system_prompt)
    fresh = scored(models.load_model(new_ref, res.adapter_dir))
    old = evaluate.score(y, old_preds, labels, n_boot=n_boot)
    def pick(m):
        return {k: m[k] for k in ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci")}
    return {"old_base": f"{old_ref.requested}@{old_ref.revision}",
            "new_base": f"{new_ref.requested}@{new_ref.revision}",
            "check": {"changed": check.changed, "message": check.message}, "rows": len(heldout),
            "systems": {"adapter on its own base": pick(old), "same adapter on the new base": pick(stale),
                        "re-fine-tuned on the new base": pick(fresh)},
            "refit": {"adapter_dir": str(res.adapter_dir), "steps": res.steps, "seconds": res.seconds}}


def fit_and_predict(ref, cfg, train_rows, heldout, labels, system_prompt, out_dir, batch_size=32,
                    method="constrained"):
    """03's recipe `cfg` trained on `train_rows` into `out_dir` (no checkpoints), then its label-scoring predictions on
    `heldout` (a learning-curve point)."""
    msgs = [prompts.messages(r["text"], labels, r["label"], system_prompt=system_prompt) for r in train_rows]
    with warnings.catch_warnings():
        if not train._gpu_present():
            warnings.filterwarnings("ignore", message="WARNING: Unsloth should be imported before",
                                    category=UserWarning)
        res = train.train(replace(cfg, save_steps=0, logging_steps=max(cfg.logging_steps, 40)), ref, msgs, None,
                          out_dir, resume=False)
    scorer = evaluate.LabelScorer(models.load_model(ref, res.adapter_dir), models.load_tokenizer(ref), labels,
                                  system_prompt, batch_size=batch_size, method=method)
    return scorer.predict([r["text"] for r in heldout])


def read_base_update(demo):
    """The base-update demonstration in words."""
    s = demo["systems"]
    old, stale, fresh = (s["adapter on its own base"]["macro_f1"], s["same adapter on the new base"]["macro_f1"],
                         s["re-fine-tuned on the new base"]["macro_f1"])
    return (f"The pre-flight check on the new base: {demo['check']['message']}. Loaded anyway, the adapter trained on "
            f"{demo['old_base']} scores macro-F1 {stale:.3f} on {demo['new_base']}, against {old:.3f} on its own base: "
            f"its weights are deltas to weights that are gone. The same recipe re-trained on the new base "
            f"({demo['refit']['steps']} steps, {demo['refit']['seconds']:.0f} s) scores {fresh:.3f}. A new base means "
            "a new fine-tune, and a new comparison against the new base.")
