"""Training recipes: TrainConfig, the recipe per model and task, the second adapter's change, what runs them here."""
import importlib.util
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import ranges, stages, standins
from .errors import ConfigError, check, type_problems

ENGINES = ("auto", "unsloth", "trl")
OPTIMIZERS = ("adamw_8bit", "adamw_torch", "paged_adamw_8bit", "adamw_torch_fused")
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# The training knobs' allowed values, one Range each: TrainConfig checks them, and params.RANGES checks the
# notebook parameters of the same names before a run starts.
RANGES = {"LORA_R": ranges.Range(1, 256), "LORA_ALPHA": ranges.above(0),
          "LORA_DROPOUT": ranges.Range(0, 1, hi_open=True), "LEARNING_RATE": ranges.OPEN_SHARE,
          "EPOCHS": ranges.above(0), "BATCH_SIZE": ranges.BATCH, "GRAD_ACCUM": ranges.at_least(1),
          "MAX_SEQ_LEN": ranges.at_least(16), "MAX_STEPS": ranges.Range(1, also=(-1,)),
          "SAVE_STEPS": ranges.at_least(0)}
# TrainConfig's checks: {NAME: (rule, field, hint)}; EPOCHS is checked with MAX_STEPS (either one stops training)
CHECKED = {**{name: (RANGES[name], name.lower(), "") for name in
              ("LORA_DROPOUT", "BATCH_SIZE", "GRAD_ACCUM", "MAX_SEQ_LEN")},
           "LORA_R": (RANGES["LORA_R"], "lora_r", "16 is the teaching default"),
           "LORA_ALPHA": (RANGES["LORA_ALPHA"], "lora_alpha", "usually 2 x LORA_R"),
           "LEARNING_RATE": (RANGES["LEARNING_RATE"], "learning_rate", "2e-4 for 7-14B models"),
           "MAX_STEPS": (RANGES["MAX_STEPS"], "max_steps", "-1: train for EPOCHS"),
           "SAVE_STEPS": (RANGES["SAVE_STEPS"], "save_steps", "0: only the final adapter"),
           "WARMUP_RATIO": (ranges.Range(0, 1, hi_open=True), "warmup_ratio", ""),
           "LOGGING_STEPS": (ranges.at_least(1), "logging_steps", "")}


@dataclass(frozen=True)
class TrainConfig:
    """The seed's QLoRA recipe for 7-14B models; every knob validated up front."""
    engine: str = "auto"                 # auto: unsloth when importable, else trl
    load_in_4bit: bool = True            # QLoRA (nf4 base); off where bitsandbytes is missing
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple = ("q_proj", "v_proj", "o_proj")
    learning_rate: float = 2e-4
    num_epochs: float = 3.0
    batch_size: int = 4                  # per device (the seed's micro_batch_size)
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    optimizer: str = "adamw_8bit"        # bitsandbytes 8-bit AdamW
    lr_scheduler: str = "linear"
    weight_decay: float = 0.0
    max_seq_len: int = 512
    max_steps: int = -1                  # >0 overrides epochs (smoke tests)
    save_steps: int = 0                  # checkpoint every N steps; 0: no intermediate checkpoints
    logging_steps: int = 5
    seed: int = 3407
    threads: int = 0                     # CPU threads; 0: all cores
    group_by_length: bool = True         # batches of similar length: less padding computed

    def __post_init__(self):
        check(type_problems(self, {"num_epochs": "EPOCHS"}), title="invalid training parameters")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        p = []
        if self.engine not in ENGINES:
            p.append(f"ENGINE={self.engine!r} is not one of {ENGINES}; set ENGINE in the parameters cell")
        p += ranges.problems(self, CHECKED)
        bad = [m for m in self.target_modules if m not in ALL_LINEAR]
        if bad or not self.target_modules:
            p.append(f"TARGET_MODULES={list(self.target_modules)} must be a non-empty subset of {list(ALL_LINEAR)}")
        if self.num_epochs <= 0 and self.max_steps <= 0:
            p.append(f"EPOCHS={self.num_epochs} must be positive (or set MAX_STEPS)")
        if self.optimizer not in OPTIMIZERS:
            p.append(f"OPTIMIZER={self.optimizer!r} is not one of {OPTIMIZERS}")
        if p:
            raise ConfigError(p, "invalid training parameters")


