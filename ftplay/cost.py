"""Cost stage: what each way of serving the task costs a month, and when fine-tuning pays back.

Five options, priced from one `CostConfig` (every price is a parameter):
  hosted_frontier   the hosted model you use today, per input/output token
  self_hosted_vllm  the fine-tuned model on your own GPU: $/hour over tokens/s x busy share
  modal             the same training and vLLM server on GPUs rented by the second (Modal): you
                    pay the seconds a container runs, so idle time is only cold starts and the
                    scale-down window (`modal_serving_utilisation`)
  hosted_fine_tune  a provider that trains per training token and serves adapters per token
  routed            the fine-tuned model answers everything; its least confident share is
                    escalated (sent again) to the hosted model, the share chosen from 04's
                    selective-prediction curve
and, when 01 measured its speed, `classical_reference`: 01's TF-IDF + logistic regression on CPUs
paid by the vCPU-hour (what the cheap system would cost instead; not a fine-tune, so never the
verdict's best option).
A GPU paid by the hour is paid all month (MIN_GPUS_ALWAYS_ON, default 1): below its break-even
volume self-hosting costs more than the hosted model, and the verdict says so. Its per-token
equivalent at full volume ($/M at the stated throughput and busy share, the seed's $0.30/M) is
shown only under that name, never as self-hosting's price.
Each task of the run is priced with its own prompt and answer tokens (`by_task`: a reply is dozens of
output tokens where a label is a few; the reply task has no routing, since a reply has no confidence
to escalate on). Tokens per request count only when the priced model's own tokenizer counted them (a hub model, a
local folder, a `tiny:` stand-in, which carries its family's real tokenizer); the embedded model's
tiny tokenizer says nothing about an 8B's, so with it they are assumptions from the parameters cell.
Training time is estimated as 6*N*T FLOPs over the GPU's peak x an assumed MFU (see
`training_estimate`) unless a GPU run measured it. `compare` returns the table and a cost-only
verdict; whether to ship also needs 04's quality decision. `routes` narrows the table to the four
ways to train and serve (own GPU, Modal, hosted fine-tune, hosted frontier) and names the cheapest
over MAX_PAYBACK_MONTHS, training included.
"""
from dataclasses import asdict, dataclass, fields, replace

from . import records, stages
from .errors import ConfigError

TRAINING_ASSUMPTION = (
    "FLOPs = 6 x params x tokens x epochs, also for LoRA/QLoRA: the forward pass (2NT) and the backward "
    "pass through the frozen base's activations (2NT) dominate; the frozen weights get no gradient "
    "(saving 2NT) but gradient checkpointing runs the forward again (adding 2NT); adapter FLOPs are <1%. "
    "Time = FLOPs / (GPU peak x assumed MFU).")
HOURS_PER_MONTH = 730            # 24 x 365 / 12: a GPU kept on all month
OPTIONS = {"hosted_frontier": "hosted frontier model", "self_hosted_vllm": "fine-tuned, self-hosted vLLM",
           "modal": "fine-tuned, vLLM on Modal (per s)", "hosted_fine_tune": "fine-tuned, hosted (per token)",
           "routed": "fine-tuned + escalation to hosted",
           "classical_reference": "TF-IDF + logistic regression, CPU"}
FINE_TUNED = ("self_hosted_vllm", "modal", "hosted_fine_tune", "routed")   # what the cost verdict picks from
# The routes `routes` compares: where the adapter is trained and where it is served.
ROUTES = {"self_hosted_vllm": ("own GPU (paid by the hour)", "vLLM on own GPU"),
          "modal": ("Modal GPU (paid by the second)", "vLLM on Modal GPU (per second)"),
          "hosted_fine_tune": ("provider (per training token)", "provider (per token)"),
          "hosted_frontier": ("no training", "hosted frontier model (per token)")}
# inputs a run can measure: (config field, run file it comes from)
MEASURABLE = {name: stages.record_name(stem) for name, stem in (
    ("serving_tokens_per_s", stages.SERVE), ("input_tokens_per_request", stages.SERVE),
    ("output_tokens_per_request", stages.SERVE), ("train_examples", stages.CURATE),
    ("tokens_per_example", stages.CURATE), ("training_gpu_hours", stages.TRAIN), ("escalation_share", stages.EVALUATE),
    ("classical_rows_per_s", stages.BASELINE))}
STOPPED_ENOUGH = 0.9   # share of 06's answers that must end at end of turn for their mean length to count
# Where each price comes from when left at its default. Every price is an assumption: none is measured.
PRICE_SOURCES = {
    "hosted_price_in_per_m": "the seed's example: the hosted model (Sonnet) at $3/M input tokens, list price as of "
                             "2025, not re-checked",
    "hosted_price_out_per_m": "the same model's list price for output tokens as of 2025, not re-checked",
    "gpu_price_per_hour": "one A100 80GB on demand, $1.5-2.5/h at GPU clouds (list prices as of 2025, not re-checked)",
    "hosted_ft_price_per_m_train_tokens": "Together AI list price, LoRA on an 8B, per M tokens x epochs (2025)",
    "hosted_ft_price_in_per_m": "Together AI list price, an 8B adapter served, input tokens (2025)",
    "hosted_ft_price_out_per_m": "Together AI list price, an 8B adapter served, output tokens (2025)",
    "modal_gpu_price_per_s": "modal.com/pricing as quoted 2026-05-07: A100 80GB at $2.4984/h",
    "cpu_price_per_hour": "assumed list price of one vCPU-hour: general-purpose cloud instances on demand, about "
                          "$0.10/h for 2 vCPUs (2025, not re-checked)"}


