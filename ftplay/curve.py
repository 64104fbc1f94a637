"""How many examples are enough: one recipe on growing subsets of the training rows, curated against uncurated.

The seed's "500 hand-curated examples beat 50,000 noisy ones" is a claim about a curve. 04 measures it: the
same recipe fitted on nested, label-stratified subsets of 02's curated training rows, and on subsets of the
same sizes drawn from the raw export (duplicates, conflicting and wrong labels, trivial and over-long rows
as exported; only rows that are the held-out rows' own text are left out, or the raw side would be scored on
rows it trained on), every point scored on the same held-out rows with its 95% interval. The cheap reference
(TF-IDF + logistic regression) runs every time, in seconds; the fine-tune (03's recipe, retrained per point)
when 04's LEARNING_CURVE is on, since it costs several trainings.
"""
import random
import time

from . import progress
from .quality import normalise

KINDS = ("curated", "uncurated")


def sizes_for(n, n_labels, points=4):
    """`points` training-set sizes doubling up to `n` (n/8, n/4, n/2, n for 4), none below 2 rows per label."""
    floor = 2 * n_labels
    out = sorted({max(floor, min(n, round(n / 2 ** k))) for k in range(points - 1, -1, -1)})
    return out


def stratified_order(rows, seed=0):
    """The rows in an order whose every prefix holds each label in about its share: each label's rows are
    shuffled (seeded) and placed at evenly spaced fractional positions, so the subsets are nested."""
    rng = random.Random(seed)
    by = {}
    for r in rows:
        by.setdefault(r["label"], []).append(r)
    keyed = []
    for lab in sorted(by):
        part = by[lab][:]
        rng.shuffle(part)
        offset = rng.random()
        keyed += [((k + offset) / len(part), lab, k, r) for k, r in enumerate(part)]
    return [r for *_, r in sorted(keyed, key=lambda t: t[:3])]


def uncurated_pool(raw, heldout):
    """The raw export's rows as a team would train on them uncurated, less the held-out rows' own texts and rows
    without a label."""
    seen = {normalise(r["text"]) for r in heldout}
    return [r for r in raw if r.get("label") and normalise(r["text"]) not in seen]


def run(fit_score, pools, sizes, seed=0, desc="learning curve"):
    """[{"kind", "size", metrics...}] of `fit_score(rows, name)` (a dict with macro_f1, macro_f1_ci, ...; name
    "<kind>_<size>") on the first `size` rows of each pool's stratified order, `pools`: {kind: rows}; sizes a pool
    cannot fill are skipped."""
    orders = {k: stratified_order(rows, seed) for k, rows in pools.items()}
    todo = [(k, s) for k in pools for s in sizes if s <= len(orders[k])]
    out = []
    bar = progress.bar(total=len(todo), desc=desc, unit="fit")
    for kind, size in todo:
        t0 = time.time()
        m = fit_score(orders[kind][:size], f"{kind}_{size}")
        out.append({"kind": kind, "size": size, **m, "seconds": round(time.time() - t0, 1)})
        bar.update(1)
    bar.close()
    return out


def flattens(points, kind="curated", metric="macro_f1"):
    """The smallest size of `kind` whose score reaches the largest size's 95% interval (more rows of the same
    kind no longer move the score beyond its noise); None with fewer than two points."""
    pts = sorted((p for p in points if p["kind"] == kind and p.get(metric) is not None), key=lambda p: p["size"])
    if len(pts) < 2:
        return None
    lo = pts[-1][f"{metric}_ci"][0]
    return next(p["size"] for p in pts if p[metric] >= lo)


def reading(curves, metric="macro_f1"):
    """Sentences on each system's curve: where the curated curve flattens, and curated against uncurated at the
    largest size both reached (their intervals compared). `curves`: {system: points}."""
    out = []
    for system, points in curves.items():
        cur = sorted((p for p in points if p["kind"] == "curated"), key=lambda p: p["size"])
        if not cur:
            continue
        first, last = cur[0], cur[-1]
        flat = flattens(points, "curated", metric)
        s = (f"{system}: macro-F1 {first[metric]:.3f} on {first['size']} curated rows, {last[metric]:.3f} on "
             f"{last['size']}")
        if flat is not None and flat < last["size"]:
            s += (f"; from {flat} rows on it is within the {last['size']}-row score's interval "
                  f"({last[metric + '_ci'][0]:.3f} to {last[metric + '_ci'][1]:.3f}): more rows of the same kind "
                  "add little")
        elif flat is not None:
            s += "; it still rises at the largest size: more rows of this kind would likely help"
        unc = {p["size"]: p for p in points if p["kind"] == "uncurated"}
        both = [p for p in cur if p["size"] in unc]
        if both:
            c, u = both[-1], unc[both[-1]["size"]]
            d = c[metric] - u[metric]
            apart = c[metric + "_ci"][0] > u[metric + "_ci"][1] or u[metric + "_ci"][0] > c[metric + "_ci"][1]
            s += (f". At {c['size']} rows, curated {c[metric]:.3f} against uncurated {u[metric]:.3f} ({d:+.3f}): "
                  + ("the intervals do not overlap" if apart else "the intervals overlap, so these rows cannot "
                     "tell the two apart"))
        out.append(s + ".")
    return "\n".join(out) if out else "no learning curve was measured"


def record(curves, sizes):
    """04's record of the curves: {"sizes", "systems": {system: points}, "flattens": {system: size}}."""
    return {"sizes": sizes, "systems": curves,
            "flattens": {s: flattens(p) for s, p in curves.items()}}


def scored(y_true, labels, n_boot, seed=0):
    """A `fit_score` tail: predictions on the held-out rows -> the metrics a curve point keeps."""
    from .evaluate import score

    def keep(preds):
        m = score(y_true, preds, labels, n_boot=n_boot, seed=seed)
        return {k: m[k] for k in ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci")}
    return keep


def steps_note(points):
    """How long the points took, in all (a line for the notebook)."""
    total = sum(p.get("seconds", 0) for p in points)
    return f"{len(points)} fits in {total:.0f} s" if total >= 1 else f"{len(points)} fits in under a second"
