"""What a run measured, for the cost stage: each input read from the run's records, and each task priced with it.

Each task of the run is priced with its own prompt and answer tokens (`by_task`: a reply is dozens of
output tokens where a label is a few; the reply task has no routing, since a reply has no confidence
to escalate on). Tokens per request count only when the priced model's own tokenizer counted them (a hub model, a
local folder, a `tiny:` stand-in, which carries its family's real tokenizer); the embedded model's
tiny tokenizer says nothing about an 8B's, so with it they are assumptions from the parameters cell.
Throughput and training time count only when measured on a GPU with a model of about the size priced.
"""
from dataclasses import replace

from . import records, stages
from .cost import MEASURABLE, compare

STOPPED_ENOUGH = 0.9   # share of 05's answers that must end at end of turn for their mean length to count


# ---------------------------------------------------------------- what the run measured
def tokenizer_source(model):
    """(usable, why) for token counts made with MODEL's tokenizer. A hub id, a local folder and a
    `tiny:<hub id>` stand-in (which carries its family's real tokenizer) count as the priced model
    would; the embedded model's tokenizer is a 4k-token BPE trained on the tickets themselves."""
    from . import models, standins

    m = str(model).strip()
    if m == models.EMBEDDED or m.startswith(models.EMBEDDED + ":"):
        return False, (f"counted by the embedded model's tokenizer (MODEL={m!r}: a 4k-token BPE trained on these "
                       "tickets), which says nothing about the priced model's; set MODEL to the hub id (or its "
                       f"'{standins.PREFIX}' stand-in) to count them")
    if m.startswith(standins.PREFIX):
        return True, (f"counted by {m[len(standins.PREFIX):]}'s own tokenizer (the stand-in carries it, ids as "
                      "the hub's)")
    return True, f"counted by {m}'s own tokenizer"


