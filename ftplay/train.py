"""LoRA / QLoRA training: one config, two engines (Unsloth, plain TRL + PEFT), same adapter out."""
import gc
import importlib.util
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from . import footprint, progress, prompts, stages, standins
from .errors import ConfigError, FtplayError, check, type_problems

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- Unsloth first
# Unsloth patches transformers, TRL and PEFT only when it is imported before them ("Unsloth should be
# imported before [trl, transformers, peft] ... may run slower"): imported in _load_unsloth, after a
# notebook has loaded transformers, it loses the GPU speed-up it is chosen for. So it is imported
# here, when this module is, on a CUDA machine only (on CPU its path is the stock one and the import
# costs seconds). Notebook 03 and benchmarks/gpu_check.py import ftplay.train before anything else.
PATCHED_BY_UNSLOTH = ("transformers", "trl", "peft")


def _gpu_present():
    """torch.cuda.is_available(), without importing torch where no NVIDIA driver is loaded."""
    if not Path("/proc/driver/nvidia/version").exists() and shutil.which("nvidia-smi") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _import_unsloth_first(modules=None, cuda=_gpu_present, find_spec=importlib.util.find_spec,
                          importer=importlib.import_module):
    """(first, late): import unsloth now if it is installed and a CUDA GPU is present. first is True
    when none of PATCHED_BY_UNSLOTH was loaded yet, False when some were (named in `late`, warned),
    None when unsloth was not imported here."""
    modules = sys.modules if modules is None else modules
    if find_spec("unsloth") is None or not cuda():
        return None, ()
    late = tuple(m for m in PATCHED_BY_UNSLOTH if m in modules)
    if late:
        log.warning("Unsloth is imported after %s: its patches of them are missing and training may run slower; "
                    "import ftplay.train before anything that imports them (first line of the notebook or script)",
                    ", ".join(late))
    importer("unsloth")
    return not late, late


UNSLOTH_FIRST, UNSLOTH_LATE = _import_unsloth_first()


def unsloth_patched(modules=None):
    """Whether Unsloth's patches are active in this process: True when it was imported before
    transformers, TRL and PEFT (at this module's import, on a GPU), False when it came after them,
    None when it is not imported (CPU, or not installed)."""
    modules = sys.modules if modules is None else modules
    if UNSLOTH_FIRST is not None:
        return UNSLOTH_FIRST
    return False if "unsloth" in modules else None


ENGINES = ("auto", "unsloth", "trl")
OPTIMIZERS = ("adamw_8bit", "adamw_torch", "paged_adamw_8bit", "adamw_torch_fused")
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


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
        if self.lora_r < 1 or self.lora_r > 256:
            p.append(f"LORA_R={self.lora_r} must be between 1 and 256 (16 is the teaching default)")
        if self.lora_alpha <= 0:
            p.append(f"LORA_ALPHA={self.lora_alpha} must be positive (usually 2 x LORA_R)")
        if not 0 <= self.lora_dropout < 1:
            p.append(f"LORA_DROPOUT={self.lora_dropout} must be in [0, 1)")
        bad = [m for m in self.target_modules if m not in ALL_LINEAR]
        if bad or not self.target_modules:
            p.append(f"TARGET_MODULES={list(self.target_modules)} must be a non-empty subset of {list(ALL_LINEAR)}")
        if not 0 < self.learning_rate < 1:
            p.append(f"LEARNING_RATE={self.learning_rate} must be in (0, 1); 2e-4 for 7-14B models")
        if self.num_epochs <= 0 and self.max_steps <= 0:
            p.append(f"EPOCHS={self.num_epochs} must be positive (or set MAX_STEPS)")
        if self.batch_size < 1 or self.grad_accum < 1:
            p.append(f"BATCH_SIZE={self.batch_size} and GRAD_ACCUM={self.grad_accum} must be >= 1")
        if not 0 <= self.warmup_ratio < 1:
            p.append(f"WARMUP_RATIO={self.warmup_ratio} must be in [0, 1)")
        if self.optimizer not in OPTIMIZERS:
            p.append(f"OPTIMIZER={self.optimizer!r} is not one of {OPTIMIZERS}")
        if self.max_seq_len < 16:
            p.append(f"MAX_SEQ_LEN={self.max_seq_len} is too small; use at least 16")
        if self.save_steps < 0 or self.logging_steps < 1:
            p.append("SAVE_STEPS must be >= 0 and LOGGING_STEPS >= 1")
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
EMBEDDED_REPLY_RECIPE = replace(EMBEDDED_RECIPE, load_in_4bit=False, num_epochs=2.0)