@dataclass(frozen=True)
class CostConfig:
    """Workload, prices and hardware; defaults restate the seed's worked example (see `seed_case`),
    except the GPU kept on all month (MIN_GPUS_ALWAYS_ON=1), which the seed's per-token view leaves out."""
    monthly_requests: int = 3_000_000
    input_tokens_per_request: float = 1_000
    output_tokens_per_request: float = 0         # a label is a few tokens; the seed prices input only
    hosted_price_in_per_m: float = 3.00          # $/M input tokens, hosted frontier model
    hosted_price_out_per_m: float = 15.00        # $/M output tokens, hosted frontier model
    gpu_price_per_hour: float = 2.16             # $/GPU-hour, serving and training
    serving_tokens_per_s: float = 4_000.0        # prompt + completion tokens/s one GPU serves when busy
    serving_utilisation: float = 0.5             # share of each paid hour the GPU is busy
    min_gpus_always_on: int = 1                  # GPUs paid all month whatever the traffic (0: per-token view)
    training_gpu_hours: float | None = None      # None: estimate from 6*N*T
    model_params_b: float = 8.0                  # billions of parameters
    train_examples: int = 1_000
    tokens_per_example: float = 400
    epochs: float = 3.0
    gpu_peak_tflops: float = 312.0               # A100 dense bf16
    mfu_assumed: float = 0.2                     # QLoRA on one GPU: dequantising 4-bit weights, short sequences
    training_runs: int = 1                       # runs paid for: tries, and re-fine-tunes when the base changes
    hosted_ft_price_per_m_train_tokens: float = 0.48   # $/M tokens x epochs, LoRA on an 8B (Together AI list price, 2025)
    hosted_ft_price_in_per_m: float = 0.18       # $/M input tokens, the 8B adapter served (Together AI list price, 2025)
    hosted_ft_price_out_per_m: float = 0.18      # $/M output tokens, same
    modal_gpu_price_per_s: float = 0.000694      # $/GPU-second, A100 80GB on Modal ($2.4984/h; modal.com/pricing as
                                                 # quoted 2026-05-07); keep GPU_PEAK_TFLOPS on the same GPU
    modal_serving_utilisation: float = 0.7       # share of billed Modal GPU-seconds spent serving (assumed: cold
                                                 # starts and the idle scale-down window are billed too)
    cpu_price_per_hour: float = 0.05             # $/vCPU-hour for the classical reference (assumed list price)
    classical_rows_per_s: float | None = None    # rows one CPU process classifies per second (01 measures it); None: no row
    target_accuracy: float = 0.90                # routed: accuracy the kept (not escalated) share must reach
    escalation_share: float = 0.10               # routed: share sent to the hosted model when 04 is absent
    max_payback_months: float = 6.0              # "cheaper" also needs training to pay back this fast
    use_measured: bool = True                    # replace the figures above by this run's measurements
    model: str = "embedded"                      # MODEL served: whose tokenizer counted the run's tokens

    def __post_init__(self):
        p, f = [], asdict(self)
        for name in ("hosted_price_in_per_m", "hosted_price_out_per_m", "gpu_price_per_hour",
                     "hosted_ft_price_per_m_train_tokens", "hosted_ft_price_in_per_m", "hosted_ft_price_out_per_m",
                     "modal_gpu_price_per_s", "cpu_price_per_hour",
                     "monthly_requests", "input_tokens_per_request", "output_tokens_per_request",
                     "train_examples", "tokens_per_example", "min_gpus_always_on"):
            if f[name] is None or f[name] < 0:
                p.append(f"{name.upper()}={f[name]} must be >= 0; set {name.upper()} in the parameters cell")
        for name in ("serving_tokens_per_s", "model_params_b", "epochs", "gpu_peak_tflops", "max_payback_months"):
            if f[name] is None or f[name] <= 0:
                p.append(f"{name.upper()}={f[name]} must be > 0; set {name.upper()} in the parameters cell")
        for name in ("serving_utilisation", "mfu_assumed", "target_accuracy", "modal_serving_utilisation"):
            if f[name] is None or not 0 < f[name] <= 1:
                p.append(f"{name.upper()}={f[name]} must be a share in (0, 1]; set {name.upper()} in the parameters cell")
        if self.escalation_share is None or not 0 <= self.escalation_share < 1:
            p.append(f"ESCALATION_SHARE={self.escalation_share} must be in [0, 1); 0.1 sends a tenth to the hosted model")
        if self.training_gpu_hours is not None and self.training_gpu_hours < 0:
            p.append(f"TRAINING_GPU_HOURS={self.training_gpu_hours} must be >= 0, or None to estimate it")
        if self.classical_rows_per_s is not None and self.classical_rows_per_s <= 0:
            p.append(f"classical_rows_per_s={self.classical_rows_per_s} must be > 0, or None when 01 did not measure it")
        if self.training_runs is None or self.training_runs < 1:
            p.append(f"TRAINING_RUNS={self.training_runs} must be >= 1")
        if (self.input_tokens_per_request or 0) + (self.output_tokens_per_request or 0) <= 0:
            p.append("INPUT_TOKENS_PER_REQUEST + OUTPUT_TOKENS_PER_REQUEST must be > 0")
        if p:
            raise ConfigError(p, "invalid cost parameters")

    @property
    def train_tokens(self):
        """Training tokens per epoch."""
        return self.train_examples * self.tokens_per_example


