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

Here are the checks every task shares and the verdict; each task (ftplay/tasks/) supplies its own
"beats the base", "against the alternatives" and per-unit floor on its own metrics, and `Task.decide`
puts them together: classification on macro-F1 and every label; the reply task on format validity,
its primary metric and every part of the format.
"""
from dataclasses import dataclass

from .config import GATE_RANGES
from .errors import ConfigError

PASS, BLOCK, NOT_PROVEN = "pass", "block", "not proven"
KNOBS = ("EPOCHS (03): more passes over the data", "LEARNING_RATE (03): 2e-4 is the seed's default for a 7-8B model",
         "LORA_R and TARGET_MODULES (03): more capacity", "examples per label (02: MAX_TRAIN_PER_LABEL, or more rows)")
ENDPOINT_PREFIX = "endpoint"   # 00 names the replaced model's systems endpoint_*


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
        for name, rule in GATE_RANGES.items():
            v = getattr(self, name.lower())
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not rule.holds(v):
                p.append(f"{name}={v!r} must be a number {rule}; set {name} in 04's parameters")
        if isinstance(self.critical_labels, str) or not all(isinstance(x, str) for x in self.critical_labels):
            p.append(f"CRITICAL_LABELS={self.critical_labels!r} must be a list of label names, e.g. ['security']")
        if p:
            raise ConfigError(p, "invalid gate parameters")


def check(name, status, text, field):
    """One check of the gate: its name, pass | block | not proven, the sentence, the record field it read."""
    return {"name": name, "status": status, "text": text, "field": field}


def significant(d, alpha):
    """Whether the paired difference `d` (evaluate.paired_difference) shows A better than B."""
    return d["macro_f1_diff_ci"][0] > 0 and d["mcnemar_p"] < alpha


def alternatives_of(paired):
    """{name: paired difference} of every system but the base that the fine-tune was compared with."""
    return {k[len("finetuned_vs_"):]: d for k, d in paired.items()
            if k.startswith("finetuned_vs_") and k != "finetuned_vs_base"}


def no_alternatives(split):
    """The alternatives check where nothing else was scored on `split`."""
    return check(f"alternatives_{split}", NOT_PROVEN,
                 f"{split}: no other system was scored on these rows; run 00 into this run directory first",
                 f"{split}.paired")


METRIC_WORDS = {"macro_f1": "macro-F1", "field_accuracy": "field accuracy", "chrf": "chrF"}


def replaced_model(paired, metric="macro_f1", teacher=None):
    """The fine-tune against the model it would replace (an endpoint 00 scored: your provider, or the stand-in for
    it), on the task's primary `metric`: passes when it matches (the difference's 95% interval reaches 0) or beats
    it, blocks when the replaced model is better beyond the interval, not proven when it was not scored. Without
    an endpoint, a run trained on that model's request log is read from `teacher` (04's teacher_check: both
    scored against people's labels)."""
    scored = sorted(k[len("finetuned_vs_"):] for k in paired if k.startswith(f"finetuned_vs_{ENDPOINT_PREFIX}"))
    if not scored and (teacher or {}).get("finetuned_minus_teacher") and f"{metric}_diff" in \
            teacher["finetuned_minus_teacher"]:
        return _against_teacher(teacher, metric)
    if not scored:
        return check("replaced_model", NOT_PROVEN,
                     "quality against the model the fine-tune would replace: not measured; set ENDPOINT_URL and "
                     "ENDPOINT_MODEL in 00 (its key in ENDPOINT_API_KEY_ENV) to score it on the same rows",
                     "heldout.paired")
    name, words = scored[0], METRIC_WORDS.get(metric, metric)
    d = paired[f"finetuned_vs_{name}"]
    lo, hi = d.get(f"{metric}_diff_ci") or (None, None)
    if lo is None:
        return check("replaced_model", NOT_PROVEN, f"the replaced model ({name}) was scored, but no paired {words} "
                     "difference was computed on these rows", f"heldout.paired.finetuned_vs_{name}")
    said = (f"the fine-tune's {words} {d[f'a_{metric}']:.3f} against the replaced model's ({name}) "
            f"{d[f'b_{metric}']:.3f} on the same {d['n']} held-out rows, difference {d[f'{metric}_diff']:+.3f} "
            f"(95% CI {lo:+.3f} to {hi:+.3f})")
    field = f"heldout.paired.finetuned_vs_{name}"
    if hi < 0:
        return check("replaced_model", BLOCK, f"it does not match the model it would replace: {said}; keep the "
                     "replaced model, or tune training (03) until the interval reaches 0", field)
    how = "beats" if lo > 0 else "matches (the interval reaches 0)"
    return check("replaced_model", PASS, f"it {how} the model it would replace: {said}", field)


def _against_teacher(teacher, metric):
    d, words = teacher["finetuned_minus_teacher"], METRIC_WORDS.get(metric, metric)
    lo, hi = d[f"{metric}_diff_ci"]
    said = (f"scored against people's labels on the {teacher['rows']} held-out rows they labelled, the fine-tune "
            f"minus the model whose request log it was trained on: {words} {d[f'{metric}_diff']:+.3f} (95% CI "
            f"{lo:+.3f} to {hi:+.3f})")
    field = "teacher_check.finetuned_minus_teacher"
    if hi < 0:
        return check("replaced_model", BLOCK, f"it does not match the model it would replace: {said}; keep that "
                     "model, or tune training (03) until the interval reaches 0", field)
    how = "beats" if lo > 0 else "matches (the interval reaches 0)"
    return check("replaced_model", PASS, f"it {how} the model it would replace: {said}", field)


def held_and_production(results, paired, cfg, task, teacher=None):
    """The checks every task's gate shares, on the task's own metrics (ftplay/tasks/: `beats_base`,
    `alternatives`, `drop_metric`): the fine-tune beats the base and the cheaper alternatives on held-out, the
    replaced model; then on production the same two and the drop from held-out, or "not proven" without
    production rows. Returns (checks, the better alternative or None)."""
    checks, better = [], None
    held, prod = paired.get("heldout") or {}, paired.get("production") or {}
    checks += task.beats_base("heldout", held["finetuned_vs_base"], cfg.alpha)
    found, better = task.alternatives("heldout", held)
    checks += [found, replaced_model(held, task.primary, teacher)]
    if not prod.get("finetuned_vs_base"):
        return checks + [check("production", NOT_PROVEN, "no production samples scored: held-out alone cannot show "
                               "the model holds up; give PRODUCTION_PATH in 02", "production.n")], better
    checks += task.beats_base("production", prod["finetuned_vs_base"], cfg.alpha)
    if len(prod) > 1:
        found, b = task.alternatives("production", prod)
        checks.append(found)
        better = better or b
    metric = task.drop_metric
    ho, pr = results["heldout"]["finetuned"][metric], results["production"]["finetuned"][metric]
    drop = ho - pr
    checks.append(check("production_drop", BLOCK if drop > cfg.max_drop else PASS,
                        f"{task.drop_what} {drop:+.3f} from held-out ({task.show(ho)}) to production ({task.show(pr)}) "
                        f"(limit MAX_DROP={cfg.max_drop:g})"
                        + (f"; the training {task.unlike} not look like production: collect production-like examples"
                           if drop > cfg.max_drop else ""),
                        f"production.systems.finetuned.{metric}"))
    return checks, better


def leakage_check(leakage):
    """04's re-check of the held-out rows against the training rows 03 used: any leak blocks."""
    leaks = {k: v for k, v in (leakage or {}).items() if v}
    return check("leakage", BLOCK if leaks else PASS,
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
