"""The ship report: the seed's "what I'd ship" checklist, answered item by item from a run's JSON records.

Nothing is recomputed: every figure is read from the `<run_dir>/<notebook>.json` files the notebooks
wrote. An item whose notebook did not run is "not run", one whose notebook failed is "failed", one
whose evidence says no (the gate says stop, a better alternative, a class never right, unredacted
PII, not cheaper, pre-flight failed...) is "no", one whose evidence is missing (the replaced model
never scored, no production rows) is "not proven". The verdict is YES only when every item is
"done"; any "no" or failed notebook makes it NO; otherwise it is NOT PROVEN. Every reason names the
record and field it was read from. report_page shows the report as text and as an HTML page.
"""
import math
from pathlib import Path

from . import curve, decide, evaluate, label_issues, records, requestlog, stages
from .stages import BASELINE, COSTS, CURATE, DECIDE, EVALUATE, SERVE, TRAIN

BLOCKS, NOT_PROVEN, SUPPORTS = "blocks", "not proven", "supports"
# the 06 option that prices a system 04 found better than the fine-tune
PRICED_AS = {"tfidf_logreg": "classical_reference", "nearest_reply": "classical_reference"}


def why(text, stem, field, effect=BLOCKS):
    """One traceable reason: its text, the record (`<stem>.json`) and field it was read from, and
    what it does to the verdict (blocks, not proven, supports)."""
    return {"text": text, "record": f"{stem}.json" if not stem.endswith(".json") else stem, "field": field,
            "effect": effect}


# ---------------------------------------------------------------- the checklist
def build(run_dir, status=None):
    """{"run_dir", "items": [item], "ship": {"ship", "reasons", "notes"}, "route", "plots", "tasks"} for
    `run_dir`. Each task of the run (records.task_runs: triage, the house-format reply) is answered on
    its own records, with the run's one server (05) and cost notebook (06): `tasks` holds {task: {"dir",
    "items", "ship"}} for each, and "items"/"ship" at the top are the run's first task's.

    `status` is the runner's {name: {"status", "cell", "error"}} (a further task's notebooks named
    <task>/<stem>): a notebook that failed makes the items it is evidence for "failed" (its JSON, if
    any, is from an earlier run).
    """
    run_dir = Path(run_dir)
    runs = records.task_runs(run_dir) or {stages.CLASSIFY: run_dir}
    shared = {s: records.read_or_empty(run_dir, s) for s in (DECIDE, COSTS, SERVE)}
    tasks = {}
    for i, (task, where) in enumerate(runs.items()):
        sub = "" if Path(where) == run_dir else Path(where).name
        recs = {s: records.read_or_empty(where, s) for s in stages.PER_TASK} | shared
        recs[DECIDE] = shared[DECIDE] if i == 0 else records.Record({}, records.path(where, DECIDE), DECIDE)
        recs[COSTS] = _cost_view(shared[COSTS], task)
        recs["task"] = task
        def key(s):   # the runner's names
            return f"{sub}/{s}" if sub and s in stages.PER_TASK else s

        failed = {s: v for s in stages.STEMS for v in [(status or {}).get(key(s))] if v and v.get("status") != "ok"}
        items = [_answer(k, title, evidence, fn, recs) for k, title, evidence, fn in CHECKLIST]
        for it in items:
            bad = [s for s in it["evidence"] if s in failed]
            if bad:
                v = failed[bad[0]]
                text = f"notebook {key(bad[0])} failed at cell {v.get('cell')}: {str(v.get('error', ''))[:300]}"
                it.update(status="failed", summary=text,
                          problems=[why(text, "summary.json", f"notebooks.{key(bad[0])}")])
            for p in it["problems"] + it["passed"]:   # a further task's records are in its own folder
                if sub and p["record"][:-5] in stages.PER_TASK:
                    p["record"] = f"{sub}/{p['record']}"
        failed_named = {key(s): v for s, v in failed.items()}
        tasks[task] = {"dir": sub or ".", "adapter_name": stages.ADAPTER_NAMES.get(task), "items": items,
                       "ship": verdict(items, recs, failed_named)}
    first = tasks[next(iter(tasks))]
    return {"run_dir": str(run_dir), "items": first["items"], "ship": first["ship"], "tasks": tasks,
            "route": route_line(shared[COSTS]),
            "plots": plots_of(run_dir, runs.values())}