def seed_case():
    """The seed's worked example: a 3M-request/month classifier, 1k-token prompts, $3.00/M hosted
    against a fine-tuned 8B on vLLM at $0.30/M (2.16 $/h / (4,000 tokens/s x 3,600 x 0.5)),
    trained on 1k examples x 400 tokens x 3 epochs on one A100; the seed's per-token view (no GPU
    kept on all month: `replace(seed_case(), min_gpus_always_on=1)` prices one)."""
    return CostConfig(monthly_requests=3_000_000, input_tokens_per_request=1_000, output_tokens_per_request=0,
                      hosted_price_in_per_m=3.00, hosted_price_out_per_m=15.00, gpu_price_per_hour=2.16,
                      serving_tokens_per_s=4_000.0, serving_utilisation=0.5, min_gpus_always_on=0,
                      training_gpu_hours=None, model_params_b=8.0, train_examples=1_000, tokens_per_example=400,
                      epochs=3.0, gpu_peak_tflops=312.0, mfu_assumed=0.2, use_measured=False,
                      model="meta-llama/Llama-3.1-8B-Instruct")


def training_estimate(params_b, tokens, epochs, peak_tflops, mfu):
    """GPU-hours to train: 6 * N * T * epochs FLOPs at peak_tflops x mfu (TRAINING_ASSUMPTION)."""
    flops = 6 * params_b * 1e9 * tokens * epochs
    return flops / (peak_tflops * 1e12 * mfu) / 3600


def self_hosted_per_m(price_per_hour, tokens_per_s, utilisation):
    """$ per million tokens on a GPU paid by the hour, busy `utilisation` of each hour: the per-token
    equivalent at full volume, not what a GPU kept on all month costs at a smaller one."""
    return price_per_hour * 1e6 / (tokens_per_s * 3600 * utilisation)


def _rates(cfg, escalation):
    """{option: (floor $/month, machine $ per request above the floor, per-token $ per request)}."""
    tokens = cfg.input_tokens_per_request + cfg.output_tokens_per_request
    hosted = (cfg.input_tokens_per_request * cfg.hosted_price_in_per_m
              + cfg.output_tokens_per_request * cfg.hosted_price_out_per_m) / 1e6
    own = tokens * self_hosted_per_m(cfg.gpu_price_per_hour, cfg.serving_tokens_per_s, cfg.serving_utilisation) / 1e6
    floor = cfg.min_gpus_always_on * cfg.gpu_price_per_hour * HOURS_PER_MONTH
    modal = tokens * self_hosted_per_m(cfg.modal_gpu_price_per_s * 3600, cfg.serving_tokens_per_s,
                                       cfg.modal_serving_utilisation) / 1e6
    out = {"hosted_frontier": (0.0, 0.0, hosted), "self_hosted_vllm": (floor, own, 0.0), "modal": (0.0, modal, 0.0),
           "hosted_fine_tune": (0.0, 0.0, (cfg.input_tokens_per_request * cfg.hosted_ft_price_in_per_m
                                           + cfg.output_tokens_per_request * cfg.hosted_ft_price_out_per_m) / 1e6)}
    if escalation is not None:
        out["routed"] = (floor, own, escalation * hosted)
    if cfg.classical_rows_per_s:   # one vCPU kept on all month; more as the requests need them
        out["classical_reference"] = (cfg.cpu_price_per_hour * HOURS_PER_MONTH,
                                      cfg.cpu_price_per_hour / (cfg.classical_rows_per_s * 3600 * cfg.serving_utilisation),
                                      0.0)
    return out


def monthly(cfg, option, requests=None, escalation=None):
    """$ a month for `option` at `requests` a month (default cfg.monthly_requests). Self-hosted GPUs
    cost max(floor, per-token): the always-on GPUs serve traffic up to their capacity, then you pay
    per token; per-token (hosted) parts add on top."""
    requests = cfg.monthly_requests if requests is None else requests
    floor, gpu, tok = _rates(cfg, escalation if option == "routed" else None)[option]
    return max(floor, gpu * requests) + tok * requests