SEED_RECIPE = TrainConfig()
# The embedded tiny model (4M parameters, briefly pretrained on unlabelled support text) is no
# 7B model: LoRA on q/v/o at 2e-4 moves it too little to learn the task in a few CPU minutes
# (measured: accuracy near the majority class). It gets every projection adapted, rank 32 and a
# 5x learning rate. Still a plain LoRA adapter, no modules_to_save, so vLLM serves it.
# Measured (full playbook, Unsloth, 4-bit): held-out accuracy 0.54, macro-F1 0.415 against 0.047 for the base.
EMBEDDED_RECIPE = replace(SEED_RECIPE, target_modules=ALL_LINEAR, lora_r=32, lora_alpha=64,
                          learning_rate=1e-3, num_epochs=3.0, lora_dropout=0.0, batch_size=8)


# The reply task on the embedded model (issue 15): a six-line house-format reply is ~56 trained tokens
# of ~210 where a label is 2 of ~85, so every step moves more signal. It trains unquantized: measured
# on this 2-core CPU (02's reply split, batch 8, 30 steps, back to back) nf4 ran at 4,480 tokens/s against
# 4,740 for the float32 base (the notes' 1,930 vs 2,100 on triage: 5-8% slower), and the base it would
# shrink is 17 MB; QLoRA's saving matters on a GPU with a 7-70B base, not here. (A first measurement,
# 1,380 vs 5,630, had another training start on the second core during the nf4 run: never compare
# speeds taken while the machine is shared.) One epoch (113 steps) already took greedy format validity
# on 60 held-out tickets from 0.00 (base) to 0.90; two epochs make it hold: on 02's reply split of the
# sample data (830 conversations, 208 steps) greedy replies to 80 held-out tickets were valid 80/80
# against the base's 0/80 (353k tokens: about 75 s at 4,700 tokens/s; 213-559 s measured with other notebooks running
# on the same two cores). A real 7-14B model keeps the seed's recipe (QLoRA) for both tasks.
# Issue 27: valid is not enough. At 2 epochs and 1e-3 the adapter wrote 4 distinct replies for 100 held-out
# tickets (field accuracy 0.46, the canned constant_reply's 0.44). Tuned on training, not deployment
# (`/tmp` probe, 02's redacted reply split, the same 100 held-out tickets, one run each): 5 epochs at 1e-3 0.46 (10
# distinct), 3 at 3e-3 0.48 (11), 3 at 6e-3 0.46 (3: too hot), 4 at 3e-3 0.52 (22; 83 s), 6 at 3e-3 0.54 (25;
# 129 s), 8 at 3e-3 0.57 (39; 167 s). Every gain is the topic and its next step (0.18 -> 0.41); the name and
# details stay at the share of "there" and "none" (0.87, 0.65): the tiny base does not copy from its prompt.
# 4 epochs at 3e-3 is the knee: it beats the canned reply for 30 s more than before.
EMBEDDED_REPLY_RECIPE = replace(EMBEDDED_RECIPE, load_in_4bit=False, num_epochs=4.0, learning_rate=3e-3)