def read_measured(run_dir, cfg, task=None):
    """This run's measurements for `task` (default the run directory's own), each {"value", "source",
    "usable", "why"}; absent files add nothing. 00 and 02-04's records come from the task's folder
    (`records.task_runs`), 05's from the run directory, its load test read for the task's own adapters
    (05's `adapter_tasks`), so each task is priced with its own prompt and answer tokens.
    Throughput and training time count only when measured on a GPU with a model of about the
    size priced (0.5-2x cfg.model_params_b); token counts only when the priced model's own
    tokenizer counted them (`tokenizer_source`), answer lengths only when answers stopped at end
    of turn; data sizes and the CPU classifier's speed count wherever measured."""
    task = task or records.task_of(run_dir) or stages.CLASSIFY
    folder = records.task_runs(run_dir).get(task, run_dir)
    baseline, curate, train, ev = (records.read_or_empty(folder, s) for s in
                                   (stages.BASELINE, stages.CURATE, stages.TRAIN, stages.EVALUATE))
    serve = records.read_or_empty(run_dir, stages.SERVE)
    m = {}

    def put(name, value, why="", usable=True, source=None):
        m[name] = {"value": value, "source": source or MEASURABLE[name], "usable": bool(usable), "why": why}

    tok_ok, tok_why = tokenizer_source(cfg.model)
    device = _device(train)
    params = train.get("total_params") or 0
    n = sum((v or {}).get("train", 0) for v in curate.at("labels", default={}).values()) or curate.get("rows_out")
    if n:
        put("train_examples", n, "train split of the curated data")
    trained_on = train.at("base_model", "requested")   # 02 records no model; 03 trains on the one 02 counted with
    counted = ev.at("priced_tokens", "train_example")
    if counted:   # 04 counted what 03 trained on with a real tokenizer (the priced family's for the embedded model)
        put("tokens_per_example", counted["p50"], f"median tokens of the {counted['n']} examples 03 trained on, "
            f"{counted['why']}", source=stages.record_name(stages.EVALUATE))
    elif curate.at("tokens", "p50"):
        ok, why = (tok_ok, tok_why) if trained_on in (None, cfg.model) else (
            False, f"03 trained on MODEL={trained_on!r}, 06 prices MODEL={cfg.model!r}: give both the same MODEL")
        put("tokens_per_example", curate.at("tokens", "p50"), f"median tokens per curated example, {why}", ok)
    if train.get("seconds"):
        put("training_gpu_hours", train["seconds"] / 3600, *_hardware(device, params, cfg, "training"))
    for name, field in (("escalation_curve", "selective_curve"), ("quality_decision", "decision")):
        if ev.get(field):
            m[name] = {"value": ev[field], "source": stages.record_name(stages.EVALUATE), "usable": True, "why": ""}
    ref = baseline.at("reference", default={})
    if ref.get("rows_per_s") and task == stages.CLASSIFY:   # the reply task's reference retrieves canned replies
        put("classical_rows_per_s", ref["rows_per_s"], f"00's {ref.get('name', 'reference')} classified the held-out "
            "rows at this rate in one process on this machine's CPU, priced as one vCPU")
        m["classical_rows_per_s"]["reference"] = {k: ref.get(k) for k in ("name", "macro_f1", "rows_per_s", "seconds")}
        if ref.get("selective_curve"):
            m["classical_escalation_curve"] = {"value": ref["selective_curve"], "usable": True, "why": "",
                                               "source": stages.record_name(stages.BASELINE)}
    proxy = _priced_requests(put, baseline, ev)
    if proxy:
        m["hosted_input_tokens_per_request"]["proxy"] = proxy
    served = serve.at("model", "requested")
    if served is not None and served != cfg.model:
        tok_ok, tok_why = False, f"05 served MODEL={served!r}, 06 prices MODEL={cfg.model!r}: give both the same MODEL"
    lt = serve.at("load_test", default={})
    names = task_adapters(serve, task)
    # one task's own prompts: its adapters' requests (05 records adapter_tasks since the reply task; before, one task)
    rows = [lt["per_model"][a] for a in names if a in (lt.get("per_model") or {})] if "adapter_tasks" in serve else []
    ok_requests = (sum(r["requests"] - (r.get("errors") or 0) for r in rows) if rows else
                   (lt.get("requests") or 0) - (lt.get("errors") or 0))
    if ok_requests > 0:
        prompt = sum(r.get("prompt_tokens", 0) for r in rows) if rows else lt.get("prompt_tokens", 0)
        whose = f"{', '.join(names)}'s requests" if rows else "every request"
        if tok_ok or "input_tokens_per_request" not in m:   # 05's count, when usable, is what the server counted
            put("input_tokens_per_request", prompt / ok_requests,
                f"mean prompt of {whose} in 05's load test ({ok_requests} requests over held-out tickets), {tok_why}",
                tok_ok)
        value, why, stopped = _answer_length(serve, lt, names)
        if (stopped and tok_ok) or "output_tokens_per_request" not in m:
            put("output_tokens_per_request", value, f"{why}, {tok_why}", stopped and tok_ok)
        if lt.get("total_tokens_per_s"):
            put("serving_tokens_per_s", lt["total_tokens_per_s"],
                *_hardware(_device(serve) or device, params, cfg, "serving"))
        elif lt.get("tokens_per_s"):
            put("serving_tokens_per_s", lt["tokens_per_s"], "05 recorded completion tokens/s only and the cost prices "
                "prompt + completion tokens: run 05 again", False)
    return m


def _priced_requests(put, baseline, ev):
    """Each side's tokens per request, counted with a real tokenizer: the fine-tune's prompt as served and its answers
    (04's `priced_tokens.finetuned`), the hosted model's best prompt from 00 (the endpoint's when ENDPOINT_URL was
    scored) and its answers; the hosted side is a proxy count (tokencount.HOSTED_PROXY)."""
    from . import tokencount

    ft = ev.at("priced_tokens", "finetuned")
    if ft:
        src, why = stages.record_name(stages.EVALUATE), f"over {ft['n']} held-out rows, {ft['why']}"
        put("input_tokens_per_request", ft["prompt_tokens"], "mean prompt of the fine-tune's requests as served "
            f"(system prompt and ticket) {why}", source=src)
        put("output_tokens_per_request", ft["answer_tokens"], f"mean answer the fine-tune wrote, end of turn "
            f"included, {why}", source=src)
    h = baseline.get("hosted_request")   # 00's choice (Task.hosted_request)
    if not h:
        return None
    what = (h.get("scored_as") or "the endpoint ENDPOINT_URL scored") if h["endpoint"] else "00's best prompting system"
    put("hosted_input_tokens_per_request", h["prompt_tokens"], f"mean prompt of {h['system']} ({what}: instructions "
        f"and examples) over {h['n']} held-out rows, {h['why']}")
    put("hosted_output_tokens_per_request", h["answer_tokens"],
        f"mean answer of {h['system']}, end of turn included, {h['why']}" if h["endpoint"] else
        f"mean of the held-out rows' own answers, end of turn included (no hosted model was scored, and the prompted "
        f"base's answers say nothing of how long its are), {h['why']}")
    return tokencount.hosted_note(h)