def recipe_for(model_kind, overrides=None, task=stages.CLASSIFY):
    """The recipe for a base model kind ('embedded' or real) and task, with non-None overrides applied.
    The embedded model trains unquantized where there is no GPU (both tasks; a GPU keeps QLoRA), as the
    reply recipe measured; a real model keeps the seed's QLoRA everywhere."""
    if model_kind == "embedded":
        base = EMBEDDED_REPLY_RECIPE if task == stages.REPLY else EMBEDDED_RECIPE
        if not _cuda():   # CPU: nf4 ~5% slower and saves nothing that matters (above); 03's DEMO_QUANTIZATION measures it
            base = replace(base, load_in_4bit=False)
    else:
        base = SEED_RECIPE
    return replace(base, **{k: v for k, v in (overrides or {}).items() if v is not None})


def check_task(card, task):
    """ConfigError unless TASK is a known task and the one 02 curated (its record's `task`), with the fix."""
    curated = card.get("task") or stages.CLASSIFY
    if task not in stages.TASKS:
        raise ConfigError(f"TASK={task!r} is not one of {sorted(stages.TASKS)}; set TASK in the parameters cell")
    if task != curated:
        raise ConfigError(f"TASK={task!r} but 02 curated {curated!r} rows into {getattr(card, 'path', 'this run')}: "
                          f"set TASK={curated!r}, or run 02 with TASK={task!r} into this RUN_DIR first")


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
# knob of its recipe changed (SECOND_ADAPTER in 03). 04 scores it next to the first, 06 serves both.
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


# ---------------------------------------------------------------- data
def tokenize_chat(tokenizer, messages_list, max_seq_len):
    """input_ids and labels (-100 except on the answer and its end-of-turn token) for each
    conversation, in the base model's own template (prompts.training_example: its generation
    markers, TRL's training variant, or the rendering difference). Raises naming the cause when
    the mask is broken."""
    rows, truncated = [], 0
    how = prompts.plan(tokenizer)
    for msgs in messages_list:
        ids, mask = prompts.training_example(tokenizer, msgs, how)
        if len(ids) > max_seq_len:
            truncated += 1
            if not any(mask[:max_seq_len]):
                continue  # the cut removed the whole answer: nothing left to learn from this one
            ids, mask = ids[:max_seq_len], mask[:max_seq_len]
        labels = [t if m else -100 for t, m in zip(ids, mask)]
        rows.append({"input_ids": ids, "labels": labels})
    if messages_list and not rows:
        raise FtplayError(f"every example is longer than MAX_SEQ_LEN={max_seq_len} tokens, answer included; "
                          "raise MAX_SEQ_LEN in the parameters cell", "nothing to train on")
    check_mask(tokenizer, rows)
    return rows, truncated