def break_even_volume(cfg, option, escalation=None):
    """Requests a month above which `option` costs less than the hosted model; 0 when it is cheaper
    at every volume, None when it never is."""
    rates = _rates(cfg, escalation if option == "routed" else None)
    floor, gpu, tok = rates[option]
    hosted = rates["hosted_frontier"][2]
    if hosted - tok - gpu <= 0:
        return None
    return floor / (hosted - tok)   # in the floor region, where the GPU is not yet full


def payback_months(training_cost, savings):
    """Months of savings that repay training; None when it never pays back (no savings)."""
    if savings is None or savings <= 0:
        return None
    return training_cost / savings


def choose_escalation(curve, target):
    """Smallest escalated share whose kept accuracy reaches `target`, or None when none does."""
    ok = [p["escalated"] for p in curve or [] if p.get("accuracy_kept") is not None
          and p["escalated"] < 1 and p["accuracy_kept"] >= target]
    return min(ok) if ok else None


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
        return True, f"counted by {m[len(standins.PREFIX):]}'s own tokenizer (the stand-in carries it, ids as the hub's)"
    return True, f"counted by {m}'s own tokenizer"


def read_measured(run_dir, cfg, task=None):
    """This run's measurements for `task` (default the run directory's own), each {"value", "source",
    "usable", "why"}; absent files add nothing. 01-04's records come from the task's folder
    (`records.task_runs`), 06's from the run directory, its load test read for the task's own adapters
    (06's `adapter_tasks`), so each task is priced with its own prompt and answer tokens.
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

    def put(name, value, why="", usable=True):
        m[name] = {"value": value, "source": MEASURABLE[name], "usable": bool(usable), "why": why}

    tok_ok, tok_why = tokenizer_source(cfg.model)
    device = _device(train)
    params = train.get("total_params") or 0
    n = sum((v or {}).get("train", 0) for v in curate.at("labels", default={}).values()) or curate.get("rows_out")
    if n:
        put("train_examples", n, "train split of the curated data")
    trained_on = train.at("base_model", "requested")   # 02 records no model; 03 trains on the one 02 counted with
    if curate.at("tokens", "p50"):
        ok, why = (tok_ok, tok_why) if trained_on in (None, cfg.model) else (
            False, f"03 trained on MODEL={trained_on!r}, 05 prices MODEL={cfg.model!r}: give both the same MODEL")
        put("tokens_per_example", curate.at("tokens", "p50"), f"median tokens per curated example, {why}", ok)
    if train.get("seconds"):
        put("training_gpu_hours", train["seconds"] / 3600, *_hardware(device, params, cfg, "training"))
    for name, field in (("escalation_curve", "selective_curve"), ("quality_decision", "decision")):
        if ev.get(field):
            m[name] = {"value": ev[field], "source": stages.record_name(stages.EVALUATE), "usable": True, "why": ""}
    ref = baseline.at("reference", default={})
    if ref.get("rows_per_s") and task == stages.CLASSIFY:   # the reply task's reference retrieves canned replies
        put("classical_rows_per_s", ref["rows_per_s"], f"01's {ref.get('name', 'reference')} classified the held-out "
            "rows at this rate in one process on this machine's CPU, priced as one vCPU")
        m["classical_rows_per_s"]["reference"] = {k: ref.get(k) for k in ("name", "macro_f1", "rows_per_s", "seconds")}
    served = serve.at("model", "requested")
    if served is not None and served != cfg.model:
        tok_ok, tok_why = False, f"06 served MODEL={served!r}, 05 prices MODEL={cfg.model!r}: give both the same MODEL"
    lt = serve.at("load_test", default={})
    names = task_adapters(serve, task)
    # one task's own prompts: its adapters' requests (06 records adapter_tasks since the reply task; before, one task)
    rows = [lt["per_model"][a] for a in names if a in (lt.get("per_model") or {})] if "adapter_tasks" in serve else []
    ok_requests = (sum(r["requests"] - (r.get("errors") or 0) for r in rows) if rows else
                   (lt.get("requests") or 0) - (lt.get("errors") or 0))
    if ok_requests > 0:
        prompt = sum(r.get("prompt_tokens", 0) for r in rows) if rows else lt.get("prompt_tokens", 0)
        whose = f"{', '.join(names)}'s requests" if rows else "every request"
        put("input_tokens_per_request", prompt / ok_requests,
            f"mean prompt of {whose} in 06's load test ({ok_requests} requests over held-out tickets), {tok_why}", tok_ok)
        value, why, stopped = _answer_length(serve, lt, names)
        put("output_tokens_per_request", value, f"{why}, {tok_why}", stopped and tok_ok)
        if lt.get("total_tokens_per_s"):
            put("serving_tokens_per_s", lt["total_tokens_per_s"],
                *_hardware(_device(serve) or device, params, cfg, "serving"))
        elif lt.get("tokens_per_s"):
            put("serving_tokens_per_s", lt["tokens_per_s"], "06 recorded completion tokens/s only and the cost prices "
                "prompt + completion tokens: run 06 again", False)
    return m


def task_adapters(serve, task):
    """The served names of `task`'s adapters in 06's record (its `adapter_tasks`); for a record written
    before tasks existed, every adapter it served (one task)."""
    tasks = serve.get("adapter_tasks")
    if tasks is None:
        return list(serve.get("adapters_served") or [])
    return [name for name, t in tasks.items() if t == task]


def _answer_length(serve, lt, names=None):
    """(tokens per answer, why, whether answers stopped at end of turn) from 06's load test: the
    fine-tuned adapters' answers (`names`, default every adapter served; the base's are not what
    would be served)."""
    if lt.get("ignore_eos", True):   # records before 06 recorded it ran every answer to MAX_TOKENS
        n = lt["requests"] - (lt.get("errors") or 0)
        return (lt.get("completion_tokens", 0) / n, f"06's load test ran every answer to MAX_TOKENS="
                f"{lt.get('max_tokens')} (ignore_eos), not the real answer length; run 06 again", False)
    per = lt.get("per_model") or {}
    names = [a for a in (serve.get("adapters_served") if names is None else names) or [] if a in per] or list(per)
    rows = [per[a] for a in names] or [lt]
    n = sum(r["requests"] - (r.get("errors") or 0) for r in rows)
    stopped = sum(r.get("stopped", 0) for r in rows)
    why = (f"mean answer of {', '.join(names) or 'every model'} in 06's load test, stopped at end of turn "
           f"({stopped}/{n} stopped, the rest cut at MAX_TOKENS={lt.get('max_tokens')})")
    enough = n > 0 and stopped >= STOPPED_ENOUGH * n
    if not enough:
        why += (f": fewer than {STOPPED_ENOUGH:.0%} stopped by themselves, so the real answer length is unknown "
                "(an adapter that does not end its turn; raise MAX_TOKENS in 06 or train it until it does)")
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


def resolve(cfg, measured=None):
    """(config with usable measurements in place, {name: measurement used}, {name: figure assumed}).
    Each assumed figure is {"value", "source", "why"}: the parameter it comes from and why no
    measurement replaced it."""
    measured = measured or {}
    used = {k: v for k, v in measured.items() if k in MEASURABLE and v["usable"] and cfg.use_measured}
    if measured.get("escalation_curve") and cfg.use_measured:
        share = choose_escalation(measured["escalation_curve"]["value"], cfg.target_accuracy)
        used["escalation_share"] = {"value": share, "source": MEASURABLE["escalation_share"], "usable": True,
                                    "why": f"smallest escalated share with kept accuracy >= {cfg.target_accuracy}"}
    values = {k: v["value"] for k, v in used.items() if k != "escalation_share"}
    out = replace(cfg, **values)
    assumed = {}
    for k in MEASURABLE:
        if k in used or (k == "classical_rows_per_s" and out.classical_rows_per_s is None):
            continue
        why = (measured[k]["why"] if k in measured and not measured[k]["usable"] else
               "USE_MEASURED=False" if k in measured else "not measured in this run")
        assumed[k] = {"value": getattr(out, k), "source": f"parameters cell ({k.upper()})", "why": why}
    if out.training_gpu_hours is None:
        assumed["training_gpu_hours"] = {
            "value": training_estimate(out.model_params_b, out.train_tokens, out.epochs, out.gpu_peak_tflops,
                                       out.mfu_assumed),
            "source": "6NT estimate (TRAINING_ASSUMPTION)", "why": assumed["training_gpu_hours"]["why"]}
    return out, used, assumed


def prices(cfg):
    """Every price in `cfg`, each {"value", "source"}: all of them are assumptions, none is measured."""
    default = {f.name: f.default for f in fields(CostConfig)}
    return {k: {"value": getattr(cfg, k), "source": "assumed: " + (src if getattr(cfg, k) == default[k] else
                                                                   f"{k.upper()} as set in the parameters cell")}
            for k, src in PRICE_SOURCES.items()}


# ---------------------------------------------------------------- the table and the verdict
def compare(cfg, measured=None, routing=True):
    """Price every option at cfg.monthly_requests. Returns {"config" (resolved), "options" (table),
    "escalation_share", "training", "measured", "assumed", "not_used", "prices", "verdict"}; the
    verdict is about cost only, and picks among the fine-tuned options. `routing` False prices no
    escalation (the reply task: a generated reply has no confidence to route on)."""
    cfg, used, assumed = resolve(cfg, measured)
    escalation = used["escalation_share"]["value"] if "escalation_share" in used else cfg.escalation_share
    if not routing:
        escalation = None
    estimated = cfg.training_gpu_hours is None
    hours = assumed["training_gpu_hours"]["value"] if estimated else cfg.training_gpu_hours
    gpu_training = hours * cfg.gpu_price_per_hour * cfg.training_runs
    training = {"hosted_frontier": 0.0, "self_hosted_vllm": gpu_training, "routed": gpu_training,
                "modal": hours * 3600 * cfg.modal_gpu_price_per_s * cfg.training_runs,
                "hosted_fine_tune": cfg.train_tokens * cfg.epochs / 1e6 * cfg.hosted_ft_price_per_m_train_tokens
                * cfg.training_runs,
                "classical_reference": 0.0}   # fitting TF-IDF + logistic regression takes seconds of one CPU
    mtok = cfg.monthly_requests * (cfg.input_tokens_per_request + cfg.output_tokens_per_request) / 1e6
    hosted = monthly(cfg, "hosted_frontier")
    rates = _rates(cfg, escalation)
    rows = []
    for name in rates:
        cost_m = monthly(cfg, name, escalation=escalation)
        savings = hosted - cost_m
        row = {"name": name, "label": OPTIONS[name],
               "kind": "hosted" if name == "hosted_frontier" else "reference" if name not in FINE_TUNED else "fine_tuned",
               "per_m_tokens": round(cost_m / mtok, 4) if mtok else None,   # at this volume, floor included
               "monthly_cost": round(cost_m, 2), "floor_monthly": round(rates[name][0], 2),
               "training_cost": round(training[name], 2), "savings_vs_hosted": round(savings, 2),
               "break_even_volume": None if name == "hosted_frontier" else break_even_volume(cfg, name, escalation),
               "payback_months": None if name == "hosted_frontier" else payback_months(training[name], savings)}
        if name == "self_hosted_vllm":
            row["per_token_equivalent_at_full_volume"] = round(self_hosted_per_m(
                cfg.gpu_price_per_hour, cfg.serving_tokens_per_s, cfg.serving_utilisation), 4)
        rows.append(row)
    not_used = {k: v for k, v in (measured or {}).items() if k in MEASURABLE and k not in used}
    return {"config": cfg, "options": rows, "escalation_share": escalation,
            "training": {"gpu_hours": hours, "estimated": estimated, "runs": cfg.training_runs,
                         "train_tokens": cfg.train_tokens * cfg.epochs,
                         "assumption": TRAINING_ASSUMPTION if estimated else
                         "training time measured on a GPU (03_train_qlora.json)"},
            "measured": used, "assumed": assumed, "not_used": not_used, "prices": prices(cfg),
            "classical_reference": _classical(cfg, rows, measured or {}),
            "verdict": _verdict(cfg, rows, used, assumed, escalation, routing)}


def _classical(cfg, rows, measured):
    """What 01's classical reference would cost instead, or why it has no row."""
    row = next((r for r in rows if r["name"] == "classical_reference"), None)
    if row is None:
        return {"priced": False, "why": "01 recorded no reference.rows_per_s (its classifier's speed): not measured, "
                                        "so not priced" if "classical_rows_per_s" not in measured else
                                        measured["classical_rows_per_s"]["why"]}
    ref = (measured.get("classical_rows_per_s") or {}).get("reference") or {}
    return {"priced": True, "name": ref.get("name"), "macro_f1": ref.get("macro_f1"),
            "rows_per_s": cfg.classical_rows_per_s, "cpu_price_per_hour": cfg.cpu_price_per_hour,
            "monthly_cost": row["monthly_cost"], "savings_vs_hosted": row["savings_vs_hosted"],
            "pricing": f"{cfg.monthly_requests:,} requests / ({cfg.classical_rows_per_s:,.0f} rows/s x 3,600 x "
                       f"{cfg.serving_utilisation:.0%} busy) vCPU-hours x ${cfg.cpu_price_per_hour}/vCPU-hour (assumed "
                       f"list price), at least one vCPU all month (${cfg.cpu_price_per_hour * HOURS_PER_MONTH:,.2f})"}