def recipe_for(model_kind, overrides=None, task=stages.CLASSIFY):
    """The recipe for a base model kind ('embedded' or real) and task, with non-None overrides applied.
    The embedded model trains unquantized where there is no GPU (both tasks; a GPU keeps QLoRA), as the
    reply recipe measured; a real model keeps the seed's QLoRA everywhere."""
    if model_kind == "embedded":
        base = EMBEDDED_REPLY_RECIPE if task == stages.REPLY else EMBEDDED_RECIPE
        # CPU: nf4 ~5% slower and saves nothing that matters (above); 03's DEMO_QUANTIZATION measures it
        if not _cuda():
            base = replace(base, load_in_4bit=False)
    else:
        base = SEED_RECIPE
    return replace(base, **{k: v for k, v in (overrides or {}).items() if v is not None})


# The model a learner would train on a GPU for each MODEL (03 exports the seed's recipe for it): a hub
# id is itself, a stand-in the family it stands in for; the embedded model is a tiny Qwen2 with Qwen's
# ChatML template, so its family's 7B instruct model.
EMBEDDED_STANDS_IN_FOR = "Qwen/Qwen2.5-7B-Instruct"


def gpu_model(ref):
    """The hub id (or local folder) to train with the seed's recipe on a GPU for a resolved MODEL."""
    if ref.kind == "embedded":
        return EMBEDDED_STANDS_IN_FOR
    if ref.kind == "standin":
        return standins.family_of(ref.requested).hub_id
    return ref.requested if ref.kind == "hub" else ref.path


def gpu_recipe(cfg):
    """The seed's recipe (SEED_RECIPE) with this run's seed and sequence length: what 03 exports for
    the GPU model, whatever recipe this run trained the local model with."""
    return replace(SEED_RECIPE, seed=cfg.seed, max_seq_len=cfg.max_seq_len)


# A second adapter that teaches one thing: the same base, data, engine and seed as the first, with one
# knob of its recipe changed (SECOND_ADAPTER in 03). 04 scores it next to the first, 05 serves both.
EXPERIMENTS = {
    "epochs": "a third of the training: EPOCHS 3 -> 1 (or MAX_STEPS / 3)",
    "rank": "rank / 8 (alpha / 8 with it, so alpha / r, the update's scale, stays)",
    "targets": "the seed's q/v/o projections instead of the recipe's (all seven if it had q/v/o)",
    "engine": "the other engine (Unsloth <-> plain TRL + PEFT); same adapter format",
}


