"""Decide stage: should this task be fine-tuned at all? The seed's rules as a checklist, answered
from measurements wherever the run has them.

Fine-tune only after prompting with good examples, structured output, retrieval and routing have
been tried, and only for a reason prompting cannot fix: a narrow high-volume task (cost), a format
or style, or domain vocabulary; with 500-2,000 curated examples (fewer than ~200: collect first).
Notebook 00's record is the evidence: each prompting system it scored counts as that option tried,
the TF-IDF reference's confidence curve as routing tried, its curated row count as the examples you
have. A question neither measured nor answered stays unknown, and unknown is not "tried". A cheap
classifier that already reaches the target ends it: ship the classifier.
"""
from dataclasses import dataclass

from . import curve, numbers
from .errors import ConfigError
from .stages import REPLY

REASONS = {"narrow_high_volume": "a narrow, high-volume task where a small model cuts the cost",
           "format_or_style": "a format or style prompting cannot hold",
           "domain_vocabulary": "domain vocabulary the base model does not know",
           "none": "no reason to fine-tune"}
CHEAPER = {"tried_prompting": "prompt engineering", "tried_few_shot": "prompting with good examples (few-shot)",
           "tried_structured_output": "structured output (JSON schema / constrained decoding)",
           "tried_retrieval": "retrieval (RAG)", "tried_routing": "routing (a cheap model first, escalate the rest)"}
MIN_EXAMPLES, GOOD_EXAMPLES = 200, (500, 2_000)   # the seed's figures
ROUTING_ACCURACY = 0.9   # routing "works" when the kept share reaches this accuracy (06's TARGET_ACCURACY default)


@dataclass(frozen=True)
class Checklist:
    """What you know before fine-tuning; quality is macro-F1 on held-out data, 0-1."""
    task_type: str = "classification"
    monthly_requests: int = 3_000_000
    tokens_per_request: int = 1_000
    tried_prompting: bool | None = None          # None: unknown, unless 00 measured it
    tried_few_shot: bool | None = None
    tried_structured_output: bool | None = None
    tried_retrieval: bool | None = None
    tried_routing: bool | None = None
    reason: str = "narrow_high_volume"
    current_quality: float | None = None         # your best prompt's macro-F1; None: not measured
    target_quality: float = 0.85
    labeled_examples: int | None = None          # None: 00's curated row count

    def __post_init__(self):
        p = []
        if not isinstance(self.task_type, str) or not self.task_type.strip():
            p.append(f"TASK_TYPE={self.task_type!r} must name the task, e.g. 'classification'")
        if self.reason not in REASONS:
            p.append(f"REASON={self.reason!r} is not one of {list(REASONS)}; set REASON in the parameters cell")
        for name in ("monthly_requests", "tokens_per_request", "labeled_examples"):
            v = getattr(self, name)
            if v is None and name == "labeled_examples":
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                p.append(f"{name.upper()}={v!r} must be a whole number >= 0; set {name.upper()} in the parameters cell")
        for name in CHEAPER:
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                p.append(f"{name.upper()}={getattr(self, name)!r} must be True, False or None (unknown)")
        if not isinstance(self.target_quality, (int, float)) or not 0 < self.target_quality <= 1:
            p.append(f"TARGET_QUALITY={self.target_quality!r} must be a macro-F1 in (0, 1]")
        if self.current_quality is not None and (not isinstance(self.current_quality, (int, float))
                                                 or not 0 <= self.current_quality <= 1):
            p.append(f"CURRENT_QUALITY={self.current_quality!r} must be a macro-F1 in [0, 1], or None")
        if p:
            raise ConfigError(p, "invalid checklist")


def metric(baselines):
    """The quality 01 reads from 00's record: macro-F1 for triage; for the reply task (00's `task`), the
    share of replies in the house format, the thing prompting must hold for "format or style"."""
    return "valid_rate" if (baselines or {}).get("task") == REPLY else "macro_f1"