def plots_of(run_dir, task_dirs):
    """Every task's saved plots (<task dir>/plots/*.png), relative to the run directory, the first task's first: the
    reply task's are in reply/plots, and a report that showed triage's alone would hide them."""
    run_dir, seen, out = Path(run_dir), set(), []
    for where in [run_dir, *map(Path, task_dirs)]:
        for p in sorted((where / "plots").glob("*.png")):
            rel = p.resolve().relative_to(run_dir.resolve()).as_posix()
            if rel not in seen:
                seen.add(rel)
                out.append(rel)
    return out


def _cost_view(cost, task):
    """06's record as one task's cost: its per-task table (`tasks.<task>`) over the shared fields."""
    mine = cost.at("tasks", task, default=None)
    if not isinstance(mine, dict):
        return cost
    return records.Record({**cost, **mine, "run_options": cost.get("options")}, cost.path, cost.stem)


def metric_of(rec):
    """The metric a stage's record ranks systems by: its `primary` (the reply task's), else macro-F1."""
    return rec.get("primary") or "macro_f1"


def _answer(key, title, evidence, fn, recs):
    """One checklist item: "not run" when the record of its first evidence stage is missing, else what
    `fn` reads from the records ({summary, figures, problems, notes, status}); done when no problem."""
    if not recs[evidence[0]]:
        missing = [f"{s}.json" for s in evidence if not recs.get(s)]
        out = {"status": "not run", "summary": f"not run: {', '.join(missing)} not recorded", "figures": {},
               "problems": [why(f"{m} is missing: run notebook {m[:2]} into this run directory", m[:-5],
                                "(whole record)", NOT_PROVEN) for m in missing]}
    else:
        out = fn(recs)
    effects = {p["effect"] for p in out["problems"]}
    status = out.get("status") or ("no" if BLOCKS in effects else NOT_PROVEN if effects else "done")
    return {"key": key, "title": title, "evidence": list(evidence), "status": status, "summary": out["summary"],
            "figures": out["figures"], "problems": list(out["problems"]), "notes": list(out.get("notes", ())),
            "passed": list(out.get("passed", ()))}


def tried_cheaper(recs):
    """Prompting (zero- and few-shot), retrieved few-shot (RAG) and routing, measured before fine-tuning."""
    base = recs[BASELINE]
    metric = metric_of(base)
    name = METRIC_NAMES.get(metric, metric)
    systems = base.at("systems", default={})
    fig = {n: systems[n].get(metric) for n in ("zero_shot", "few_shot_fixed", "few_shot_retrieved",
                                               "free_text_zero_shot") if n in systems}
    fig["best_prompt"] = base.at("best", "name")
    ref = base.at("reference", default={})
    if ref:
        fig["reference"] = {ref.get("name"): ref.get(metric)}
    problems, notes = [], []
    if "few_shot_retrieved" not in systems:
        problems.append(why("retrieved few-shot (RAG) was not scored in 00", BASELINE, "systems.few_shot_retrieved",
                            NOT_PROVEN))
    # the model the fine-tune would replace, as 00 scored it (your endpoint, or the stand-in for the hosted model)
    fig.update({n: systems[n].get(metric) for n in systems if n.startswith("endpoint")})
    parts = [f"{n}{decide.replaced_words(base, n)} {_f(v)}" for n, v in fig.items() if n in systems]
    text = f"{name} " + ", ".join(parts) + f" (best prompt: {fig['best_prompt']})"
    if ref:
        text += f"; reference {ref.get('name')} {_f(ref.get(metric))}"
    curve = ref.get("selective_curve")   # the cheap model first, as 01 reads it; the fine-tune's routing is 06's
    if recs.get("task", stages.CLASSIFY) != stages.CLASSIFY:
        notes.append("routing (a cheap model first, the unsure share escalated) is measured for triage only: a "
                     "generated reply carries no confidence to route on")
    elif curve:
        target = recs[COSTS].at("config", "target_accuracy", default=decide.ROUTING_ACCURACY)
        fig["routing"], said = decide.routing_reading(curve, target, ref.get("name"))
        text += f"; routing: {said}"
    else:
        problems.append(why("routing not measured: 00_baseline_prompting.json has no reference selective_curve (00 "
                            "did not run)", BASELINE, "reference.selective_curve", NOT_PROVEN))
    said_01 = recs[DECIDE]
    if said_01 and not said_01.get("proceed", True):
        text_01 = (f"01 said do not fine-tune ({said_01.get('recommendation', 'see its reasons')}): "
                   + "; ".join(r for r in said_01.get("reasons", []) if "classifier" in r or "target" in r)[:400])
        if said_01.get("measured_baselines"):
            problems.append(why(text_01, DECIDE, "proceed, recommendation, reasons"))
        else:
            notes.append(text_01 + " (decided before 00's measurements: re-run 01 after 00)")
    return {"summary": text, "figures": fig, "problems": problems, "notes": notes}