def _when(months):
    days = months * 30.4
    return ("under an hour" if days < 1 / 24 else f"{days * 24:.1f} hours" if days < 1
            else f"{days:.1f} days" if days < 30.4 else f"{days / 30.4:.1f} months")


def _verdict(cfg, rows, used, assumed, escalation, routing=True):
    by = {r["name"]: r for r in rows}
    hosted = by["hosted_frontier"]
    viable = [r for r in rows if r["name"] in FINE_TUNED and r["savings_vs_hosted"] > 0
              and r["payback_months"] is not None and r["payback_months"] <= cfg.max_payback_months]
    best = min(viable, key=lambda r: r["monthly_cost"]) if viable else hosted
    at = f"at {cfg.monthly_requests:,} requests/month"
    if viable:
        headline = (f"{best['label']}: ${best['monthly_cost']:,.0f}/month vs ${hosted['monthly_cost']:,.0f} hosted {at}, "
                    f"saves ${best['savings_vs_hosted']:,.0f}/month; training ${best['training_cost']:,.2f} pays back "
                    f"in {_when(best['payback_months'])}")
    else:
        headline = f"no fine-tuned option pays back within {cfg.max_payback_months:g} months {at}: stay hosted"
    be = best["break_even_volume"]
    reasons = [f"cost: {headline}" + (f"; cheaper above {be:,.0f} requests/month" if be else "")]
    own = by["self_hosted_vllm"]
    if cfg.min_gpus_always_on:
        floor = f"{cfg.min_gpus_always_on} GPU(s) kept on all month (${own['floor_monthly']:,.0f}) whatever the traffic"
        if own["break_even_volume"] is None:
            reasons.append(f"cost: self-hosted vLLM pays {floor} and never beats the hosted model: its GPU cost per "
                           "request is above the hosted price")
        else:
            side = "above" if cfg.monthly_requests > own["break_even_volume"] else "below"
            reasons.append(f"cost: self-hosted vLLM pays {floor}: cheaper than the hosted model only above "
                           f"{own['break_even_volume']:,.0f} requests/month; {cfg.monthly_requests:,} is {side} that")
    else:
        reasons.append("cost: MIN_GPUS_ALWAYS_ON=0 prices self-hosting per token, as if the GPU were paid only while "
                       "busy; a GPU kept on all month is a floor: set MIN_GPUS_ALWAYS_ON=1")
    toks = [k for k in ("input_tokens_per_request", "output_tokens_per_request") if k in assumed]
    if toks:
        reasons.append(f"cost: {', '.join(toks)} assumed (parameters cell): "
                       f"{assumed[toks[0]]['why']}")
    if not routing:
        reasons.append("cost: a generated reply has no confidence score to escalate on: routing priced out")
    elif escalation is None:
        reasons.append(f"cost: no escalation share reaches TARGET_ACCURACY={cfg.target_accuracy} in 04's curve: "
                       "routing priced out")
    hw = [k for k in ("serving_tokens_per_s", "training_gpu_hours") if k not in used]
    if hw:
        reasons.append(f"cost: {', '.join(hw)} assumed (stated figures, not measured on the GPU priced)")
    return {"cheaper": bool(viable), "best_option": best["name"], "headline": headline, "reasons": reasons,
            "monthly_requests": cfg.monthly_requests,
            "break_even": {r["name"]: r["break_even_volume"] for r in rows if r["name"] in FINE_TUNED}}


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