def mask_report(tokenizer, messages_list, max_seq_len):
    """What the loss mask trains, checked per conversation against its own answer: the trained tokens
    must decode to the whole answer followed by an end-of-turn token, and no prompt token may be
    trained (a reply is ~60 tokens where a label is 2: a mask cut short or run long would still train
    something). Conversations longer than `max_seq_len` are cut in training and counted apart.
    Returns {"examples", "checked", "cut", "whole_answer_trained", "ends_with_end_of_turn",
    "prompt_tokens_trained", "answer_tokens": {"p50", "max"}}; FtplayError naming the first bad one."""
    how = prompts.plan(tokenizer)
    lengths, whole, ends, prompt_trained, cut, bad = [], 0, 0, 0, 0, None
    for msgs in messages_list:
        ids, mask = prompts.training_example(tokenizer, msgs, how)
        if len(ids) > max_seq_len:
            cut += 1
            continue
        trained = [t for t, m in zip(ids, mask) if m]
        lengths.append(len(trained))
        n_prompt = len(prompts.prompt_ids(tokenizer, msgs[:-1]))
        prompt_trained += sum(mask[:n_prompt])
        end = bool(trained) and trained[-1] in how.stop_ids
        said = tokenizer.decode(trained[:-1] if end else trained).strip()
        ok = end and said.split() == msgs[-1]["content"].split()   # spacing aside (a template may trim)
        ends += end
        whole += ok
        if not ok and bad is None:
            bad = f"trained {said[:80]!r}{'' if end else ' (no end of turn)'}, the answer is {msgs[-1]['content'].strip()[:80]!r}"
    checked = len(lengths)
    problems = []
    if prompt_trained:
        problems.append(f"{prompt_trained} prompt tokens are trained: the mask must start after the generation prompt")
    if whole < checked:
        problems.append(f"{checked - whole} of {checked} examples do not train exactly their answer and its end of "
                        f"turn; first: {bad}")
    if problems:
        raise FtplayError(problems, "broken training labels")
    lengths.sort()
    return {"examples": len(messages_list), "checked": checked, "cut": cut, "whole_answer_trained": whole,
            "ends_with_end_of_turn": ends, "prompt_tokens_trained": prompt_trained,
            "answer_tokens": {"p50": lengths[len(lengths) // 2] if lengths else 0, "max": max(lengths, default=0)}}


def check_mask(tokenizer, rows):
    """Fail loudly instead of training on a broken loss mask."""
    problems = []
    if not any(l != -100 for r in rows for l in r["labels"]):
        problems.append("no token is trained: the assistant mask is all zero; check that every conversation "
                        "ends with a non-empty assistant answer and that the chat template renders it")
    eos = tokenizer.eos_token_id
    if eos is not None and rows and not any(eos in [l for l in r["labels"] if l != -100] for r in rows):
        why = " (pad equals EOS and was masked)" if tokenizer.pad_token_id == eos else ""
        problems.append(f"the end-of-turn token {tokenizer.eos_token!r} is never trained{why}: the model "
                        "would not learn to stop; the template's generation block (or the rendered answer) "
                        "must end with it")
    bos = tokenizer.bos_token_id
    if bos is not None and any(list(r["input_ids"][:2]) == [bos, bos] for r in rows):
        problems.append(f"a sequence starts with two BOS tokens ({tokenizer.bos_token!r} x2): the chat template "
                        "writes BOS and the tokenizer added another; tokenize rendered text with "
                        "add_special_tokens=False (prompts.encode)")
    # A prompt in the loss shows as training from the first token on. (Not "more than half of the tokens
    # trained": a long reply to a short question, Bitext's 400-token answers to 10-token queries, is that.)
    for r in rows[:50]:
        if len(r["labels"]) > 1 and r["labels"][0] != -100:
            problems.append("an example is trained from its first token: prompt tokens are in the loss; check "
                            "the template's generation markers")
            break
    if problems:
        raise FtplayError(problems, "broken training labels")


# ---------------------------------------------------------------- training
def _load_unsloth(ref, cfg, four, dev):
    import unsloth  # noqa: F401  (must patch before transformers/trl are used)
    from unsloth import FastLanguageModel

    model, tok = FastLanguageModel.from_pretrained(
        model_name=ref.path, max_seq_length=cfg.max_seq_len, dtype=None, load_in_4bit=four,
        full_finetuning=False)
    model = FastLanguageModel.get_peft_model(
        model, r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules), bias="none", random_state=cfg.seed,
        use_gradient_checkpointing="unsloth" if dev["device"] == "cuda" else False)
    return model, tok


def _load_trl(ref, cfg, four, dev):
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {"dtype": getattr(torch, dev["compute_dtype"])}
    if four:
        from transformers import BitsAndBytesConfig

        kw["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=getattr(torch, dev["compute_dtype"]))
    model = AutoModelForCausalLM.from_pretrained(ref.path, **kw)
    if four:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=dev["device"] == "cuda")
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lora), AutoTokenizer.from_pretrained(ref.path)


class _StepLog:
    """A TrainerCallback that appends one JSON line per logging step: loss, lr, tokens/s."""

    def __init__(self, path, tokens_per_step):
        self.path, self.tokens_per_step, self.t0, self.last = Path(path), tokens_per_step, None, None

    def as_callback(self):
        from transformers import TrainerCallback

        outer = self

        class CB(TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                outer.t0 = outer.last = (time.time(), state.global_step)
                # a bar in JupyterLab, count and time left on `ftplay run`'s terminal (a resumed run starts part way)
                outer.bar = progress.bar(total=state.max_steps, desc="training", unit="step")
                outer.bar.update(state.global_step)

            def on_step_end(self, args, state, control, **kw):
                outer.bar.update(1)

            def on_train_end(self, args, state, control, **kw):
                outer.bar.close()

            def on_log(self, args, state, control, logs=None, **kw):
                now = (time.time(), state.global_step)
                dt, ds = now[0] - outer.last[0], now[1] - outer.last[1]
                rec = {"step": state.global_step, "epoch": round(state.epoch or 0, 4), **(logs or {})}
                if ds > 0 and dt > 0 and "loss" in (logs or {}):
                    rec["tokens_per_s"] = round(ds * outer.tokens_per_step / dt, 1)
                    outer.last = now
                with open(outer.path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                log.info("%s", step_line(rec, state.max_steps))

        return CB()


def step_line(rec, max_steps):
    """One log line for a train_log.jsonl record: 'step 40/321: loss 1.747, 2,100 tokens/s'."""
    head = f"step {rec['step']}/{max_steps}"
    if "loss" in rec:
        speed = f", {rec['tokens_per_s']:,.0f} tokens/s" if rec.get("tokens_per_s") else ""
        return f"{head}: loss {rec['loss']:.3f}{speed}"
    if "eval_loss" in rec:
        return f"{head}: eval loss {rec['eval_loss']:.3f}"
    if "train_runtime" in rec:
        return f"{head}: done in {progress.fmt_seconds(rec['train_runtime'])}, mean loss {rec.get('train_loss', float('nan')):.3f}"
    return f"{head}: {', '.join(f'{k} {v}' for k, v in rec.items() if k not in ('step', 'epoch'))}"


@dataclass
class TrainResult:
    adapter_dir: str
    engine: str
    load_in_4bit: bool
    reasons: list
    device: dict
    steps: int
    train_loss: float | None
    eval_loss: float | None
    first_loss: float | None
    tokens_seen: int
    tokens_per_s: float
    seconds: float
    peak_memory_mb: float
    truncated: int
    resumed_from: str | None
    log_path: str
    trainable_params: int = 0
    total_params: int = 0                # base + adapter parameters (4-bit ones counted as values, not bytes)
    base_params: int = 0
    weights_mb: float = 0.0              # the base's parameters as stored (footprint.measure; MB = 10^6 bytes)
    weights_dtype: str | None = None     # of the base's unquantized parameters as loaded (Unsloth on a CPU: bfloat16)
    mask: dict = field(default_factory=dict)   # mask_report of the training conversations


def train(cfg, ref, train_messages, eval_messages, out_dir, resume=True):
    """Train a LoRA adapter on chat conversations; checkpoints and the final adapter go under
    `out_dir`. Resumes from the newest checkpoint there when `resume` (a killed run continues)."""
    import torch

    from .seeding import set_seed

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    dev = device_info()
    engine, four, optim, reasons = resolve_engine(cfg)
    model, tok = (_load_unsloth if engine == "unsloth" else _load_trl)(ref, cfg, four, dev)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    train_rows, truncated = tokenize_chat(tok, train_messages, cfg.max_seq_len)
    mask = mask_report(tok, train_messages, cfg.max_seq_len)
    eval_rows, _ = tokenize_chat(tok, eval_messages, cfg.max_seq_len) if eval_messages else ([], 0)
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    ckpt_dir = out_dir / "checkpoints"
    args = SFTConfig(
        output_dir=str(ckpt_dir), per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.num_epochs, max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        optim=optim, logging_steps=cfg.logging_steps, logging_first_step=True,
        save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
        save_total_limit=2, eval_strategy="epoch" if eval_rows else "no",
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        bf16=dev["compute_dtype"] == "bfloat16", fp16=dev["compute_dtype"] == "float16",
        gradient_checkpointing=dev["device"] == "cuda", max_length=cfg.max_seq_len,
        report_to="none", seed=cfg.seed, data_seed=cfg.seed, dataloader_num_workers=0,
        remove_unused_columns=True, disable_tqdm=True)
    tokens = sum(len(r["input_ids"]) for r in train_rows)
    steps_per_epoch = math.ceil(len(train_rows) / (cfg.batch_size * cfg.grad_accum))
    log_path = out_dir / "train_log.jsonl"
    step_log = _StepLog(log_path, tokens / max(1, steps_per_epoch))
    trainer_cls = SFTTrainer if engine == "unsloth" or dev["device"] == "cuda" else _cpu_trainer(SFTTrainer)
    trainer = trainer_cls(model=model, args=args, processing_class=tok,
                         train_dataset=Dataset.from_list(train_rows),
                         eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
                         callbacks=[step_log.as_callback()])
    # transformers prints every log dict itself (PrinterCallback with disable_tqdm): _StepLog says each once, in a line
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    last = _last_checkpoint(ckpt_dir) if resume else None
    if last is None and log_path.exists():
        log_path.unlink()  # a fresh run starts a fresh log
    t0 = time.time()
    out = trainer.train(resume_from_checkpoint=str(last) if last else None)
    seconds = time.time() - t0
    adapter_dir = out_dir / "adapter"
    trainer.model.save_pretrained(str(adapter_dir))
    tok.save_pretrained(str(adapter_dir))
    hist = trainer.state.log_history
    losses = [h["loss"] for h in hist if "loss" in h]
    evals = [h["eval_loss"] for h in hist if "eval_loss" in h]
    steps = trainer.state.global_step
    done_epochs = steps / max(1, steps_per_epoch)
    seen = int(tokens * done_epochs)
    held = footprint.measure(trainer.model)
    return TrainResult(
        adapter_dir=str(adapter_dir), engine=engine, load_in_4bit=four, reasons=reasons, device=dev,
        steps=steps, train_loss=losses[-1] if losses else None, eval_loss=evals[-1] if evals else None,
        first_loss=losses[0] if losses else None, tokens_seen=seen,
        tokens_per_s=round(seen / seconds, 1) if seconds else 0.0, seconds=round(seconds, 2),
        peak_memory_mb=_peak_mb(dev), truncated=truncated, resumed_from=str(last) if last else None,
        log_path=str(log_path), trainable_params=held["trainable_params"],
        total_params=held["base_params"] + held["trainable_params"], base_params=held["base_params"],
        weights_mb=round(held["weights_bytes"] / 1e6, 3), weights_dtype=held["dtype"], mask=mask)


# ---------------------------------------------------------------- 4-bit against unquantized
DEMO_STEPS = 8  # per precision: ~5 s each on the embedded model on 2 CPU cores, loading included


def compare_precisions(cfg, ref, messages, out_dir, steps=DEMO_STEPS):
    """The same recipe, base and first batches trained `steps` steps with the base in nf4 (QLoRA) and
    unquantized, as the engine loads it (float32 with TRL on a CPU, bfloat16 with Unsloth or on a GPU).
    Per precision: the base's weights as stored (bytes, deterministic), tokens/s (median over the
    steps after the first), and on a GPU torch's peak allocated memory for that run alone. A CPU has
    no such peak: the process's peak RSS counts torch and its libraries and never falls, so a second
    run in the same process cannot be told from the first; the weights' bytes stand in for it there."""
    import torch

    cuda = torch.cuda.is_available()
    rows = messages[: steps * cfg.batch_size * cfg.grad_accum]
    out = {}
    for name, four in (("4bit", True), ("unquantized", False)):
        c = replace(cfg, load_in_4bit=four, max_steps=steps, logging_steps=1, save_steps=0)
        if four and not resolve_engine(c)[1]:
            return {"ran": False, "why": "bitsandbytes is not installed: no 4-bit base to compare"}
        if cuda:  # what an earlier training left allocated would count in this run's peak
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        res = train(c, ref, rows, [], Path(out_dir) / name, resume=False)
        speeds = [r["tokens_per_s"] for r in read_log(res.log_path) if "tokens_per_s" in r][1:]
        out[name] = {"load_in_4bit": res.load_in_4bit, "engine": res.engine, "steps": res.steps,
                     "dtype": "nf4" if four else res.weights_dtype, "rest_dtype": res.weights_dtype,
                     "weights_mb": res.weights_mb,
                     "base_params": res.base_params, "peak_mb": res.peak_memory_mb if cuda else None,
                     "tokens_per_s": round(sorted(speeds)[len(speeds) // 2], 1) if speeds else res.tokens_per_s,
                     "seconds": res.seconds}
    four, full = out["4bit"], out["unquantized"]
    return {"ran": True, **out, "device": "cuda" if cuda else "cpu", "steps": steps,
            "memory_measure": "torch.cuda peak allocated (per run) and the weights' bytes" if cuda else
            "the weights' bytes as stored (process peak RSS is not comparable between two runs of one process)",
            "weights_saving_pct": round(100 * (1 - four["weights_mb"] / full["weights_mb"]), 1),
            "speed_ratio": round(four["tokens_per_s"] / full["tokens_per_s"], 2) if full["tokens_per_s"] else None}


def _cpu_trainer(SFTTrainer):
    """SFTTrainer whose loss projects only the trained positions through the LM head.

    TRL 1.15 computes the SFT loss with a chunked LM-head kernel that needs Triton with a GPU
    driver: on CPU it fails ("0 active drivers", or None without Triton). The model's own loss
    works but computes logits for every position, while a classification answer trains ~2 tokens
    of ~85: here the backbone runs once and only positions with a label reach the LM head, the
    same mean cross-entropy (tested equal to the model's own loss) for less compute."""

    class CpuSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = trained_positions_loss(model, inputs, num_items_in_batch)
            return (loss, {"loss": loss}) if return_outputs else loss

    return CpuSFTTrainer


def trained_positions_loss(model, inputs, num_items_in_batch=None):
    """Causal-LM cross-entropy over positions whose label is not -100, without full logits."""
    import torch.nn.functional as F

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    labels = inputs["labels"]
    hidden = base.model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                        position_ids=inputs.get("position_ids"), use_cache=False).last_hidden_state
    target = labels[:, 1:]
    keep = target != -100
    logits = base.lm_head(hidden[:, :-1][keep]).float()
    total = F.cross_entropy(logits, target[keep], reduction="sum")
    denom = num_items_in_batch if num_items_in_batch is not None else keep.sum().clamp(min=1)
    return total / denom


def _last_checkpoint(ckpt_dir):
    """The newest complete checkpoint: Trainer writes trainer_state.json last, so a run killed
    while saving leaves a folder without it, which is skipped rather than resumed from."""
    d = Path(ckpt_dir)
    cks = [c for c in d.glob("checkpoint-*") if (c / "trainer_state.json").exists()] if d.exists() else []
    return max(cks, key=lambda c: int(c.name.split("-")[1])) if cks else None


def _peak_mb(dev):
    if dev["device"] == "cuda":
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def read_log(path):
    """The training log as a list of dicts (one per logging step)."""
    p = Path(path)
    return [json.loads(l) for l in p.read_text().splitlines() if l.strip()] if p.exists() else []


def write_adapter_meta(adapter_dir, ref, labels, system_prompt, task=stages.CLASSIFY, reply_format=None):
    """ftplay_adapter.json beside the adapter: what serving must match, and the task it answers (see
    identity.write_adapter_meta)."""
    from . import identity, models

    return identity.write_adapter_meta(adapter_dir, ref, models.load_tokenizer(ref), labels, system_prompt,
                                       task=task, reply_format=reply_format)


def manifest(result, cfg, ref, meta, train_rows):
    """The run manifest: what was trained, on what, with what, how fast, to what loss."""
    from . import identity, models, rundir

    return {**asdict(result),
            "base_model": {**identity.base_record(ref), **(models.describe(ref.path) if ref.kind != "hub" else {})},
            "family": meta.get("family"), "template_hash": meta["template_hash"], "template": meta.get("template"),
            "labels": meta["labels"], "reply_format": meta.get("reply_format"),
            "train_fingerprint": rundir.fingerprint_rows(
                [{k: r[k] for k in ("id", "text", "label", "output") if k in r} for r in train_rows]),
            "train_rows": len(train_rows), "train_ids": [r["id"] for r in train_rows]}