def curated(recs):
    """Rows in and out, duplicates and conflicts, the split, leakage."""
    c = recs[CURATE]
    split = c.at("split", default={})
    production = sum(v.get("production", 0) for v in c.at("labels", default={}).values())
    fig = {k: c.get(k) for k in ("rows_in", "rows_out", "exact_duplicate_rows_dropped", "near_duplicate_rows_dropped",
                                 "conflicts", "conflict_rows", "trivial", "truncated", "pii_rows", "pii_redacted")}
    fig.update(train=split.get("train"), heldout=split.get("heldout"), production=production,
               leakage=c.at("leakage", default={}))
    reply = c.get("task") == stages.REPLY
    answers = "replies" if reply else "labels"
    text = (f"{_n(c.get('rows_in'))} rows in, {_n(c.get('rows_out'))} out: "
            f"{_n(fig['exact_duplicate_rows_dropped'])} exact and {_n(fig['near_duplicate_rows_dropped'])} near "
            f"duplicates dropped, {_n(c.get('conflicts'))} conflicting "
            f"{answers} ({_n(c.get('conflict_rows'))} rows), {_n(c.get('trivial'))} trivial"
            + (f", {_n(c.get('trivial_outputs'))} trivial replies, {_n(c.get('invalid_format'))} replies not in the "
               f"{c.get('reply_format')} format, {_n(c.get('pii_output_rows'))} replies with PII" if reply else "")
            + f", {_n(c.get('truncated'))} over-long; split {_n(split.get('train'))} train / "
            f"{_n(split.get('heldout'))} held-out" + (f" + {production:,} production" if production else ""))
    if reply:
        fig.update({k: c.get(k) for k in ("trivial_outputs", "invalid_format", "pii_output_rows", "output_tokens")})
    leaks = {k: v for k, v in fig["leakage"].items() if v}
    problems, notes = [], []
    if leaks and split.get("made_here") is False:   # the authors' split, audited as given: 04 re-checks what trained
        after = {k: v for k, v in c.at("leakage_curated", default={}).items() if v}
        notes.append(f"the given held-out split (HELDOUT_PATH) shares rows with its train file: {leaks} as given, "
                     f"{after or 'none'} after curation; 04 re-checks the rows 03 trained on and blocks on those "
                     "(02_curate_data.json: leakage, leakage_curated)")
    elif leaks:
        problems.append(why(f"held-out leaks into train {leaks}: re-run 02 so duplicates stay on one side", CURATE,
                            "leakage"))
    if not c.get("rows_out"):
        problems.append(why("no rows left after curation", CURATE, "rows_out"))
    accepted = (c.get("pii_accepted") or "").strip()
    if c.get("pii_rows") and not c.get("pii_redacted"):
        kinds = ", ".join(f"{k} {v}" for k, v in (c.get("pii_kinds") or {}).items())
        pii = f"PII in {c['pii_rows']} training rows, not redacted" + (f" ({kinds})" if kinds else "")
        if accepted:
            notes.append(f"{pii}; accepted in 02 (PII_ACCEPTED): {accepted}")
        else:
            problems.append(why(f"{pii}: a model trained on it can repeat it; set REDACT_PII: true in 02, or record "
                                "why it is acceptable in PII_ACCEPTED", CURATE, "pii_rows, pii_redacted, pii_accepted"))
    fig["pii_accepted"] = accepted or None
    li = c.get("label_issues") or {}
    if li.get("flagged") is not None:
        notes.append(label_issues.reading(li) + " (02_curate_data.json: label_issues)")
    if c.get("teacher"):
        notes.append(requestlog.reading(c) + " (02_curate_data.json: teacher, human_labels)")
    return {"summary": text + f"; leakage {'none' if not leaks else leaks}", "figures": fig, "problems": problems,
            "notes": notes}