def second_recipe(cfg, experiment):
    """(config, description, changed) of the second adapter: `cfg` with the one change EXPERIMENTS
    names; changed is {field: [from, to]} in TrainConfig's names."""
    if experiment not in EXPERIMENTS:
        raise ConfigError(f"SECOND_ADAPTER={experiment!r} is not one of {sorted(EXPERIMENTS)} (or '' for none); "
                          "set it in the parameters cell")
    if experiment == "epochs":
        change = ({"max_steps": max(1, cfg.max_steps // 3)} if cfg.max_steps > 0
                  else {"num_epochs": cfg.num_epochs / 3})
    elif experiment == "rank":
        change = {"lora_r": max(1, cfg.lora_r // 8), "lora_alpha": max(1, cfg.lora_alpha // 8)}
    elif experiment == "targets":
        seed = SEED_RECIPE.target_modules
        change = {"target_modules": ALL_LINEAR if set(cfg.target_modules) == set(seed) else seed}
    else:
        engine = resolve_engine(cfg)[0]
        if importlib.util.find_spec("unsloth") is None:
            raise ConfigError("SECOND_ADAPTER='engine' needs both engines and unsloth is not installed: "
                              "pick another experiment or run `make setup`")
        change = {"engine": "trl" if engine == "unsloth" else "unsloth"}
        cfg = replace(cfg, engine=engine)
    changed = {k: [_plain(getattr(cfg, k)), _plain(v)] for k, v in change.items()}
    text = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())
    return replace(cfg, save_steps=0, **change), text, changed


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def against_seed(cfg, seed=None):
    """(rows, sentence): the settings where `cfg` differs from the seed's recipe, as {"setting", "the seed's",
    "this run"} rows, and one sentence naming the settings it keeps, so 03 shows what changed, not every field."""
    seed = seed or SEED_RECIPE
    a, b = asdict(seed), asdict(cfg)

    def shown(v):
        return ", ".join(v) if isinstance(v, (list, tuple)) else v

    rows = [{"setting": k, "the seed's": shown(a[k]), "this run": shown(b[k])} for k in a if a[k] != b.get(k)]
    same = [k for k in a if a[k] == b.get(k)]
    said = (f"{len(rows)} settings differ from the seed's recipe (below); the other {len(same)} are the seed's: "
            f"{', '.join(same)}." if rows else f"this run uses the seed's recipe as it is ({len(same)} settings).")
    return rows, said


def read_second(first, second, experiment):
    """The two adapters side by side in words: what changed, and what it did to steps, trained
    parameters and the losses (04 scores both on the held-out rows)."""
    def loss(r):
        return r.eval_loss if r.eval_loss is not None else r.train_loss

    kind = "eval" if first.eval_loss is not None and second.eval_loss is not None else "training"
    a, b = loss(first), loss(second)
    verdict = ("about the same" if abs(a - b) <= 0.02 * max(a, b) else "higher" if b > a else "lower")
    return (f"One change, {experiment}: {second.steps} steps against {first.steps}, {second.trainable_params:,} "
            f"trained parameters against {first.trainable_params:,}, {kind} loss {b:.3f} against {a:.3f} "
            f"({verdict}). 04 tells whether that difference shows on the held-out rows.")


# ---------------------------------------------------------------- environment
def device_info():
    """What hardware training gets, and why (nanochat-style: defaults that depend on it say so)."""
    import torch

    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        bf16 = torch.cuda.is_bf16_supported()
        return {"device": "cuda", "name": torch.cuda.get_device_name(), "bf16": bf16,
                "compute_dtype": "bfloat16" if bf16 else "float16",
                "why": f"CUDA SM {major}{minor}: {'bf16' if bf16 else 'fp16'} compute"}
    return {"device": "cpu", "name": _cpu_name(), "bf16": False, "compute_dtype": "float32",
            "threads": torch.get_num_threads(),
            "why": "no CUDA device: float32 compute (bf16 autocast on CPUs without BF16 instructions is ~2x slower)"}


def _cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu"


def resolve_engine(cfg):
    """(engine, load_in_4bit, optimizer, reasons): what will actually run, with the reason for each choice."""
    reasons = []
    has_unsloth = importlib.util.find_spec("unsloth") is not None
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    engine = cfg.engine
    if engine == "auto":
        engine = "unsloth" if has_unsloth else "trl"
        reasons.append("ENGINE=auto: " + ("unsloth is installed" if has_unsloth
                                          else "unsloth is not installed, plain TRL + PEFT"))
    elif engine == "unsloth" and not has_unsloth:
        raise ConfigError("ENGINE='unsloth' but unsloth is not installed: run `make setup` "
                          "(or pip install -e '.[train]'), or set ENGINE='trl'")
    four = cfg.load_in_4bit
    if four and not has_bnb:
        four = False
        reasons.append("LOAD_IN_4BIT=True but bitsandbytes is not installed: training in 16/32-bit")
    elif four:
        reasons.append("4-bit nf4 base weights (QLoRA) via bitsandbytes")
    opt = cfg.optimizer
    if "8bit" in opt and not has_bnb:
        opt = "adamw_torch"
        reasons.append("8-bit AdamW needs bitsandbytes: using adamw_torch")
    elif "8bit" in opt and engine == "unsloth" and not _cuda():
        opt = "adamw_torch_fused"  # what Unsloth's CPU fallback would switch to anyway, said here
        reasons.append("Unsloth on CPU runs 8-bit AdamW only on a GPU: using adamw_torch_fused")
    return engine, four, opt, reasons


def _cuda():
    import torch

    return torch.cuda.is_available()