def read_task(priced):
    """One sentence reading a task's table: its tokens per request and where they came from, the hosted
    bill and the share of it output tokens make, and the cost verdict (the cheapest fine-tuned option)."""
    cfg, by = priced["config"], {r["name"]: r for r in priced["options"]}
    src = {k: "measured" if k in priced["measured"] else "assumed"
           for k in ("input_tokens_per_request", "output_tokens_per_request")}
    hosted = by["hosted_frontier"]
    out_share = (cfg.output_tokens_per_request * cfg.hosted_price_out_per_m /
                 (cfg.input_tokens_per_request * cfg.hosted_price_in_per_m + cfg.output_tokens_per_request
                  * cfg.hosted_price_out_per_m)) if hosted["monthly_cost"] else 0.0
    return (f"{priced['task']} ({', '.join(priced['adapters']) or 'no adapter served'}): "
            f"{cfg.input_tokens_per_request:,.0f} input ({src['input_tokens_per_request']}) and "
            f"{cfg.output_tokens_per_request:,.0f} output tokens ({src['output_tokens_per_request']}) per request; "
            f"the hosted model costs ${hosted['monthly_cost']:,.0f}/month at {cfg.monthly_requests:,} requests, "
            f"{out_share:.0%} of it for output tokens. Cost verdict: {priced['verdict']['headline']}")