def trained(recs):
    """Engine, recipe, tokens, time and losses of the LoRA / QLoRA run."""
    t = recs[TRAIN]
    cfg = t.at("config", default={})
    b = t.at("base_model", default={})
    fig = {k: t.get(k) for k in ("engine", "load_in_4bit", "steps", "tokens_seen", "tokens_per_s", "seconds",
                                 "first_loss", "train_loss", "eval_loss", "adapter_dir")}
    fig["recipe"] = {k: cfg.get(k) for k in ("lora_r", "lora_alpha", "learning_rate", "num_epochs", "target_modules",
                                             "optimizer")}
    fig["base"] = f"{b.get('requested')}@{b.get('revision')}"
    text = (f"{t.get('engine')}, {'QLoRA (4-bit base)' if t.get('load_in_4bit') else 'LoRA (16/32-bit base)'}, "
            f"r {cfg.get('lora_r')} alpha {cfg.get('lora_alpha')} lr {cfg.get('learning_rate')} "
            f"{cfg.get('num_epochs')} epochs on {len(cfg.get('target_modules') or [])} projections; "
            f"{_n(t.get('steps'))} steps, {_n(t.get('tokens_seen'))} tokens at {_n(t.get('tokens_per_s'))} tokens/s in "
            f"{_n(t.get('seconds'))} s on {t.at('device', 'device', default='?')}; loss {_f(t.get('first_loss'))} -> "
            f"{_f(t.get('train_loss'))} (eval {_f(t.get('eval_loss'))}); base {fig['base']}")
    first, last = t.get("first_loss"), t.get("train_loss")
    problems = []
    if not t.get("adapter_dir"):
        problems.append(why("no adapter_dir recorded", TRAIN, "adapter_dir"))
    if not _finite(last) or (_finite(first) and last >= first):
        problems.append(why(f"training loss did not fall ({_f(first)} -> {_f(last)}): check the data and LEARNING_RATE "
                            "in 03", TRAIN, "first_loss, train_loss"))
    return {"summary": text, "figures": fig, "problems": problems}


# the figures a system's scores give, by task: classification's, or the reply task's (ftplay/replies.py)
SCORE_KEYS = {"macro_f1": ("macro_f1", "macro_f1_ci", "accuracy"),
              "reply": ("valid_rate", "valid_rate_ci", "field_accuracy", "field_accuracy_ci", "chrf", "chrf_ci")}
METRIC_NAMES = {"macro_f1": "macro-F1", "valid_rate": "format valid", "field_accuracy": "field accuracy",
                "chrf": "chrF"}