def task_adapters(serve, task):
    """The served names of `task`'s adapters in 05's record (its `adapter_tasks`); for a record written
    before tasks existed, every adapter it served (one task)."""
    tasks = serve.get("adapter_tasks")
    if tasks is None:
        return list(serve.get("adapters_served") or [])
    return [name for name, t in tasks.items() if t == task]


def _answer_length(serve, lt, names=None):
    """(tokens per answer, why, whether answers stopped at end of turn) from 05's load test: the
    fine-tuned adapters' answers (`names`, default every adapter served; the base's are not what
    would be served)."""
    if lt.get("ignore_eos", True):   # records before 05 recorded it ran every answer to MAX_TOKENS
        n = lt["requests"] - (lt.get("errors") or 0)
        return (lt.get("completion_tokens", 0) / n, f"05's load test ran every answer to MAX_TOKENS="
                f"{lt.get('max_tokens')} (ignore_eos), not the real answer length; run 05 again", False)
    per = lt.get("per_model") or {}
    names = [a for a in (serve.get("adapters_served") if names is None else names) or [] if a in per] or list(per)
    rows = [per[a] for a in names] or [lt]
    n = sum(r["requests"] - (r.get("errors") or 0) for r in rows)
    stopped = sum(r.get("stopped", 0) for r in rows)
    why = (f"mean answer of {', '.join(names) or 'every model'} in 05's load test, stopped at end of turn "
           f"({stopped}/{n} stopped, the rest cut at MAX_TOKENS={lt.get('max_tokens')})")
    enough = n > 0 and stopped >= STOPPED_ENOUGH * n
    if not enough:
        why += (f": fewer than {STOPPED_ENOUGH:.0%} stopped by themselves, so the real answer length is unknown "
                "(an adapter that does not end its turn; raise MAX_TOKENS in 05 or train it until it does)")
    return sum(r.get("completion_tokens", 0) for r in rows) / n if n else 0.0, why, enough


def _device(record):
    """'cuda' / 'cpu' from a record's `device` (a string, or a dict like 03's device_info)."""
    d = (record or {}).get("device")
    return d.get("device") if isinstance(d, dict) else d


def _hardware(device, params, cfg, what):
    if device != "cuda":
        return f"{what} measured on {device or 'an unknown device'}, not the GPU priced here", False
    if params and not 0.5 <= params / 1e9 / cfg.model_params_b <= 2:
        return f"{what} measured with a {params / 1e9:.3g}B model, not the {cfg.model_params_b:g}B priced", False
    return f"{what} measured on a GPU", True


# ---------------------------------------------------------------- each task priced
def by_task(run_dir, cfg, assumed_output=None):
    """{task: compare(...) + "task", "adapters"} for every task recorded in the run (`records.task_runs`),
    each with its own measured tokens (`read_measured(..., task)`). Where a task's counts are not usable
    (the embedded tokenizer), `assumed_output` {task: tokens} replaces the parameters cell's output tokens
    per request for that task (a reply is dozens of tokens where a label is a few). The reply task is
    priced without routing (no confidence to escalate on)."""
    serve = records.read_or_empty(run_dir, stages.SERVE)
    tasks = list(records.task_runs(run_dir)) or [stages.CLASSIFY]
    out = {}
    for task in tasks:
        c = cfg
        if (assumed_output or {}).get(task) is not None:
            c = replace(cfg, output_tokens_per_request=assumed_output[task])
        result = compare(c, read_measured(run_dir, c, task), routing=task != stages.REPLY)
        out[task] = {**result, "task": task, "adapters": task_adapters(serve, task)}
    return out
