"""The seed's common mistakes, measured on the run's own data instead of only named.

Mistake 2, leakage: a row-by-row split of the raw export scored by the classical reference, its
held-out rows grouped by what they share with train. Mistake 4, edge cases: the fine-tune's
accuracy on the training rows of a slice against the same slice's held-out and production rows.
"""
import re

import numpy as np

from . import evaluate, quality
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