def evaluated(recs):
    """Base against fine-tuned on held-out and production, against every alternative, per class: 04's
    gate, each of its checks a reason naming the field it read."""
    e = recs[EVALUATE]
    metric = metric_of(e)
    reply = recs.get("task", stages.CLASSIFY) != stages.CLASSIFY
    keys = SCORE_KEYS["reply" if reply else "macro_f1"]
    fig, parts = {}, []
    for split in ("heldout", "production"):
        systems = e.at(split, "systems", default={})
        if not systems:
            continue
        fig[split] = {"n": e.at(split, "n")} | {name: {k: m.get(k) for k in keys} for name, m in systems.items()}
        b, f = systems.get("base") or {}, systems.get("finetuned") or {}
        if reply:
            parts.append(f"{split} n={e.at(split, 'n')}: base vs fine-tuned " + ", ".join(
                f"{METRIC_NAMES[k]} {_ci(b, k)} vs {_ci(f, k)}" for k in ("valid_rate", "field_accuracy", "chrf")
                if b.get(k) is not None or f.get(k) is not None))
        else:
            parts.append(f"{split} n={e.at(split, 'n')}: base {_ci(b)} vs fine-tuned {_ci(f)} macro-F1")
    p = e.at("heldout", "paired", "finetuned_vs_base", default={})
    diff = "valid_rate" if reply else "macro_f1"   # what "beats the base" is read on
    if p:
        fig["heldout_diff"] = {k: p.get(k) for k in (f"{diff}_diff", f"{diff}_diff_ci", "mcnemar_p")}
        lo, hi = p.get(f"{diff}_diff_ci") or (None, None)
        parts[0] += (f"{'; format valid' if reply else ','} difference {_f(p.get(f'{diff}_diff'), '+.3f')} "
                     f"[{_f(lo, '+.3f')}, {_f(hi, '+.3f')}], McNemar p={_f(p.get('mcnemar_p'), '.2g')}")
    alts = {k[len("finetuned_vs_"):]: d.get(f"{metric}_diff") for k, d in e.at("heldout", "paired", default={}).items()
            if k.startswith("finetuned_vs_") and k != "finetuned_vs_base"}
    if alts:
        fig["heldout_vs_alternatives"] = alts
        parts.append("fine-tuned minus " + ", ".join(f"{n} {_f(d, '+.3f')}" for n, d in alts.items())
                     + (f" ({METRIC_NAMES.get(metric, metric)})" if reply else ""))
    gate = e.at("decision", default={})
    fig["decision"] = {k: gate.get(k) for k in ("ship", "verdict", "better")}
    verdict = gate.get("verdict") or ("ship" if gate.get("ship") else "stop")
    parts.append(f"gate: {verdict}")
    better = gate.get("better")
    if better:
        m = better.get("metric", "macro_f1")
        named = f"{METRIC_NAMES.get(m, m)} " if reply else ""
        parts.append(f"better system: {better['name']} ({named}{_f(better.get(m, better.get('value')))} "
                     f"vs {_f(better.get('finetuned_' + m, better.get('finetuned_value')))} on {better['split']})")
    effect = {"block": BLOCKS, "not proven": NOT_PROVEN}
    problems = [why(c["text"], EVALUATE, c["field"], effect[c["status"]]) for c in gate.get("checks", [])
                if c.get("status") in effect]
    if better:
        problems = [dict(p, text=p["text"] + "; " + _cost_of(better["name"], recs))
                    if p["field"].endswith(f"finetuned_vs_{better['name']}") else p for p in problems]
    if not gate.get("checks"):   # a record from before the checks existed: its reasons only
        problems = [] if gate.get("ship") else [why(r, EVALUATE, "decision.reasons") for r in gate.get("reasons", [])
                                                if r.startswith("STOP")] or [why("04's gate says stop", EVALUATE,
                                                                                 "decision.ship")]
    passed = [why(c["text"], EVALUATE, c["field"], SUPPORTS) for c in gate.get("checks", [])
              if c.get("status") == "pass"]
    notes = []
    if e.get("teacher_check"):
        fig["teacher_check"] = e["teacher_check"]
        notes.append(evaluate.teacher_reading(e["teacher_check"], recs[CURATE].get("teacher") if CURATE in recs
                                              else None) + " (04_evaluate.json: teacher_check)")
    if e.get("learning_curve"):
        fig["learning_curve"] = e["learning_curve"].get("flattens")
        notes.append("How many examples are enough: " + curve.reading(e["learning_curve"].get("systems", {}))
                     .replace("\n", " ") + " (04_evaluate.json: learning_curve)")
    return {"summary": "; ".join(parts), "figures": fig, "problems": problems, "passed": passed, "notes": notes}


def _cost_of(name, recs):
    """What the better system `name` would cost a month, from 06's options, or why it is not priced."""
    rows = {r.get("name"): r for r in recs[COSTS].at("options", default=[])}
    option = PRICED_AS.get(name) or ("hosted_frontier" if name.startswith("endpoint") else None)
    row = rows.get(option) if option else None
    shared = {r.get("name"): r for r in recs[COSTS].get("run_options") or []}
    if (not row or row.get("monthly_cost") is None) and option == "classical_reference" and \
            (shared.get(option) or {}).get("monthly_cost") is not None:   # a TF-IDF lookup on CPUs, priced once
        return (f"{name} is a TF-IDF lookup on CPUs, as the triage classifier 06 priced: about "
                f"${shared[option]['monthly_cost']:,.0f} a month (06_compare_costs.json: options.{option})")
    if row and row.get("monthly_cost") is not None:
        return f"{name} would cost ${row['monthly_cost']:,.0f} a month (06_compare_costs.json: options.{option})"
    if option:
        return f"its monthly cost is not priced (06_compare_costs.json has no options.{option}: run 06)"
    return (f"{name} is the base model with a longer prompt: it costs about what self-hosting the base does "
            "(06_compare_costs.json: options.self_hosted_vllm), plus its prompt's extra tokens")


