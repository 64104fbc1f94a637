"""The seed's common mistakes, measured on the run's own data instead of only named.

Mistake 2, leakage: a row-by-row split of the raw export scored by the classical reference, its
held-out rows grouped by what they share with train. Mistake 4, edge cases: the fine-tune's
accuracy on the training rows of a slice against the same slice's held-out and production rows.
Mistake 5, the base model updates: the adapter on its own base, the same adapter loaded on the new
base (what a silent upgrade serves), and a re-fine-tune on the new base, on the same rows.
"""
import re
import warnings
from dataclasses import replace

import numpy as np

from . import evaluate, identity, models, prompts, quality, train
def leakage_demo(raw_rows, grouped_train, grouped_heldout, production, labels, near=0.65, fraction=0.2, seed=0):
    """Mistake 2 ("held-out includes data leaked from training: scores look great, production fails")
    measured with the classical reference, in seconds: the raw export split row by row, as a naive
    split does, TF-IDF trained on it, its held-out rows grouped by what they share with train (a near
    twin with the same label, a twin with another label, none), beside 02's grouped split."""
    order = np.random.default_rng(seed).permutation(len(raw_rows))
    k = int(round(len(raw_rows) * (1 - fraction)))
    train, held = [raw_rows[i] for i in order[:k]], [raw_rows[i] for i in order[k:]]
    twin = {e["id"]: e for e in quality.audit(train, held, near)["near"]}
    group = lambda r: ("no_twin" if r["id"] not in twin else
                       "twin_same_label" if twin[r["id"]]["train_label"] == r["label"] else "twin_other_label")

    def scored(clf, rows):
        p = clf.predict([r["text"] for r in rows])
        return p, evaluate.score([r["label"] for r in rows], p, labels, n_boot=200, seed=seed)

    naive = evaluate.TfidfClassifier(train)
    p, m = scored(naive, held)
    groups = {}
    for name in ("twin_same_label", "twin_other_label", "no_twin"):
        idx = [i for i, r in enumerate(held) if group(r) == name]
        groups[name] = {"n": len(idx), "accuracy": float(np.mean([p[i].label == held[i]["label"] for i in idx]))
                        if idx else None}
    _, mp = scored(naive, production) if production else (None, None)
    grouped = evaluate.TfidfClassifier(grouped_train)
    _, g = scored(grouped, grouped_heldout)
    _, gp = scored(grouped, production) if production else (None, None)
    pick = lambda x: None if x is None else {k: x[k] for k in ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci")}
    return {"rows": len(held), "seed": seed, "groups": groups,
            "row_split": {"heldout": pick(m), "production": pick(mp)},
            "grouped_split": {"heldout": pick(g), "production": pick(gp)}}


def read_leakage(demo):
    """The leakage demonstration in words."""
    g, row, grp = demo["groups"], demo["row_split"], demo["grouped_split"]
    acc = lambda x: "-" if x is None else f"{x:.2f}"
    twins = g["twin_same_label"]["n"] + g["twin_other_label"]["n"]
    text = (f"Split row by row, {twins} of the {demo['rows']} held-out rows have a near twin in train. The "
            f"{g['twin_same_label']['n']} whose twin carries the same label are answered right "
            f"{acc(g['twin_same_label']['accuracy'])} of the time, the {g['no_twin']['n']} with no twin "
            f"{acc(g['no_twin']['accuracy'])}: a leaked row is a question the model has seen with its answer. ")
    if g["twin_other_label"]["n"]:
        text += (f"The {g['twin_other_label']['n']} whose twin carries another label score "
                 f"{acc(g['twin_other_label']['accuracy'])}: the conflicts 02 drops. ")
    if row["production"] and grp["production"]:
        text += (f"Held-out accuracy {acc(row['heldout']['accuracy'])} (row split) vs {acc(grp['heldout']['accuracy'])} "
                 f"(02's grouped split); on production {acc(row['production']['accuracy'])} vs "
                 f"{acc(grp['production']['accuracy'])}. ")
        gap = row["heldout"]["accuracy"] - row["production"]["accuracy"]
        text += (f"The row split promises {gap:+.2f} more than production delivers." if gap > 0 else
                 "On this export the leaked rows are too few (and too often conflicting) to lift the whole held-out "
                 "score above production's: the per-group figures are where the leak shows.")
    return text


def reply_leakage_demo(raw_rows, grouped_train, grouped_heldout, production, fmt, near=0.65, fraction=0.2, seed=0):
    """Mistake 2 on the reply task, measured with the canned-reply reference (replies.NearestReply) in seconds:
    the raw export split row by row, its held-out rows grouped by whether a near twin sits in train, their
    chrF and field accuracy, beside 02's grouped split and production. The analogue of `leakage_demo`."""
    from . import replies

    order = np.random.default_rng(seed).permutation(len(raw_rows))
    k = int(round(len(raw_rows) * (1 - fraction)))
    train, held = [raw_rows[i] for i in order[:k]], [raw_rows[i] for i in order[k:]]
    twins = {e["id"] for e in quality.audit(train, held, near)["near"]}
    pick = lambda m: None if m is None else {k: m[k] for k in ("chrf", "chrf_ci", "valid_rate", "field_accuracy")}

    def scored(train_rows, rows):
        return replies.run_system(replies.NearestReply(train_rows), rows, fmt, n_boot=200, seed=seed) if rows else (None, None)

    m, outs = scored(train, held)
    s = replies.row_scores(held, outs, fmt)
    groups = {}
    for name, keep in (("near_twin", lambda r: r["id"] in twins), ("no_twin", lambda r: r["id"] not in twins)):
        idx = [i for i, r in enumerate(held) if keep(r)]
        groups[name] = {"n": len(idx), "chrf": float(s["chrf"][idx].mean()) if idx else None,
                        "field_accuracy": float(s["fields"][idx].mean()) if idx and fmt.fields else None}
    return {"rows": len(held), "seed": seed, "groups": groups,
            "row_split": {"heldout": pick(m), "production": pick(scored(train, production)[0])},
            "grouped_split": {"heldout": pick(scored(grouped_train, grouped_heldout)[0]),
                              "production": pick(scored(grouped_train, production)[0])}}


def read_reply_leakage(demo):
    """The reply task's leakage demonstration in words."""
    g, row, grp = demo["groups"], demo["row_split"], demo["grouped_split"]
    f = lambda x: "-" if x is None else f"{x:.1f}"
    text = (f"Split row by row, {g['near_twin']['n']} of the {demo['rows']} held-out tickets have a near twin in train: "
            f"the canned reply of the nearest training ticket scores chrF {f(g['near_twin']['chrf'])} on them, "
            f"{f(g['no_twin']['chrf'])} on the {g['no_twin']['n']} without one. Held-out chrF {f(row['heldout']['chrf'])} "
            f"(row split) vs {f(grp['heldout']['chrf'])} (02's grouped split)")
    if row["production"]:
        text += f"; on production {f(row['production']['chrf'])} vs {f(grp['production']['chrf'])}"
    return text + ". A leaked ticket is a question whose reply was in the training data."


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
        row = {"pattern": pattern if name == "edge-case pattern" else None, "train_rows": len(tr), "train": {"n": len(sample), "accuracy": float(np.mean(
            [a.label == r["label"] for a, r in zip(p, sample)])) if sample else None}}
        for split, rows in splits.items():
            idx = [i for i, r in enumerate(rows) if keep(r)]
            row[split] = {"n": len(idx), "accuracy": float(np.mean([preds[split][i].label == rows[i]["label"]
                                                                    for i in idx])) if idx else None}
        out[name] = row
    return out


def read_edge_cases(edge):
    """The edge-case demonstration in words: memorised (train far above held-out and production) or not."""
    acc = lambda x: "-" if x is None else f"{x:.2f}"
    parts = []
    for name, r in edge.items():
        t, h, p = (r["train"]["accuracy"], (r.get("heldout") or {}).get("accuracy"),
                   (r.get("production") or {}).get("accuracy"))
        if t is not None and h is not None and t - h > 0.2:
            reading = "memorised: right on the rows it was taught, not on new ones"
        elif h is not None and p is not None and h - p > 0.15:
            reading = ("learned for rows like the training data, but production's cases differ: the distribution "
                       "mismatch the seed warns of")
        elif t is not None and t < 0.5:
            reading = "not learned: wrong even on the rows it was taught"
        else:
            reading = "learned: about as right on new rows as on the taught ones"
        parts.append(f"{name} ({r['train_rows']} training rows): train {acc(t)}, held-out {acc(h)}, production "
                     f"{acc(p)}; {reading}.")
    return " ".join(parts)


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
            warnings.filterwarnings("ignore", message="WARNING: Unsloth should be imported before", category=UserWarning)
        res = train.train(replace(cfg, save_steps=0, logging_steps=max(cfg.logging_steps, 40)), new_ref, msgs, None,
                          out_dir, resume=False)
    train.write_adapter_meta(res.adapter_dir, new_ref, labels, system_prompt)
    fresh = scored(models.load_model(new_ref, res.adapter_dir))
    old = evaluate.score(y, old_preds, labels, n_boot=n_boot)
    pick = lambda m: {k: m[k] for k in ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci")}
    return {"old_base": f"{old_ref.requested}@{old_ref.revision}", "new_base": f"{new_ref.requested}@{new_ref.revision}",
            "check": {"changed": check.changed, "message": check.message}, "rows": len(heldout),
            "systems": {"adapter on its own base": pick(old), "same adapter on the new base": pick(stale),
                        "re-fine-tuned on the new base": pick(fresh)},
            "refit": {"adapter_dir": str(res.adapter_dir), "steps": res.steps, "seconds": res.seconds}}


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
