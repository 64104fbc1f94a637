"""The cost stage's tables and text, read from `cost.compare`'s results: each task's reading and record,
the run beside the seed's example, the four routes, the options table, where every input came from.

`routes` narrows the table to the four ways to train and serve (own GPU, Modal, hosted fine-tune, hosted
frontier) and names the cheapest over MAX_PAYBACK_MONTHS, training included.
"""
from dataclasses import replace

from .cost import HOURS_PER_MONTH, compare, monthly, when

# The routes `routes` compares: where the adapter is trained and where it is served.
ROUTES = {"self_hosted_vllm": ("own GPU (paid by the hour)", "vLLM on own GPU"),
          "modal": ("Modal GPU (paid by the second)", "vLLM on Modal GPU (per second)"),
          "hosted_fine_tune": ("provider (per training token)", "provider (per token)"),
          "hosted_frontier": ("no training", "hosted frontier model (per token)")}


TOKEN_FIELDS = ("input_tokens_per_request", "output_tokens_per_request", "hosted_input_tokens_per_request",
                "hosted_output_tokens_per_request")


# ---------------------------------------------------------------- each task, and the run beside the seed
def read_task(priced):
    """One sentence reading a task's table: its tokens per request and where they came from, the hosted
    bill and the share of it output tokens make, and the cost verdict (the cheapest fine-tuned option)."""
    cfg, by = priced["config"], {r["name"]: r for r in priced["options"]}
    src = {k: "measured" if k in priced["measured"] else "assumed" for k in TOKEN_FIELDS}
    hosted = by["hosted_frontier"]
    hin, hout = cfg.hosted_tokens
    out_share = (hout * cfg.hosted_price_out_per_m / (hin * cfg.hosted_price_in_per_m + hout
                                                      * cfg.hosted_price_out_per_m)) if hosted["monthly_cost"] else 0.0
    hosted_src = ("its own prompt, counted (a proxy count: the hosted model's tokenizer is not public)"
                  if src["hosted_input_tokens_per_request"] == "measured" else "the fine-tune's prompt, not its own")
    return (f"{priced['task']} ({', '.join(priced['adapters']) or 'no adapter served'}): the fine-tune is sent "
            f"{cfg.input_tokens_per_request:,.0f} input ({src['input_tokens_per_request']}) and answers "
            f"{cfg.output_tokens_per_request:,.0f} output tokens ({src['output_tokens_per_request']}) per request; "
            f"the hosted model {hin:,.0f} input and {hout:,.0f} output ({hosted_src}) and costs "
            f"${hosted['monthly_cost']:,.0f}/month at {cfg.monthly_requests:,} requests, {out_share:.0%} of it for "
            f"output tokens. Cost verdict: {priced['verdict']['headline']}")


def task_record(priced):
    """What 06 records per task (the ship report reads it): tokens and their sources, the table, the verdict."""
    cfg = priced["config"]
    return {"task": priced["task"], "adapters": priced["adapters"],
            "input_tokens_per_request": cfg.input_tokens_per_request,
            "output_tokens_per_request": cfg.output_tokens_per_request,
            "hosted_input_tokens_per_request": cfg.hosted_tokens[0],
            "hosted_output_tokens_per_request": cfg.hosted_tokens[1],
            "tokens_measured": sorted(k for k in TOKEN_FIELDS if k in priced["measured"]),
            "options": priced["options"], "verdict": priced["verdict"], "escalation_share": priced["escalation_share"],
            "measured": priced["measured"], "assumed": priced["assumed"], "not_used": priced["not_used"],
            "training": priced["training"], "reading": read_task(priced)}


def format_tasks(priced, shown_above=None):
    """Every task's table (format_options) under its reading sentence (read_task); the task `shown_above` (the run's
    first, whose table 06 has just shown) gets a pointer to it instead of the same table twice."""
    def table(task, p):
        return "(its options table is the one above)" if task == shown_above else format_options(p["options"])

    return "\n\n".join(f"== {task} ==\n{read_task(p)}\n{table(task, p)}" for task, p in priced.items())


def tasks_record(priced):
    """{task: task_record} for 06's record."""
    return {task: task_record(p) for task, p in priced.items()}