METRIC_NAMES = {"macro_f1": "macro-F1", "valid_rate": "replies in format"}
NOT_APPLICABLE = {  # the reply task: options with nothing to try for a generated reply
    "tried_structured_output": "not applicable to a free-text reply: its fixed lines are in the prompt (zero_shot), "
                               "the facts it restates cannot be constrained",
    "tried_routing": "not applicable: a generated reply carries no confidence to route on"}


def best_baseline(baselines):
    """(name, quality) of 00's best prompting system, or None when 00 has not run."""
    if not baselines:
        return None
    m = metric(baselines)
    best = baselines.get("best") or {}
    if best.get(m) is not None:
        return best.get("name", "best"), best[m]
    scored = [(n, s.get(m)) for n, s in (baselines.get("systems") or {}).items()
              if s.get(m) is not None and n not in ("tfidf_logreg", "nearest_reply")]
    return max(scored, key=lambda t: t[1]) if scored else None


def replaced_words(baselines, name):
    """' (what it is)' when 00's system `name` is the model the fine-tune would replace (00's `replaced` record:
    the stand-in for the hosted model, or your endpoint), else ''."""
    replaced = (baselines or {}).get("replaced") or {}
    return f" ({replaced['name']})" if replaced.get("name") and name.startswith("endpoint") else ""


def quality_ci(baselines):
    """The 95% interval of 00's best prompt on 01's metric, or None when 00 recorded none."""
    best = (baselines or {}).get("best") or {}
    key = "valid_ci" if metric(baselines) == "valid_rate" else "macro_f1_ci"
    return best.get(key) or ((baselines or {}).get("systems") or {}).get(best.get("name"), {}).get(key)


def reference_quality(baselines):
    """00's cheap reference (the TF-IDF classifier; a canned reply for the reply task) on 01's metric."""
    return ((baselines or {}).get("reference") or {}).get(metric(baselines))


def measured_options(baselines):
    """{checklist field: what 00 measured that counts as that cheaper option tried}."""
    if not baselines:
        return {}
    sys = baselines.get("systems") or {}
    m = metric(baselines)

    def f1(n):
        return f"{n} {METRIC_NAMES[m]} {sys[n][m]:.3f}"

    out = {}
    if "zero_shot" in sys:
        out["tried_prompting"] = f"00 scored {f1('zero_shot')}"
    fixed = [n for n in ("few_shot_fixed", "few_shot_retrieved") if n in sys]
    if fixed:
        out["tried_few_shot"] = f"00 scored {', '.join(f1(n) for n in fixed)}"
    if "few_shot_retrieved" in sys:
        out["tried_retrieval"] = f"00 scored {f1('few_shot_retrieved')} (nearest training tickets in the prompt)"
    if m == "valid_rate":
        return out | NOT_APPLICABLE
    constrained = [n for n in sys if n not in ("tfidf_logreg",) and not n.startswith("free_text")]
    if constrained:
        free = [n for n in sys if n.startswith("free_text")]
        out["tried_structured_output"] = (f"00 constrained the answer to the label set ({', '.join(constrained)})"
                                          + (f"; free text beside it: {f1(free[0])}, valid "
                                             f"{sys[free[0]].get('valid_rate', 0):.0%}" if free else ""))
    ref = baselines.get("reference") or {}
    if ref.get("selective_curve"):
        said = routing_reading(ref["selective_curve"], ROUTING_ACCURACY, ref.get("name"))[1]
        out["tried_routing"] = f"00 measured {said}"
    return out


def routing_reading(curve, target, who):
    """(the curve's point routing would use, or None; the sentence that reads it): the smallest escalated share whose
    kept rows reach `target` accuracy, read against the interval of that accuracy. 01 and the report read 00's
    cheap classifier (`who`) with it, so both say the same of routing."""
    reach = [p for p in curve or () if p.get("accuracy_kept") is not None and p["escalated"] < 1
             and p["accuracy_kept"] >= target]
    if not reach:
        return None, f"{who} first: no escalated share keeps accuracy {target:g} on the rest"
    p = reach[0]
    side = numbers.against(p["accuracy_kept"], p.get("accuracy_kept_ci"), target)[0]
    shown = numbers.interval(p["accuracy_kept"], p["accuracy_kept_ci"]) if p.get("accuracy_kept_ci") else \
        f"{p['accuracy_kept']:.3f}"
    kept = f"on the {p['kept']} kept rows" if p.get("kept") else "on the rest"
    how = (f"the target {target:g} is inside that interval, so these rows do not show it is reached"
           if side == "unclear" else f"target {target:g}")
    return p, f"{who} first: escalating {p['escalated']:.0%} keeps accuracy {shown} {kept} ({how})"


