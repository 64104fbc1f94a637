"""The ship gate of notebook 04: the seed's "if fine-tuned doesn't beat base on held-out: stop", and
the rest of what a careful reviewer checks before signing, each check naming the field it reads.

Every check ends in one of three states:
  pass        the evidence is there and says yes
  block       the evidence says no: the verdict is "stop", whatever else passes
  not proven  the evidence is missing (no production rows, the replaced model never scored): the
              verdict is "not proven" and the check says which parameter would prove it
"Beats" means a difference, not a sign: the paired bootstrap interval of the macro-F1 difference
excludes zero and McNemar's exact test is below ALPHA. "Matches" an alternative means the
interval of the difference reaches zero or above: the alternative is not shown to be better.

The reply task (`decide_replies`) has the same rules and the same decision shape on its own metrics
(ftplay/replies.py): the fine-tune must beat the base on format validity (interval of the difference
above zero, McNemar p < ALPHA) and not be worse on chrF; an alternative better on the task's primary
metric (replies.primary: field accuracy for a format with fields, chrF otherwise) beyond its interval blocks; the production drop is measured on validity; a format
part the fine-tune writes in fewer than MIN_PART_RATE of its replies blocks, as a label under
MIN_CLASS_F1 does for classification.
"""
from dataclasses import dataclass

from .errors import ConfigError

PASS, BLOCK, NOT_PROVEN = "pass", "block", "not proven"
KNOBS = ("EPOCHS (03): more passes over the data", "LEARNING_RATE (03): 2e-4 is the seed's default for a 7-8B model",
         "LORA_R and TARGET_MODULES (03): more capacity", "examples per label (02: MAX_TRAIN_PER_LABEL, or more rows)")
ENDPOINT_PREFIX = "endpoint"   # 01 names the replaced model's systems endpoint_*