def beside_seed(result, seed):
    """The run's own figures beside the seed's worked example, with the seed's GPU kept on all month
    in between: rows {"figure", "seed", "seed_gpu_always_on", "run"} (None where it does not apply)."""
    on = compare(replace(seed["config"], min_gpus_always_on=max(1, result["config"].min_gpus_always_on)))

    def own(r):
        return next(o for o in r["options"] if o["name"] == "self_hosted_vllm")

    def tokens(r, k):
        src = "measured" if k in r["measured"] else "assumed"
        value = r["config"].hosted_tokens[0] if k == "hosted_input_tokens_per_request" else getattr(r["config"], k)
        return f"{value:,.0f} ({src})"

    out = []
    for figure, get in (
            ("requests a month", lambda r: f"{r['config'].monthly_requests:,}"),
            ("input tokens per request", lambda r: tokens(r, "input_tokens_per_request")),
            ("output tokens per request", lambda r: tokens(r, "output_tokens_per_request")),
            ("hosted model's input tokens per request", lambda r: tokens(r, "hosted_input_tokens_per_request")),
            ("GPUs kept on all month", lambda r: str(r["config"].min_gpus_always_on)),
            ("hosted model $/month", lambda r: f"{r['options'][0]['monthly_cost']:,.0f}"),
            ("self-hosted vLLM $/month", lambda r: f"{own(r)['monthly_cost']:,.0f}"),
            ("self-hosted $/M tokens at this volume", lambda r: f"{own(r)['per_m_tokens']:.2f}"
             if own(r)["per_m_tokens"] is not None else "-"),
            ("per-token equivalent at full volume, $/M",
             lambda r: f"{own(r)['per_token_equivalent_at_full_volume']:.2f}"),
            ("self-hosted saves $/month", lambda r: f"{own(r)['savings_vs_hosted']:,.0f}"),
            ("self-hosted break-even, requests/month", lambda r: "never" if own(r)["break_even_volume"] is None
             else f"{own(r)['break_even_volume']:,.0f}"),
            ("cheapest fine-tuned option", lambda r: r["verdict"]["best_option"])):
        out.append({"figure": figure, "seed": get(seed), "seed_gpu_always_on": get(on), "run": get(result)})
    return out


# ---------------------------------------------------------------- routes, text
def routes(cfg, measured=None, requests=None):
    """The four routes (own GPU, Modal, hosted fine-tune, hosted frontier) at `requests` a month
    (default cfg.monthly_requests), each with what it costs to train, to serve a month, and both over
    MAX_PAYBACK_MONTHS; `favoured` is the cheapest over that horizon. Every row says how its numbers
    were computed (`pricing`), from the prices in `cfg`."""
    if requests is not None:
        cfg = replace(cfg, monthly_requests=requests)
    result = compare(cfg, measured)
    cfg, t = result["config"], result["training"]
    months = cfg.max_payback_months
    gpu_s = t["gpu_hours"] * 3600 * cfg.training_runs
    mtok = cfg.monthly_requests * (cfg.input_tokens_per_request + cfg.output_tokens_per_request) / 1e6
    serve_s = mtok * 1e6 / cfg.serving_tokens_per_s
    pricing = {
        "self_hosted_vllm": f"train {gpu_s / 3600:,.2f} GPU-h x ${cfg.gpu_price_per_hour}/h; serve {mtok:,.0f}M tokens "
                            f"at {cfg.serving_tokens_per_s:,.0f} tokens/s, busy {cfg.serving_utilisation:.0%} of "
                            f"each paid hour, {cfg.min_gpus_always_on} GPU(s) always on "
                            f"(${cfg.min_gpus_always_on * cfg.gpu_price_per_hour * HOURS_PER_MONTH:,.0f}/month floor)",
        "modal": f"train {gpu_s:,.0f} GPU-s x ${cfg.modal_gpu_price_per_s}/s; serve {serve_s:,.0f} busy GPU-s "
                 f"/ {cfg.modal_serving_utilisation:.0%} billed-time busy x ${cfg.modal_gpu_price_per_s}/s",
        "hosted_fine_tune": f"train {t['train_tokens'] * cfg.training_runs / 1e6:,.2f}M tokens (x epochs) x "
                            f"${cfg.hosted_ft_price_per_m_train_tokens}/M; serve ${cfg.hosted_ft_price_in_per_m}/M in, "
                            f"${cfg.hosted_ft_price_out_per_m}/M out",
        "hosted_frontier": f"no training; ${cfg.hosted_price_in_per_m}/M in, ${cfg.hosted_price_out_per_m}/M out"}
    by_name = {r["name"]: r for r in result["options"]}
    rows = []
    for name, (trained, served) in ROUTES.items():
        r = by_name[name]
        rows.append({"name": name, "label": r["label"], "trained_on": trained, "served_on": served,
                     "training_cost": r["training_cost"], "monthly_cost": r["monthly_cost"],
                     "per_m_tokens": r["per_m_tokens"],
                     "horizon_cost": round(r["training_cost"] + months * monthly(cfg, name), 2),
                     "pricing": pricing[name]})
    best = min(rows, key=lambda r: r["horizon_cost"])
    runner_up = min((r for r in rows if r is not best), key=lambda r: r["horizon_cost"])
    headline = (f"{best['label']} at {cfg.monthly_requests:,} requests/month: ${best['horizon_cost']:,.0f} over "
                f"{months:g} months, training included, against ${runner_up['horizon_cost']:,.0f} for the next "
                f"cheapest ({runner_up['label']})")
    return {"requests": cfg.monthly_requests, "horizon_months": months, "rows": rows, "favoured": best["name"],
            "headline": headline, "training": t}


