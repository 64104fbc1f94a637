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
and, when 00 measured its speed, `classical_reference`: 00's TF-IDF + logistic regression on CPUs
paid by the vCPU-hour (what the cheap system would cost instead; not a fine-tune, so never the
verdict's best option), and `classical_routed`: that classifier first, its least confident share
escalated to the hosted model, the share chosen from 00's curve of the classifier (the routing 01
reads), also never the verdict's pick: the cheap route a fine-tune has to be worth more than.
A GPU paid by the hour is paid all month (MIN_GPUS_ALWAYS_ON, default 1): below its break-even
volume self-hosting costs more than the hosted model, and the verdict says so. Its per-token
equivalent at full volume ($/M at the stated throughput and busy share, the seed's $0.30/M) is
shown only under that name, never as self-hosting's price.
Training time is estimated as 6*N*T FLOPs over the GPU's peak x an assumed MFU (see
`training_estimate`) unless a GPU run measured it. `compare` returns the table and a cost-only
verdict; whether to ship also needs 04's quality decision. What a run measured, and each of its tasks
priced with it, is cost_run's; the tables and text 06 shows (the four routes among them) are cost_tables'.
"""
from dataclasses import asdict, dataclass, fields, replace

from . import stages
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
           "classical_reference": "TF-IDF + logistic regression, CPU",
           "classical_routed": "TF-IDF + escalation to hosted"}
FINE_TUNED = ("self_hosted_vllm", "modal", "hosted_fine_tune", "routed")   # what the cost verdict picks from
# inputs a run can measure: (config field, run file it comes from)
MEASURABLE = {name: stages.record_name(stem) for name, stem in (
    ("serving_tokens_per_s", stages.SERVE), ("input_tokens_per_request", stages.SERVE),
    ("output_tokens_per_request", stages.SERVE), ("hosted_input_tokens_per_request", stages.BASELINE),
    ("hosted_output_tokens_per_request", stages.BASELINE), ("train_examples", stages.CURATE),
    ("tokens_per_example", stages.CURATE), ("training_gpu_hours", stages.TRAIN), ("escalation_share", stages.EVALUATE),
    ("classical_rows_per_s", stages.BASELINE), ("classical_escalation_share", stages.BASELINE))}
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
    hosted_input_tokens_per_request: float | None = None   # the hosted model's prompt (its instructions and shots,
                                                 # 00 counts it); None: the fine-tune's (the seed's one figure)
    hosted_output_tokens_per_request: float | None = None  # the hosted model's answer; None: the fine-tune's
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
    hosted_ft_price_per_m_train_tokens: float = 0.48   # $/M tokens x epochs, LoRA on an 8B (Together AI list
                                                       # price, 2025)
    hosted_ft_price_in_per_m: float = 0.18       # $/M input tokens, the 8B adapter served (Together AI list
                                                 # price, 2025)
    hosted_ft_price_out_per_m: float = 0.18      # $/M output tokens, same
    modal_gpu_price_per_s: float = 0.000694      # $/GPU-second, A100 80GB on Modal ($2.4984/h; modal.com/pricing as
                                                 # quoted 2026-05-07); keep GPU_PEAK_TFLOPS on the same GPU
    modal_serving_utilisation: float = 0.7       # share of billed Modal GPU-seconds spent serving (assumed: cold
                                                 # starts and the idle scale-down window are billed too)
    cpu_price_per_hour: float = 0.05             # $/vCPU-hour for the classical reference (assumed list price)
    classical_rows_per_s: float | None = None    # rows one CPU process classifies per second (00 measures it);
                                                 # None: no row
    classical_escalation_share: float | None = None   # TF-IDF routed: share escalated (00's curve sets it); None:
                                                 # not priced
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
                p.append(f"{name.upper()}={f[name]} must be a share in (0, 1]; set {name.upper()} in the "
                         "parameters cell")
        if self.escalation_share is None or not 0 <= self.escalation_share < 1:
            p.append(f"ESCALATION_SHARE={self.escalation_share} must be in [0, 1); 0.1 sends a tenth to the "
                     "hosted model")
        if self.training_gpu_hours is not None and self.training_gpu_hours < 0:
            p.append(f"TRAINING_GPU_HOURS={self.training_gpu_hours} must be >= 0, or None to estimate it")
        if self.classical_rows_per_s is not None and self.classical_rows_per_s <= 0:
            p.append(f"classical_rows_per_s={self.classical_rows_per_s} must be > 0, or None when 00 did not "
                     "measure it")
        if self.training_runs is None or self.training_runs < 1:
            p.append(f"TRAINING_RUNS={self.training_runs} must be >= 1")
        for name in ("hosted_input_tokens_per_request", "hosted_output_tokens_per_request"):
            if f[name] is not None and f[name] < 0:
                p.append(f"{name}={f[name]} must be >= 0, or None for the fine-tune's figure")
        if (self.input_tokens_per_request or 0) + (self.output_tokens_per_request or 0) <= 0:
            p.append("INPUT_TOKENS_PER_REQUEST + OUTPUT_TOKENS_PER_REQUEST must be > 0")
        if p:
            raise ConfigError(p, "invalid cost parameters")

    @property
    def hosted_tokens(self):
        """(input, output) tokens of a request to the hosted model: its own counts, else the fine-tune's."""
        hin, hout = self.hosted_input_tokens_per_request, self.hosted_output_tokens_per_request
        return (self.input_tokens_per_request if hin is None else hin,
                self.output_tokens_per_request if hout is None else hout)

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
    hin, hout = cfg.hosted_tokens   # the hosted model is sent its own prompt (instructions and shots)
    hosted = (hin * cfg.hosted_price_in_per_m + hout * cfg.hosted_price_out_per_m) / 1e6
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
        per_request = cfg.cpu_price_per_hour / (cfg.classical_rows_per_s * 3600 * cfg.serving_utilisation)
        out["classical_reference"] = (cfg.cpu_price_per_hour * HOURS_PER_MONTH, per_request, 0.0)
        if cfg.classical_escalation_share is not None:
            out["classical_routed"] = (cfg.cpu_price_per_hour * HOURS_PER_MONTH, per_request,
                                       cfg.classical_escalation_share * hosted)
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