def task_record(priced):
    """What 05 records per task (the ship report reads it): tokens and their sources, the table, the verdict."""
    cfg = priced["config"]
    return {"task": priced["task"], "adapters": priced["adapters"],
            "input_tokens_per_request": cfg.input_tokens_per_request,
            "output_tokens_per_request": cfg.output_tokens_per_request,
            "tokens_measured": sorted(k for k in ("input_tokens_per_request", "output_tokens_per_request")
                                      if k in priced["measured"]),
            "options": priced["options"], "verdict": priced["verdict"], "escalation_share": priced["escalation_share"],
            "measured": priced["measured"], "assumed": priced["assumed"], "not_used": priced["not_used"],
            "training": priced["training"], "reading": read_task(priced)}


def format_tasks(priced):
    """Every task's table (format_options) under its reading sentence (read_task)."""
    return "\n\n".join(f"== {task} ==\n{read_task(p)}\n{format_options(p['options'])}" for task, p in priced.items())


def tasks_record(priced):
    """{task: task_record} for 05's record."""
    return {task: task_record(p) for task, p in priced.items()}


def beside_seed(result, seed):
    """The run's own figures beside the seed's worked example, with the seed's GPU kept on all month
    in between: rows {"figure", "seed", "seed_gpu_always_on", "run"} (None where it does not apply)."""
    on = compare(replace(seed["config"], min_gpus_always_on=max(1, result["config"].min_gpus_always_on)))

    def own(r):
        return next(o for o in r["options"] if o["name"] == "self_hosted_vllm")

    def tokens(r, k):
        src = "measured" if k in r["measured"] else "assumed"
        return f"{getattr(r['config'], k):,.0f} ({src})"

    out = []
    for figure, get in (
            ("requests a month", lambda r: f"{r['config'].monthly_requests:,}"),
            ("input tokens per request", lambda r: tokens(r, "input_tokens_per_request")),
            ("output tokens per request", lambda r: tokens(r, "output_tokens_per_request")),
            ("GPUs kept on all month", lambda r: str(r["config"].min_gpus_always_on)),
            ("hosted model $/month", lambda r: f"{r['options'][0]['monthly_cost']:,.0f}"),
            ("self-hosted vLLM $/month", lambda r: f"{own(r)['monthly_cost']:,.0f}"),
            ("self-hosted $/M tokens at this volume", lambda r: f"{own(r)['per_m_tokens']:.2f}"
             if own(r)["per_m_tokens"] is not None else "-"),
            ("per-token equivalent at full volume, $/M", lambda r: f"{own(r)['per_token_equivalent_at_full_volume']:.2f}"),
            ("self-hosted saves $/month", lambda r: f"{own(r)['savings_vs_hosted']:,.0f}"),
            ("self-hosted break-even, requests/month", lambda r: "never" if own(r)["break_even_volume"] is None
             else f"{own(r)['break_even_volume']:,.0f}"),
            ("cheapest fine-tuned option", lambda r: r["verdict"]["best_option"])):
        out.append({"figure": figure, "seed": get(seed), "seed_gpu_always_on": get(on), "run": get(result)})
    return out