def format_routes(table):
    """The routes table as text, with how each row was priced."""
    months = f"{table['horizon_months']:g} months $"
    head = f"{'route':<42}{'training $':>12}{'$/month':>11}{months:>14}"
    lines = [head] + [f"{r['label'] + (' *' if r['name'] == table['favoured'] else ''):<42}{r['training_cost']:>12,.2f}"
                      f"{r['monthly_cost']:>11,.0f}{r['horizon_cost']:>14,.0f}" for r in table["rows"]]
    lines += ["", "* favoured: " + table["headline"], ""] + [f"{r['name']}: {r['pricing']}" for r in table["rows"]]
    return "\n".join(lines)


def format_options(rows):
    """The options table as text. `$/M here` is the month's cost over its tokens at this volume
    (an always-on floor included); `floor $/mo` is what an option pays at zero traffic."""
    def f(v, fmt):
        return "-" if v is None else format(v, fmt)
    head = (f"{'option':<36}{'$/M here':>9}{'$/month':>11}{'floor $/mo':>11}{'training $':>12}{'saves $/mo':>12}"
            f"{'break-even/mo':>15}{'pays back in':>15}")
    lines = [head] + [f"{r['label']:<36}{f(r['per_m_tokens'], '.3f'):>9}{f(r['monthly_cost'], ',.0f'):>11}"
                      f"{f(r.get('floor_monthly'), ',.0f'):>11}{f(r['training_cost'], ',.2f'):>12}"
                      f"{f(r['savings_vs_hosted'], ',.0f'):>12}{f(r['break_even_volume'], ',.0f'):>15}"
                      f"{'-' if r['payback_months'] is None else when(r['payback_months']):>15}" for r in rows]
    own = next((r for r in rows if r.get("per_token_equivalent_at_full_volume") is not None), None)
    if own:
        lines.append("(self-hosted per-token equivalent at full volume: "
                     f"${own['per_token_equivalent_at_full_volume']:.3f}/M, "
                     "the GPU busy its stated share of every hour; not its price below break-even)")
    return "\n".join(lines)


def explain(result, prices=True):
    """Where every input came from (measured, measured but not used, assumed), the prices (all
    assumed) and the training estimate. `prices=False` leaves out the price lines and the training estimate's
    assumption, for a second case priced at the same prices right after the first."""
    t = result["training"]
    lines = [f"training: {t['gpu_hours']:.2f} GPU-hours ({60 * t['gpu_hours']:.0f} min) per run, "
             f"{t['train_tokens']:,.0f} tokens x epochs, {'estimated' if t['estimated'] else 'measured'}"]
    if t["estimated"] and prices:
        lines.append(f"  assumption: {t['assumption']}")
    notes = {}

    def why(text):   # a tokenizer's sentence, the same on every count it made, is said once, under the lines
        head, sep, counted = text.partition("counted with ")
        if not sep or len(counted) < 60:
            return text
        mark = notes.setdefault(sep + counted, f"[{len(notes) + 1}]")
        return f"{head}counted as {mark}"

    lines += [f"measured  {k} = {_g(v['value'])} ({v['source']}: {why(v['why'])})"
              for k, v in result["measured"].items()]
    lines += [f"not used  {k} = {_g(v['value'])} ({v['source']}: {why(v['why'])})"
              for k, v in result["not_used"].items()]
    lines += [f"assumed   {k} = {_g(v['value'])} ({v['source']}; {why(v['why'])})"
              for k, v in result["assumed"].items() if v["value"] is not None]
    lines += [f"price     {k} = {v['value']:g} ({v['source']})" for k, v in result.get("prices", {}).items() if prices]
    c = result.get("classical_reference") or {}
    if c and not c.get("priced"):
        lines.append(f"classical reference not priced: {c['why']}")
    lines += [f"{mark} {text}" for text, mark in notes.items()]
    return "\n".join(lines)


def _g(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def record_fields(result, priced, route_table, seed, seed_figures, seed_vs_run):
    """06's record fields: the run's priced options and what they rest on (measured, assumed, not used), each
    task priced, the routes, and the seed's worked example beside the run."""
    keep = ("options", "measured", "not_used", "assumed", "prices", "training", "classical_reference",
            "escalation_share", "verdict")
    return {**{k: result[k] for k in keep}, "seed_vs_run": seed_vs_run, "tasks": tasks_record(priced),
            "routes": {k: route_table[k] for k in ("requests", "horizon_months", "rows", "favoured", "headline")},
            "favoured_route": route_table["favoured"],
            "seed_case": {**seed_figures, "options": seed["options"], "training": seed["training"]}}


def escalation_sentence(result, target):
    """What 06's routing curve reads: the share each route escalates to the hosted model for kept accuracy `target`
    (the fine-tune's from 04's curve, 00's cheap classifier's from its own), or that no share reaches it."""
    def share(v, who):
        return (f"{who} escalates {v:.0%} of tickets to the hosted model to keep accuracy {target:g} on the rest"
                if v is not None else
                f"{who}: no escalated share keeps accuracy {target:g}, so that route is priced out")

    said = [share(result.get("escalation_share"), "the fine-tune")]
    cheap = (result.get("measured") or {}).get("classical_escalation_share")
    if cheap:
        said.append(share(cheap["value"], "TF-IDF first"))
    return "; ".join(said) + "."