def served(recs):
    """vLLM pre-flight, parity with transformers, structured output and the load test."""
    s = recs[SERVE]
    pre = s.at("preflight", default=[])
    par = s.at("parity", default={})
    load = s.at("load_test", default={})
    so = s.at("structured_output", default={})
    exact = sum(m.get("exact", 0) for m in s.at("parity", "models", default={}).values())
    prompts = sum(m.get("prompts", 0) for m in s.at("parity", "models", default={}).values())
    fig = {"preflight_ok": sum(f.get("ok", False) for f in pre), "preflight_checks": len(pre),
           "parity_ok": par.get("ok"), "parity_exact": exact, "parity_prompts": prompts,
           "structured_valid_rate": so.get("valid_rate"), "backend": s.at("server", "backend"),
           "load_test": {k: load.get(k) for k in ("requests", "errors", "concurrency", "requests_per_s",
                                                  "tokens_per_s", "p50_ms", "p95_ms", "lora_overhead")}}
    by_model = so.get("models") or {}
    fig["structured"] = {m: {k: v.get(k) for k in ("valid_rate", "accuracy", "macro_f1", "valid_but_wrong")}
                         for m, v in by_model.items()}
    scored = "; ".join(f"{m} valid {_f(v.get('valid_rate'), '.0%')}, accuracy {_f(v.get('accuracy'))}"
                       for m, v in by_model.items())
    text = (f"{', '.join(s.get('adapters_served') or [])} on {fig['backend']}: pre-flight "
            f"{fig['preflight_ok']}/{len(pre)} checks ok; parity {exact}/{prompts} exact; structured output valid "
            f"{_f(so.get('valid_rate'), '.0%')}"
            + (f" ({scored})" if scored else "") + "; "
            f"load test {_n(load.get('requests'))} requests, {_n(load.get('errors'))} errors, concurrency "
            f"{_n(load.get('concurrency'))}: {_n(load.get('requests_per_s'))} req/s, {_n(load.get('tokens_per_s'))} "
            f"tokens/s, p50 {_n(load.get('p50_ms'))} ms, p95 {_n(load.get('p95_ms'))} ms")
    problems = [why(f"pre-flight {f.get('adapter')}: {f.get('check')}: {f.get('message')}", SERVE, "preflight")
                for f in pre if not f.get("ok")]
    if not pre:
        problems.append(why("no pre-flight recorded", SERVE, "preflight"))
    if not par.get("ok"):
        problems.append(why("vLLM answers differ from transformers + PEFT (parity failed)", SERVE, "parity.ok"))
    if load.get("errors") or not load.get("requests"):
        problems.append(why(f"load test: {load.get('errors')} errors in {load.get('requests')} requests", SERVE,
                            "load_test.errors, load_test.requests"))
    task = recs.get("task", stages.CLASSIFY)
    name = stages.ADAPTER_NAMES.get(task)
    mine = (load.get("per_model") or {}).get(name) or {}
    if task != stages.CLASSIFY and mine:   # this task's own requests in the mixed load test
        fig["load_test_" + name] = {k: mine.get(k) for k in ("requests", "errors", "p50_ms", "p95_ms",
                                                              "completion_tokens_per_request", "stopped_share")
                                    if k in mine}
        text += (f"; {name} requests: {_n(mine.get('requests'))}, p50 {_n(mine.get('p50_ms'))} ms, "
                 f"{_n(mine.get('completion_tokens_per_request'))} answer tokens, "
                 f"{_f(mine.get('stopped_share'), '.0%')} stopped at end of turn")
    if name and name not in (s.get("adapters_served") or []):
        problems.append(why(f"the {task} adapter ({name}) was not served", SERVE, "adapters_served"))
    notes = [] if task != stages.CLASSIFY else [
        f"structured output: {m} answers valid JSON but wrong labels (accuracy {_f(v.get('accuracy'))}, "
        f"valid {_f(v.get('valid_rate'), '.0%')}): it was trained on the bare label; serve the format it was "
        "trained on, or train on the format you serve (05_serve_vllm.json: structured_output.models)"
        for m, v in by_model.items() if v.get("valid_but_wrong")]
    return {"summary": text, "figures": fig, "problems": problems, "notes": notes}


