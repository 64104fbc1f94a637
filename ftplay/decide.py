"""Decide stage: should this task be fine-tuned at all? The seed's rules as a checklist.

Fine-tune only after prompting with good examples, structured output, retrieval and routing have
been tried, and only for a reason prompting cannot fix: a narrow high-volume task (cost), a format
or style, or domain vocabulary; with 500-2,000 curated examples (fewer than ~200: collect first).
Measured baselines from notebook 01 stand in for "tried prompting" when they show it falls short.
"""
from dataclasses import dataclass

from .errors import ConfigError

REASONS = {"narrow_high_volume": "a narrow, high-volume task where a small model cuts the cost",
           "format_or_style": "a format or style prompting cannot hold",
           "domain_vocabulary": "domain vocabulary the base model does not know",
           "none": "no reason to fine-tune"}
CHEAPER = {"tried_prompting": "prompt engineering", "tried_few_shot": "prompting with good examples (few-shot)",
           "tried_structured_output": "structured output (JSON schema / constrained decoding)",
           "tried_retrieval": "retrieval (RAG)", "tried_routing": "routing (a small model first, escalate the rest)"}
MIN_EXAMPLES, GOOD_EXAMPLES = 200, (500, 2_000)   # the seed's figures


@dataclass(frozen=True)
class Checklist:
    """What you know before fine-tuning; quality is macro-F1 on held-out data, 0-1."""
    task_type: str = "classification"
    monthly_requests: int = 3_000_000
    tokens_per_request: int = 1_000
    tried_prompting: bool = False
    tried_few_shot: bool = False
    tried_structured_output: bool = False
    tried_retrieval: bool = False
    tried_routing: bool = False
    reason: str = "narrow_high_volume"
    current_quality: float | None = None         # your best prompt's macro-F1; None: not measured
    target_quality: float = 0.85
    labeled_examples: int = 0

    def __post_init__(self):
        p = []
        if not isinstance(self.task_type, str) or not self.task_type.strip():
            p.append(f"TASK_TYPE={self.task_type!r} must name the task, e.g. 'classification'")
        if self.reason not in REASONS:
            p.append(f"REASON={self.reason!r} is not one of {list(REASONS)}; set REASON in the parameters cell")
        for name in ("monthly_requests", "tokens_per_request", "labeled_examples"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                p.append(f"{name.upper()}={v!r} must be a whole number >= 0; set {name.upper()} in the parameters cell")
        for name in CHEAPER:
            if not isinstance(getattr(self, name), bool):
                p.append(f"{name.upper()}={getattr(self, name)!r} must be True or False")
        if not isinstance(self.target_quality, (int, float)) or not 0 < self.target_quality <= 1:
            p.append(f"TARGET_QUALITY={self.target_quality!r} must be a macro-F1 in (0, 1]")
        if self.current_quality is not None and (not isinstance(self.current_quality, (int, float))
                                                 or not 0 <= self.current_quality <= 1):
            p.append(f"CURRENT_QUALITY={self.current_quality!r} must be a macro-F1 in [0, 1], or None")
        if p:
            raise ConfigError(p, "invalid checklist")


def best_baseline(baselines):
    """(name, macro_f1) of 01's best prompting system, or None when 01 has not run."""
    if not baselines:
        return None
    best = baselines.get("best") or {}
    if best.get("macro_f1") is not None:
        return best.get("name", "best"), best["macro_f1"]
    scored = [(n, s.get("macro_f1")) for n, s in (baselines.get("systems") or {}).items()
              if s.get("macro_f1") is not None]
    return max(scored, key=lambda t: t[1]) if scored else None


def assess(checklist, baselines=None):
    """{"proceed", "reasons", "todo", "quality", "quality_source"}: proceed only when the cheaper
    options were tried (or 01's measured baselines fall short of the target), there is a
    fine-tuning reason, and there are enough labelled examples."""
    c = checklist
    reasons, todo, blockers = [], [], 0
    measured = best_baseline(baselines)
    quality, source = (measured[1], f"measured: 01's best system '{measured[0]}'") if measured else \
        (c.current_quality, "stated: CURRENT_QUALITY" if c.current_quality is not None else None)

    if not measured:
        reasons.append("no measured baselines: 01_baseline_prompting.json is not in RUN_DIR yet (a full run "
                       "executes 00 first); re-run 00 after 01 to use measured baselines")
    # ---- 1. cheaper options first
    untried = [label for name, label in CHEAPER.items() if not getattr(c, name)]
    if measured and quality < c.target_quality:
        reasons.append(f"prompting falls short: best baseline macro-F1 {quality:.3f} < target {c.target_quality:.3f} "
                       f"({source})")
    elif untried and not measured:
        blockers += 1
        reasons.append(f"cheaper options not tried yet: {', '.join(untried)}")
        todo += [f"try {u}" for u in untried]
        todo.append("or run 01_baseline_prompting and re-run 00: measured baselines that fall short count")
    else:
        reasons.append("the cheaper options were tried" if not untried else
                       f"not tried: {', '.join(untried)} (measured baselines decide instead)")
    if quality is not None and quality >= c.target_quality:
        if c.reason == "narrow_high_volume":
            reasons.append(f"prompting already reaches the target (macro-F1 {quality:.3f}): fine-tune only to cut "
                           "cost, and only if it keeps that quality")
        else:
            blockers += 1
            reasons.append(f"prompting already reaches the target (macro-F1 {quality:.3f} >= {c.target_quality:.3f}) "
                           f"and the reason is not cost: ship the prompt")

    # ---- 2. a reason prompting cannot fix
    if c.reason == "none":
        blockers += 1
        reasons.append("no fine-tuning reason (narrow high-volume task, format or style, domain vocabulary)")
        todo.append("keep improving the prompt, examples and retrieval")
    else:
        reasons.append(f"reason: {REASONS[c.reason]}")
    if c.reason == "narrow_high_volume":
        tokens = c.monthly_requests * c.tokens_per_request
        reasons.append(f"volume: {c.monthly_requests:,} requests x {c.tokens_per_request:,} tokens = "
                       f"{tokens / 1e6:,.0f}M tokens a month")

    # ---- 3. enough curated examples
    lo, hi = GOOD_EXAMPLES
    if c.labeled_examples < MIN_EXAMPLES:
        blockers += 1
        reasons.append(f"only {c.labeled_examples} labelled examples (fewer than ~{MIN_EXAMPLES})")
        todo.append(f"collect and curate more examples first: {lo:,}-{hi:,} is the target")
    elif c.labeled_examples < lo:
        reasons.append(f"{c.labeled_examples} labelled examples: enough to start, below the {lo:,}-{hi:,} "
                       "that usually suffice")
        todo.append(f"grow the set towards {lo:,} curated examples")
    else:
        reasons.append(f"{c.labeled_examples:,} labelled examples (the seed's range is {lo:,}-{hi:,} curated)")

    proceed = blockers == 0
    if proceed:
        todo.append("ship only if it wins on cost AND quality: 04_evaluate (quality), 05_compare_costs (cost)")
    return {"proceed": proceed, "reasons": reasons, "todo": todo, "quality": quality, "quality_source": source}


def report(verdict):
    """The verdict as text: the answer, why, and what to do next."""
    lines = ["PROCEED: fine-tune" if verdict["proceed"] else "DO NOT fine-tune yet", "why:"]
    lines += [f"  - {r}" for r in verdict["reasons"]]
    lines += ["next:"] + [f"  - {t}" for t in verdict["todo"]]
    return "\n".join(lines)