# ---------------------------------------------------------------- routes, curves, text
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
                            f"at {cfg.serving_tokens_per_s:,.0f} tokens/s, busy {cfg.serving_utilisation:.0%} of each paid "
                            f"hour, {cfg.min_gpus_always_on} GPU(s) always on "
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


def curves(cfg, volumes, escalation=None):
    """Tidy rows {"option", "requests", "monthly_cost"} for each option over `volumes`, and the
    break-even points {"option", "requests", "monthly_cost"} of the options with a floor. With no
    always-on GPU it adds "self-hosted vLLM, 1 GPU always on" to show where a floor breaks even."""
    series = [(OPTIONS[n], cfg, n) for n in _rates(cfg, escalation)]
    if cfg.min_gpus_always_on == 0:
        series.append(("fine-tuned, self-hosted vLLM, 1 GPU always on", replace(cfg, min_gpus_always_on=1),
                       "self_hosted_vllm"))
    rows = [{"option": label, "requests": v, "monthly_cost": monthly(c, n, v, escalation)}
            for label, c, n in series for v in volumes]
    marks = []
    for label, c, n in series:
        be = None if n == "hosted_frontier" else break_even_volume(c, n, escalation)
        if be:
            marks.append({"option": label, "requests": be, "monthly_cost": monthly(c, "hosted_frontier", be)})
    return rows, marks


def format_options(rows):
    """The options table as text. `$/M here` is the month's cost over its tokens at this volume
    (an always-on floor included); `floor $/mo` is what an option pays at zero traffic."""
    def f(v, fmt):
        return "-" if v is None else format(v, fmt)
    head = (f"{'option':<36}{'$/M here':>9}{'$/month':>11}{'floor $/mo':>11}{'training $':>12}{'saves $/mo':>12}"
            f"{'break-even/mo':>15}{'payback mo':>12}")
    lines = [head] + [f"{r['label']:<36}{f(r['per_m_tokens'], '.3f'):>9}{f(r['monthly_cost'], ',.0f'):>11}"
                      f"{f(r.get('floor_monthly'), ',.0f'):>11}{f(r['training_cost'], ',.2f'):>12}"
                      f"{f(r['savings_vs_hosted'], ',.0f'):>12}{f(r['break_even_volume'], ',.0f'):>15}"
                      f"{f(r['payback_months'], '.2g'):>12}" for r in rows]
    own = next((r for r in rows if r.get("per_token_equivalent_at_full_volume") is not None), None)
    if own:
        lines.append(f"(self-hosted per-token equivalent at full volume: ${own['per_token_equivalent_at_full_volume']:.3f}/M, "
                     "the GPU busy its stated share of every hour; not its price below break-even)")
    return "\n".join(lines)


def explain(result):
    """Where every input came from (measured, measured but not used, assumed), the prices (all
    assumed) and the training estimate."""
    t = result["training"]
    lines = [f"training: {t['gpu_hours']:.2f} GPU-hours ({60 * t['gpu_hours']:.0f} min) per run, "
             f"{t['train_tokens']:,.0f} tokens x epochs, {'estimated' if t['estimated'] else 'measured'}"]
    if t["estimated"]:
        lines.append(f"  assumption: {t['assumption']}")
    lines += [f"measured  {k} = {_g(v['value'])} ({v['source']}: {v['why']})" for k, v in result["measured"].items()]
    lines += [f"not used  {k} = {_g(v['value'])} ({v['source']}: {v['why']})" for k, v in result["not_used"].items()]
    lines += [f"assumed   {k} = {_g(v['value'])} ({v['source']}; {v['why']})"
              for k, v in result["assumed"].items() if v["value"] is not None]
    lines += [f"price     {k} = {v['value']:g} ({v['source']})" for k, v in result.get("prices", {}).items()]
    c = result.get("classical_reference") or {}
    if c and not c.get("priced"):
        lines.append(f"classical reference not priced: {c['why']}")
    return "\n".join(lines)


def _g(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)