def costed(recs):
    """The cheapest option against the hosted model: monthly cost, savings, training, payback."""
    c = recs[COSTS]
    v = c.at("verdict", default={})
    rows = {r["name"]: r for r in c.at("options", default=[])}
    best, hosted = rows.get(v.get("best_option")) or {}, rows.get("hosted_frontier") or {}
    fig = {"best_option": v.get("best_option"), "cheaper": v.get("cheaper"),
           "hosted_monthly": hosted.get("monthly_cost"), "assumed": sorted(c.at("assumed", default={}))}
    fig.update({k: best.get(k) for k in ("monthly_cost", "savings_vs_hosted", "training_cost", "payback_months",
                                         "break_even_volume")})
    text = v.get("headline") or "no verdict recorded"
    be = best.get("break_even_volume")
    if be is not None and v.get("best_option") != "hosted_frontier":
        text += "; cheaper at every volume" if be == 0 else f"; break-even at {be:,.0f} requests/month"
    if fig["assumed"]:
        text += f"; assumed: {', '.join(fig['assumed'])}"
    problems = [] if v.get("cheaper") else [why(f"not cheaper: {text}", COSTS, "verdict.cheaper")]
    passed = [why(text, COSTS, "verdict.cheaper", SUPPORTS)] if v.get("cheaper") else []
    return {"summary": text, "figures": fig, "problems": problems, "passed": passed}


# (key, title, evidence: the first stage's record is what the item needs, function answering it)
CHECKLIST = (
    ("tried_cheaper", "Prompting, retrieved few-shot (RAG) and routing tried first", (BASELINE,),
     tried_cheaper),
    ("curated", "Examples curated", (CURATE,), curated),
    ("trained", "QLoRA adapter trained", (TRAIN,), trained),
    ("evaluated", "Held-out and production evaluated against the base", (EVALUATE,), evaluated),
    ("served", "Served with vLLM", (SERVE,), served),
    ("cost", "Cost compared", (COSTS,), costed),
)


def route_line(cost):
    """'route the numbers favour: ...' from 06's route comparison (`routes`: {favoured, headline}), or
    None when 06 recorded none."""
    r = (cost or {}).get("routes")
    if not isinstance(r, dict) or not r.get("favoured"):
        return None
    return r["favoured"] + (f": {r['headline']}" if r.get("headline") else "")


def verdict(items, recs, failed=None):
    """YES only when every item is done and no notebook failed; NO when any evidence says no or a
    notebook failed; NOT PROVEN when nothing says no but evidence is missing. `reasons`: what blocks
    and what is not proven, then (for a YES) what supports it, each naming its record and field."""
    reasons = [why(f"notebook {s} failed at cell {v.get('cell')}: {str(v.get('error', ''))[:300]}", "summary.json",
                   f"notebooks.{s}") for s, v in (failed or {}).items()]
    for it in items:
        if it["status"] == "failed":
            continue   # the notebook's failure is listed above
        reasons += [dict(p, text=f"{it['title']}: {p['text']}") for p in it["problems"]]
    effects = {r["effect"] for r in reasons}
    answer = "NO" if BLOCKS in effects or failed else "NOT PROVEN" if effects else "YES"
    if answer == "YES":
        reasons = [p for it in items for p in it["passed"]]
    reasons.sort(key=lambda r: (r["effect"] != BLOCKS, r["effect"] != NOT_PROVEN))
    notes = [n for it in items for n in it["notes"]]
    return {"ship": answer == "YES", "verdict": answer, "reasons": reasons, "notes": notes}


# ---------------------------------------------------------------- number formatting
def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def _f(x, fmt=".3f"):
    return format(x, fmt) if _finite(x) else "-"


def _n(x):
    return "-" if x is None else f"{x:,.0f}" if _finite(x) and abs(x) >= 100 else f"{x:g}" if _finite(x) else str(x)


def _ci(m, key="macro_f1"):
    lo, hi = m.get(f"{key}_ci") or (None, None)
    fmt = ".1f" if key == "chrf" else ".3f"   # chrF is on 0-100
    return f"{_f(m.get(key), fmt)} [{_f(lo, fmt)}, {_f(hi, fmt)}]"