def assess(checklist, baselines=None):
    """{"proceed", "recommendation", "reasons", "todo", "quality", "quality_source", "tried",
    "labeled_examples"}: proceed only when the cheaper options were tried (measured by 00, or
    answered) and fall short, no cheap classifier reaches the target, there is a fine-tuning reason,
    and there are enough labelled examples."""
    c = checklist
    reasons, todo, stops = [], [], []
    measured = best_baseline(baselines)
    evidence = measured_options(baselines)
    if measured:
        quality, source = measured[1], f"measured: 00's best prompt '{measured[0]}'" + \
            replaced_words(baselines, measured[0])
    else:
        quality, source = c.current_quality, "stated: CURRENT_QUALITY" if c.current_quality is not None else None
    if not baselines:
        reasons.append("no measured baselines: 00_baseline_prompting.json is not in RUN_DIR yet (a full run executes "
                       "00 before 01); run 00 and re-run 01 to decide from measurements")

    # ---- 1. cheaper options first: measured by 00, or answered in the parameters cell
    tried = {}
    for name, label in CHEAPER.items():
        said = getattr(c, name)
        if name in evidence:
            applicable = evidence[name] != NOT_APPLICABLE.get(name)
            tried[name] = {"tried": True if applicable else None, "source": evidence[name],
                           **({} if applicable else {"applicable": False})}
        elif said is None:
            tried[name] = {"tried": None, "source": "unknown: not measured, not answered"}
        else:
            tried[name] = {"tried": said, "source": f"answered: {name.upper()}={said}"}
    for name, t in tried.items():
        state = 'not applicable' if t.get("applicable") is False else 'tried' if t['tried'] else \
            'unknown' if t['tried'] is None else 'not tried'
        reasons.append(f"{CHEAPER[name]}: {state} ({t['source']})")
    untried = [CHEAPER[n] for n, t in tried.items() if not t["tried"] and t.get("applicable") is not False]
    if untried:
        stops.append("try the cheaper options first")
        reasons.append(f"cheaper options not tried or unknown: {', '.join(untried)}")
        todo += [f"try {u}, or answer {n.upper()} in the parameters cell" for n, u in CHEAPER.items() if u in untried]
        if not baselines:
            todo.append("or run 00_baseline_prompting and re-run 01: it measures most of them")
    q = METRIC_NAMES[metric(baselines)]
    side, words = (None, "") if quality is None else numbers.against(quality, quality_ci(baselines), c.target_quality)
    if side == "below":
        reasons.append(f"prompting falls short: best prompt {q} {words} ({source})")
    elif side == "unclear":
        reasons.append(f"prompting may or may not reach the target: best prompt {q} {words} ({source}); more held-out "
                       "rows would tell, so the fine-tune still has to beat it (04)")
    elif quality is not None:
        if c.reason == "narrow_high_volume":
            reasons.append(f"prompting already reaches the target ({q} {quality:.3f}): fine-tune only to cut "
                           "cost, and only if it keeps that quality")
        else:
            stops.append("ship the prompt")
            reasons.append(f"prompting already reaches the target ({q} {quality:.3f} >= {c.target_quality:.3f}) "
                           "and the reason is not cost: ship the prompt")
    ref = (baselines or {}).get("reference") or {}
    if metric(baselines) == "valid_rate" and ref:
        field_accuracy = ref.get("field_accuracy")
        reasons.append(f"a canned reply ({ref.get('name')}: the reply of the nearest training ticket) is in format "
                       f"{ref.get('valid_rate', 0):.0%} of the time but restates another ticket: field accuracy "
                       f"{field_accuracy if field_accuracy is None else format(field_accuracy, '.3f')}, "
                       f"chrF {ref.get('chrf', float('nan')):.1f} (00); the fine-tune must beat it on what the reply "
                       "gets right (04)")
    elif ref.get("macro_f1") is not None:
        side, words = numbers.against(ref["macro_f1"], ref.get("macro_f1_ci"), c.target_quality)
        if side == "above":
            stops.insert(0, "ship the classifier")
            reasons.append(f"a cheap classifier already reaches the target: {ref.get('name')} macro-F1 {words} on "
                           f"{baselines.get('n')} held-out rows (00); it runs on a CPU for a fraction of any LLM's "
                           "cost: ship the classifier")
        elif side == "unclear":
            reasons.append(f"the cheap classifier may already reach the target: {ref.get('name')} macro-F1 {words} "
                           f"(00); score it on more held-out rows before training, and the fine-tune must beat it to "
                           "ship (04)")
        else:
            reasons.append(f"the cheap classifier falls short too: {ref.get('name')} macro-F1 {words} (00); the "
                           "fine-tune must beat it to ship (04)")

    # ---- 2. a reason prompting cannot fix
    if c.reason == "none":
        stops.append("keep improving the prompt")
        reasons.append("no fine-tuning reason (narrow high-volume task, format or style, domain vocabulary)")
        todo.append("keep improving the prompt, examples and retrieval")
    else:
        reasons.append(f"reason: {REASONS[c.reason]}")
    if c.reason == "narrow_high_volume":
        tokens = c.monthly_requests * c.tokens_per_request
        reasons.append(f"volume: {c.monthly_requests:,} requests x {c.tokens_per_request:,} tokens = "
                       f"{tokens / 1e6:,.0f}M tokens a month")

    # ---- 3. enough curated examples: counted by 00, or stated
    lo, hi = GOOD_EXAMPLES
    n = c.labeled_examples if c.labeled_examples is not None else (baselines or {}).get("rows_out")
    where = "stated: LABELED_EXAMPLES" if c.labeled_examples is not None else "counted: 00's curated rows"
    if n is None:
        stops.append("count the examples")
        reasons.append("labelled examples: unknown (set LABELED_EXAMPLES, or run 00 and re-run 01 to count them)")
        todo.append("run 00 (it counts the curated rows), or set LABELED_EXAMPLES")
    elif n < MIN_EXAMPLES:
        stops.append("collect more examples")
        reasons.append(f"only {n} labelled examples ({where}; fewer than ~{MIN_EXAMPLES})")
        todo.append(f"collect and curate more examples first: {lo:,}-{hi:,} is the target")
    elif n < lo:
        reasons.append(f"{n} labelled examples ({where}): enough to start, "
                       f"below the {lo:,}-{hi:,} that usually suffice")
        todo.append(f"grow the set towards {lo:,} curated examples")
    else:
        reasons.append(f"{n:,} labelled examples ({where}; the seed's range is {lo:,}-{hi:,} curated)")
    learning = (baselines or {}).get("learning_curve")
    if learning and learning.get("systems"):
        reasons.append(f"how many are enough, 00's learning curve: {curve.reading(learning['systems'])}")

    proceed = not stops
    if proceed:
        todo.append("ship only if it wins on cost AND quality against every alternative: 04_evaluate (quality), "
                    "06_compare_costs (cost)")
    return {"proceed": proceed, "recommendation": "fine-tune" if proceed else stops[0], "reasons": reasons,
            "todo": todo, "quality": quality, "quality_source": source, "tried": tried, "labeled_examples": n}


def report(verdict):
    """The verdict as text: the answer, why, and what to do next."""
    lines = ["PROCEED: fine-tune" if verdict["proceed"] else f"DO NOT fine-tune: {verdict['recommendation']}", "why:"]
    lines += [f"  - {r}" for r in verdict["reasons"]]
    lines += ["next:"] + [f"  - {t}" for t in verdict["todo"]]
    return "\n".join(lines)