# ---------------------------------------------------------------- the run's measurements in place
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
    if measured.get("classical_escalation_curve") and cfg.use_measured:
        share = choose_escalation(measured["classical_escalation_curve"]["value"], cfg.target_accuracy)
        used["classical_escalation_share"] = {
            "value": share, "source": MEASURABLE["classical_escalation_share"], "usable": True,
            "why": (f"smallest share of 00's cheap classifier's least confident rows to escalate for kept accuracy >= "
                    f"{cfg.target_accuracy}" if share is not None else
                    f"no share of 00's cheap classifier's rows reaches kept accuracy {cfg.target_accuracy}: "
                    "not priced")}
    values = {k: v["value"] for k, v in used.items() if k != "escalation_share"}
    out = replace(cfg, **values)
    assumed = {}
    for k in MEASURABLE:
        if k in used or (k.startswith("classical_") and getattr(out, k) is None):
            continue
        why = (measured[k]["why"] if k in measured and not measured[k]["usable"] else
               "USE_MEASURED=False" if k in measured else "not measured in this run")
        if k.startswith("hosted_") and getattr(out, k) is None:   # the seed's view: one figure for both sides
            mine = k.removeprefix("hosted_")
            assumed[k] = {"value": getattr(out, mine), "source": f"the fine-tune's {mine}",
                          "why": f"{why}: the hosted model is priced with the fine-tune's prompt, as the seed does"}
            continue
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
                "classical_reference": 0.0,   # fitting TF-IDF + logistic regression takes seconds of one CPU
                "classical_routed": 0.0}
    own_tokens = cfg.input_tokens_per_request + cfg.output_tokens_per_request
    hosted = monthly(cfg, "hosted_frontier")
    rates = _rates(cfg, escalation)
    rows = []
    for name in rates:
        cost_m = monthly(cfg, name, escalation=escalation)
        savings = hosted - cost_m
        tokens = sum(cfg.hosted_tokens) if name == "hosted_frontier" else own_tokens   # what this option is sent
        mtok = cfg.monthly_requests * tokens / 1e6
        row = {"name": name, "label": OPTIONS[name],
               "kind": ("hosted" if name == "hosted_frontier" else "reference" if name not in FINE_TUNED
                        else "fine_tuned"),
               "per_m_tokens": round(cost_m / mtok, 4) if mtok else None,   # at this volume, floor included
               "tokens_per_request": round(tokens, 1),
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
    """What 00's classical reference would cost instead, or why it has no row."""
    row = next((r for r in rows if r["name"] == "classical_reference"), None)
    if row is None:
        return {"priced": False, "why": "00 recorded no reference.rows_per_s (its classifier's speed): not measured, "
                                        "so not priced" if "classical_rows_per_s" not in measured else
                                        measured["classical_rows_per_s"]["why"]}
    ref = (measured.get("classical_rows_per_s") or {}).get("reference") or {}
    return {"priced": True, "name": ref.get("name"), "macro_f1": ref.get("macro_f1"),
            "rows_per_s": cfg.classical_rows_per_s, "cpu_price_per_hour": cfg.cpu_price_per_hour,
            "monthly_cost": row["monthly_cost"], "savings_vs_hosted": row["savings_vs_hosted"],
            "pricing": f"{cfg.monthly_requests:,} requests / ({cfg.classical_rows_per_s:,.0f} rows/s x 3,600 x "
                       f"{cfg.serving_utilisation:.0%} busy) vCPU-hours x ${cfg.cpu_price_per_hour}/vCPU-hour (assumed "
                       f"list price), at least one vCPU all month (${cfg.cpu_price_per_hour * HOURS_PER_MONTH:,.2f})"}


def when(months):
    """A payback time in the unit that reads: "under an hour", "5.2 hours", "3.0 days", "2.5 months"."""
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
        headline = (f"{best['label']}: ${best['monthly_cost']:,.0f}/month vs ${hosted['monthly_cost']:,.0f} hosted "
                    f"{at}, saves ${best['savings_vs_hosted']:,.0f}/month; training ${best['training_cost']:,.2f} "
                    f"pays back in {when(best['payback_months'])}")
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
    hosted_toks = [k for k in ("hosted_input_tokens_per_request", "hosted_output_tokens_per_request") if k in assumed]
    if hosted_toks:
        reasons.append(f"cost: {', '.join(hosted_toks)} not counted ({assumed[hosted_toks[0]]['why']}); 00 counts "
                       "the prompt the hosted model is sent, instructions and examples included: run 00 again")
    proxy = (used.get("hosted_input_tokens_per_request") or {}).get("proxy")
    if proxy:
        reasons.append(f"cost: {proxy}")
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