@dataclass(frozen=True)
class GateConfig:
    """What 04's gate requires; every threshold is a parameter of notebook 04."""
    alpha: float = 0.05              # ALPHA: McNemar p below this counts as a difference
    max_drop: float = 0.15           # MAX_DROP: largest macro-F1 drop from held-out to production
    min_class_f1: float = 0.2        # MIN_CLASS_F1: a label under this F1 (held-out or production) blocks
    critical_labels: tuple = ()      # CRITICAL_LABELS: labels that must reach critical_f1
    critical_f1: float = 0.8         # CRITICAL_F1: their floor
    min_part_rate: float = 0.8       # MIN_PART_RATE (reply task): a format part in fewer fine-tuned replies blocks

    def __post_init__(self):
        p = []
        for name, lo, hi in (("alpha", 0, 0.5), ("max_drop", 0, 1), ("min_class_f1", 0, 1), ("critical_f1", 0, 1),
                             ("min_part_rate", 0, 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                p.append(f"{name.upper()}={v!r} must be a number in [{lo}, {hi}]; set {name.upper()} in 04's parameters")
        if isinstance(self.critical_labels, str) or not all(isinstance(x, str) for x in self.critical_labels):
            p.append(f"CRITICAL_LABELS={self.critical_labels!r} must be a list of label names, e.g. ['security']")
        if p:
            raise ConfigError(p, "invalid gate parameters")


def _check(name, status, text, field):
    return {"name": name, "status": status, "text": text, "field": field}


def _ci(d):
    lo, hi = d["macro_f1_diff_ci"]
    return f"{d['macro_f1_diff']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f})"


def significant(d, alpha):
    """Whether the paired difference `d` (evaluate.paired_difference) shows A better than B."""
    return d["macro_f1_diff_ci"][0] > 0 and d["mcnemar_p"] < alpha


def beats_base(split, d, alpha):
    """The fine-tune against the base model on `split`, paired: a difference, not a sign."""
    field = f"{split}.paired.finetuned_vs_base"
    if significant(d, alpha):
        return _check(f"beats_base_{split}", PASS, f"{split}: fine-tuned beats base by {_ci(d)} macro-F1, McNemar "
                      f"p={d['mcnemar_p']:.2g} < {alpha:g}", field)
    return _check(f"beats_base_{split}", BLOCK,
                  f"{split}: fine-tuned does not beat base: macro-F1 {_ci(d)}, McNemar p={d['mcnemar_p']:.2g} "
                  f"(a difference needs the interval above zero and p < ALPHA={alpha:g}); tune training before "
                  f"anything else: {'; '.join(KNOBS)}", field)


def against_alternatives(split, paired):
    """The fine-tune against every other system scored on the same rows of `split` (01's prompts,
    the classical reference, the replaced model): blocks when one is better beyond its interval."""
    alts = {k[len("finetuned_vs_"):]: d for k, d in paired.items()
            if k.startswith("finetuned_vs_") and k != "finetuned_vs_base"}
    if not alts:
        return _check(f"alternatives_{split}", NOT_PROVEN,
                      f"{split}: no other system was scored on these rows; run 01 into this run directory first",
                      f"{split}.paired"), None
    name, d = max(alts.items(), key=lambda kv: kv[1]["b_macro_f1"])
    field = f"{split}.paired.finetuned_vs_{name}"
    worse = {n: x for n, x in alts.items() if x["macro_f1_diff_ci"][1] < 0}
    if worse:
        name, d = max(worse.items(), key=lambda kv: kv[1]["b_macro_f1"])
        better = {"name": name, "split": split, "macro_f1": d["b_macro_f1"], "finetuned_macro_f1": d["a_macro_f1"],
                  "n": d["n"], "macro_f1_diff": d["macro_f1_diff"], "macro_f1_diff_ci": d["macro_f1_diff_ci"]}
        return _check(f"alternatives_{split}", BLOCK,
                      f"{split}: {name} is better: macro-F1 {d['b_macro_f1']:.3f} against the fine-tune's "
                      f"{d['a_macro_f1']:.3f} on the same {d['n']} rows, difference {_ci(d)}; ship {name} instead, "
                      f"or improve the fine-tune until it matches", f"{split}.paired.finetuned_vs_{name}"), better
    return _check(f"alternatives_{split}", PASS,
                  f"{split}: the fine-tune ({d['a_macro_f1']:.3f}) matches or beats the best other system, {name} "
                  f"({d['b_macro_f1']:.3f}), on the same {d['n']} rows: difference {_ci(d)}", field), None


def replaced_model(paired):
    """Whether the model the fine-tune would replace (an endpoint 01 scored) is among the alternatives."""
    scored = sorted(k[len("finetuned_vs_"):] for k in paired if k.startswith(f"finetuned_vs_{ENDPOINT_PREFIX}"))
    if scored:
        return _check("replaced_model", PASS, f"the replaced model was scored on the same rows ({', '.join(scored)}); "
                      "the comparison above includes it", f"heldout.paired.finetuned_vs_{scored[0]}")
    return _check("replaced_model", NOT_PROVEN,
                  "quality against the model the fine-tune would replace: not measured; set ENDPOINT_URL and "
                  "ENDPOINT_MODEL in 01 (its key in ENDPOINT_API_KEY_ENV) to score it on the same rows",
                  "heldout.paired")


def comparison_rows(paired):
    """The paired comparisons as table rows: split, the other system, rows, both macro-F1s, the
    difference (fine-tune minus other) with its interval, McNemar's p."""
    return [{"split": split, "fine-tune vs": key[len("finetuned_vs_"):], "rows": d["n"],
             "fine-tune F1": round(d["a_macro_f1"], 3), "other F1": round(d["b_macro_f1"], 3),
             "difference": round(d["macro_f1_diff"], 3),
             "95% CI": f"[{d['macro_f1_diff_ci'][0]:+.3f}, {d['macro_f1_diff_ci'][1]:+.3f}]",
             "McNemar p": float(f"{d['mcnemar_p']:.2g}")}
            for split, by in paired.items() for key, d in by.items()]


def read_comparisons(paired):
    """One sentence per split reading the paired comparisons: what the fine-tune beats, what it
    only matches, and what beats it, each beyond or within its 95% interval."""
    out = []
    for split, by in paired.items():
        won, tied, lost = [], [], []
        for key, d in by.items():
            lo, hi = d["macro_f1_diff_ci"]
            (won if lo > 0 else lost if hi < 0 else tied).append(f"{key[len('finetuned_vs_'):]} ({d['macro_f1_diff']:+.3f})")
        where = split.replace("heldout", "held-out")
        text = f"On {where} rows the fine-tune beats " + (", ".join(won) or "nothing")
        if tied:
            text += f"; it cannot be told apart from {', '.join(tied)}"
        text += f"; {', '.join(lost)} beat{'s' if len(lost) == 1 else ''} it." if lost else "; nothing beats it."
        out.append(text)
    return " ".join(out)


def class_table(results, labels):
    """Per-label F1 of the fine-tune and the base, held-out and production side by side, the worst
    label first (its lower F1 of the two splits)."""
    rows = []
    for lab in labels:
        row = {"label": lab}
        for split in ("heldout", "production"):
            ft = (results.get(split) or {}).get("finetuned")
            base = (results.get(split) or {}).get("base")
            pc = (ft or {}).get("per_class", {}).get(lab) or {}
            n = int(pc.get("support", 0))
            row[f"{split}_n"] = n
            row[f"{split}_f1"] = round(pc.get("f1-score", 0.0), 3) if n else None
            row[f"{split}_base_f1"] = round(((base or {}).get("per_class", {}).get(lab) or {}).get("f1-score", 0.0),
                                            3) if n else None
        rows.append(row)
    worst = lambda r: min([v for v in (r["heldout_f1"], r["production_f1"]) if v is not None], default=2.0)
    return sorted(rows, key=lambda r: (worst(r), r["label"]))


def class_floor(table, cfg):
    """Labels whose fine-tuned F1 falls under the floor on a split where they occur: block."""
    low = []
    for r in table:
        floor = cfg.critical_f1 if r["label"] in cfg.critical_labels else cfg.min_class_f1
        where = [f"{s.replace('heldout', 'held-out')} {r[f'{s}_f1']:.2f} on {r[f'{s}_n']} rows"
                 for s in ("heldout", "production") if r[f"{s}_f1"] is not None and r[f"{s}_f1"] < floor]
        if where:
            low.append(f"{r['label']} ({', '.join(where)}; floor {floor:g}"
                       f"{', critical' if r['label'] in cfg.critical_labels else ''})")
    missing = [l for l in cfg.critical_labels if l not in {r["label"] for r in table}]
    if missing:
        low.append(f"critical label(s) {missing} never occur in the scored rows: their F1 is unknown")
    field = "heldout.systems.finetuned.per_class, production.systems.finetuned.per_class"
    if low:
        return _check("class_floor", BLOCK, f"{len(low)} label(s) under the F1 floor (MIN_CLASS_F1={cfg.min_class_f1:g}"
                      f"{', CRITICAL_F1=' + format(cfg.critical_f1, 'g') if cfg.critical_labels else ''}): "
                      f"{'; '.join(low)}; collect and curate more examples of them (02) before shipping", field)
    return _check("class_floor", PASS, f"every label reaches its F1 floor (MIN_CLASS_F1={cfg.min_class_f1:g}) on "
                  "held-out and production", field)


def read_classes(table, cfg):
    """One sentence reading the per-class table for the notebook."""
    floor = lambda r: cfg.critical_f1 if r["label"] in cfg.critical_labels else cfg.min_class_f1
    low = [r for r in table if any(r[f"{s}_f1"] is not None and r[f"{s}_f1"] < floor(r) for s in ("heldout", "production"))]
    if not table:
        return "No labels scored."
    top = table[0]
    text = (f"The worst label is {top['label']}: F1 {_fmt(top['heldout_f1'])} held-out, {_fmt(top['production_f1'])} "
            f"production (base {_fmt(top['heldout_base_f1'])}, {_fmt(top['production_base_f1'])}). ")
    if low:
        return text + (f"{len(low)} of {len(table)} labels fall under their floor ({', '.join(r['label'] for r in low)}): "
                       "the fine-tune rarely or never gets them right, and a model that misses a whole class does not "
                       "ship however good its average is.")
    return text + f"Every label clears its floor ({cfg.min_class_f1:g})."


def _fmt(x):
    return "-" if x is None else f"{x:.2f}"


def held_and_production(results, paired, cfg, beats, alternatives, metric, show, what, unlike):
    """The checks both tasks' gates share, on the task's own `metric`: the fine-tune beats the base and the
    cheaper alternatives on held-out, the replaced model; then on production the same two and the drop from
    held-out, or "not proven" without production rows. `beats(split, d, alpha)` returns a list of checks,
    `alternatives(split, paired)` (check, the better alternative or None). Returns (checks, better)."""
    checks, better = [], None
    held, prod = paired.get("heldout") or {}, paired.get("production") or {}
    checks += beats("heldout", held["finetuned_vs_base"], cfg.alpha)
    check, better = alternatives("heldout", held)
    checks += [check, replaced_model(held)]
    if not prod.get("finetuned_vs_base"):
        return checks + [_check("production", NOT_PROVEN, "no production samples scored: held-out alone cannot show "
                                "the model holds up; give PRODUCTION_PATH in 02", "production.n")], better
    checks += beats("production", prod["finetuned_vs_base"], cfg.alpha)
    if len(prod) > 1:
        check, b = alternatives("production", prod)
        checks.append(check)
        better = better or b
    ho, pr = results["heldout"]["finetuned"][metric], results["production"]["finetuned"][metric]
    drop = ho - pr
    checks.append(_check("production_drop", BLOCK if drop > cfg.max_drop else PASS,
                         f"{what} {drop:+.3f} from held-out ({show(ho)}) to production ({show(pr)}) (limit "
                         f"MAX_DROP={cfg.max_drop:g})" + (f"; the training {unlike} not look like production: collect "
                                                          "production-like examples" if drop > cfg.max_drop else ""),
                         f"production.systems.finetuned.{metric}"))
    return checks, better


def decide(results, paired, cfg=GateConfig(), leakage=None):
    """04's verdict from its own numbers. `results`: {split: {system: evaluate.score metrics}};
    `paired`: {split: {"finetuned_vs_<system>": evaluate.paired_difference}}; `leakage`: the
    re-check's counts. Returns {"ship", "verdict": ship | stop | not proven, "checks", "reasons",
    "better", "classes"}."""
    checks, better = held_and_production(results, paired, cfg, lambda *a: [beats_base(*a)], against_alternatives,
                                         "macro_f1", lambda x: f"{x:.3f}", "macro-F1 drops", "data does")
    labels = results["heldout"]["finetuned"]["confusion"]["labels"]
    table = class_table(results, labels)
    checks.append(class_floor(table, cfg))
    if leakage is not None:
        checks.append(leakage_check(leakage))
    return {**verdict_of(checks), "better": better, "classes": table,
            "config": {"alpha": cfg.alpha, "max_drop": cfg.max_drop, "min_class_f1": cfg.min_class_f1,
                       "critical_labels": list(cfg.critical_labels), "critical_f1": cfg.critical_f1}}


def leakage_check(leakage):
    """04's re-check of the held-out rows against the training rows 03 used: any leak blocks."""
    leaks = {k: v for k, v in (leakage or {}).items() if v}
    return _check("leakage", BLOCK if leaks else PASS,
                  f"held-out rows leak into the training rows 03 used: {leaks}: the held-out score counts rows "
                  "the model was taught; with a given HELDOUT_PATH drop their twins from the training "
                  "file (02 lists them), else re-run 02" if leaks else
                  "no held-out row (or near twin) among the training rows 03 used", "leakage_recheck")


def verdict_of(checks):
    """The verdict of a list of checks: stop on any block, else not proven on any missing piece, else ship."""
    states = {c["status"] for c in checks}
    verdict = "stop" if BLOCK in states else NOT_PROVEN if NOT_PROVEN in states else "ship"
    prefix = {BLOCK: "STOP: ", NOT_PROVEN: "NOT PROVEN: ", PASS: ""}
    return {"ship": verdict == "ship", "verdict": verdict, "checks": checks,
            "reasons": [prefix[c["status"]] + c["text"] for c in checks]}


# ---------------------------------------------------------------- the reply task
REPLY_KNOBS = KNOBS[:3] + ("more training replies (02: the reply rows), or MAX_NEW_TOKENS (04) if replies are cut off",)


METRIC_NAMES = {"chrf": "chrF", "field_accuracy": "field accuracy", "valid_rate": "valid replies"}


def _rci(d, metric):
    lo, hi = d[f"{metric}_diff_ci"]
    if metric == "chrf":
        return f"{d['chrf_diff']:+.1f} (95% CI {lo:+.1f} to {hi:+.1f})"
    return f"{d[f'{metric}_diff']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f})"


def _val(metric, x):
    return f"{x:.1f}" if metric == "chrf" else f"{x:.0%}"


def reply_beats_base(split, d, alpha):
    """The reply fine-tune against the base on `split`, paired: more valid replies (a difference: the
    interval above zero and McNemar p < ALPHA), and, as a second check, chrF not worse beyond its interval."""
    field = f"{split}.paired.finetuned_vs_base"
    valid = (f"{split}: valid replies {d['a_valid_rate']:.0%} fine-tuned vs {d['b_valid_rate']:.0%} base, difference "
             f"{_rci(d, 'valid_rate')}, McNemar p={d['mcnemar_p']:.2g}")
    if d["valid_rate_diff_ci"][0] > 0 and d["mcnemar_p"] < alpha:
        first = _check(f"beats_base_{split}", PASS, f"{valid} < {alpha:g}: the fine-tune beats the base on the format",
                       field)
    else:
        first = _check(f"beats_base_{split}", BLOCK, f"{valid}: not a difference (it needs the interval above zero and "
                       f"p < ALPHA={alpha:g}); tune training before anything else: {'; '.join(REPLY_KNOBS)}", field)
    worse = d["chrf_diff_ci"][1] < 0
    second = _check(f"chrf_vs_base_{split}", BLOCK if worse else PASS,
                    f"{split}: chrF {d['a_chrf']:.1f} fine-tuned vs {d['b_chrf']:.1f} base, difference {_rci(d, 'chrf')}"
                    + (": the fine-tune's replies are further from the references than the base's; a format bought with "
                       "the content is no gain" if worse else ": not worse than the base"), field)
    return [first, second]


def reply_alternatives(split, paired):
    """The reply fine-tune against every other system scored on the same rows of `split`, on the task's primary
    metric (each comparison's "primary"): blocks when one is better beyond its interval (the `better` record
    names the best such system, in classification's shape with the metric named)."""
    alts = {k[len("finetuned_vs_"):]: d for k, d in paired.items()
            if k.startswith("finetuned_vs_") and k != "finetuned_vs_base"}
    if not alts:
        return _check(f"alternatives_{split}", NOT_PROVEN,
                      f"{split}: no other system was scored on these rows; run 01 into this run directory first",
                      f"{split}.paired"), None
    metric = next(iter(alts.values())).get("primary", "chrf")
    what = METRIC_NAMES[metric]
    worse = {n: x for n, x in alts.items() if x[f"{metric}_diff_ci"][1] < 0}
    if worse:
        name, d = max(worse.items(), key=lambda kv: (kv[1][f"b_{metric}"], kv[1]["b_chrf"]))
        better = {"name": name, "split": split, "metric": metric, "value": d[f"b_{metric}"],
                  "finetuned_value": d[f"a_{metric}"], metric: d[f"b_{metric}"], f"finetuned_{metric}": d[f"a_{metric}"],
                  "n": d["n"], f"{metric}_diff": d[f"{metric}_diff"], f"{metric}_diff_ci": d[f"{metric}_diff_ci"]}
        return _check(f"alternatives_{split}", BLOCK,
                      f"{split}: {name} is better: {what} {_val(metric, d[f'b_{metric}'])} against the fine-tune's "
                      f"{_val(metric, d[f'a_{metric}'])} on the same {d['n']} rows, difference {_rci(d, metric)} (valid "
                      f"{d['b_valid_rate']:.0%} vs {d['a_valid_rate']:.0%}, chrF {d['b_chrf']:.1f} vs {d['a_chrf']:.1f}); "
                      f"ship {name} instead, or improve the fine-tune until it matches",
                      f"{split}.paired.finetuned_vs_{name}"), better
    name, d = max(alts.items(), key=lambda kv: (kv[1][f"b_{metric}"], kv[1]["b_chrf"]))
    return _check(f"alternatives_{split}", PASS,
                  f"{split}: the fine-tune ({what} {_val(metric, d[f'a_{metric}'])}) matches or beats the best other "
                  f"system, {name} ({_val(metric, d[f'b_{metric}'])}), on the same {d['n']} rows: difference "
                  f"{_rci(d, metric)}", f"{split}.paired.finetuned_vs_{name}"), None


def part_table(results, splits=("heldout", "production")):
    """Per format part (replies.score's "parts"), the fine-tune's and the base's presence rate on each split,
    the part the fine-tune misses most first (its lower rate of the splits): the reply task's class_table."""
    names = list(((results.get("heldout") or {}).get("finetuned") or {}).get("parts") or {})
    rows = []
    for part in names:
        row = {"part": part}
        for split in splits:
            ft, base = (((results.get(split) or {}).get(k) or {}).get("parts") or {} for k in ("finetuned", "base"))
            got = ft.get(part) or {}
            row[f"{split}_n"] = got.get("n", 0)
            row[f"{split}_rate"] = None if got.get("rate") is None else round(got["rate"], 3)
            b = (base.get(part) or {}).get("rate")
            row[f"{split}_base_rate"] = None if b is None else round(b, 3)
        rows.append(row)
    worst = lambda r: min([r[f"{s}_rate"] for s in splits if r[f"{s}_rate"] is not None], default=2.0)
    return sorted(rows, key=lambda r: (worst(r), r["part"]))


def _low_parts(table, floor):
    return [r for r in table if any(r.get(f"{s}_rate") is not None and r[f"{s}_rate"] < floor
                                    for s in ("heldout", "production"))]


def part_floor(table, cfg):
    """Format parts the fine-tune writes in fewer than MIN_PART_RATE of its replies, on a split: block."""
    low = [f"{r['part']} (" + ", ".join(f"{s.replace('heldout', 'held-out')} {r[f'{s}_rate']:.0%} of {r[f'{s}_n']}"
                                         for s in ("heldout", "production")
                                         if r.get(f"{s}_rate") is not None and r[f"{s}_rate"] < cfg.min_part_rate) + ")"
           for r in _low_parts(table, cfg.min_part_rate)]
    field = "heldout.systems.finetuned.parts, production.systems.finetuned.parts"
    if low:
        return _check("part_floor", BLOCK, f"{len(low)} format part(s) under the floor MIN_PART_RATE="
                      f"{cfg.min_part_rate:g}: {'; '.join(low)}; a reply without them is not in the house format: "
                      "check the training replies (02) and train longer (03)", field)
    return _check("part_floor", PASS, f"every format part is in at least {cfg.min_part_rate:.0%} of the fine-tune's "
                  "replies, held-out and production (MIN_PART_RATE)", field)


def read_parts(table, cfg):
    """One sentence reading the per-part table for the notebook."""
    if not table:
        return "No format parts scored."
    f = lambda x: "-" if x is None else f"{x:.0%}"
    top = table[0]
    text = (f"The part the fine-tune misses most is {top['part']}: in {f(top['heldout_rate'])} of its held-out replies, "
            f"{f(top.get('production_rate'))} of production ones (base {f(top['heldout_base_rate'])}, "
            f"{f(top.get('production_base_rate'))}). ")
    low = _low_parts(table, cfg.min_part_rate)
    if low:
        return text + (f"{len(low)} of {len(table)} parts fall under MIN_PART_RATE={cfg.min_part_rate:g} "
                       f"({', '.join(r['part'] for r in low)}): a reply that drops a part is not in the format, "
                       "however close its words.")
    return text + f"Every part clears MIN_PART_RATE={cfg.min_part_rate:g}."


def decide_replies(results, paired, cfg=GateConfig(), leakage=None):
    """04's verdict on the reply task, in decide's shape. `results`: {split: {system: replies.score metrics}};
    `paired`: {split: {"finetuned_vs_<system>": replies.paired}}; `leakage`: the re-check's counts. Returns
    {"ship", "verdict", "checks", "reasons", "better", "parts", "config"}."""
    checks, better = held_and_production(results, paired, cfg, reply_beats_base, reply_alternatives, "valid_rate",
                                         lambda x: f"{x:.0%}", "valid replies drop", "tickets do")
    table = part_table(results)
    checks.append(part_floor(table, cfg))
    if leakage is not None:
        checks.append(leakage_check(leakage))
    return {**verdict_of(checks), "better": better, "parts": table,
            "config": {"alpha": cfg.alpha, "max_drop": cfg.max_drop, "min_part_rate": cfg.min_part_rate}}
