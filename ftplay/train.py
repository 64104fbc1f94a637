"""LoRA / QLoRA training: one config, two engines (Unsloth, plain TRL + PEFT), same adapter out."""
import contextlib
import gc
import importlib.util
import io
import json
import logging
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from . import footprint, masks, progress, recipes, stages
from .recipes import TrainConfig  # 00/04 call it here  # noqa: F401

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



# ---------------------------------------------------------------- training
def _load_unsloth(ref, cfg, four, dev):
    # Unsloth prints its banner and CPU notes with print(); ftplay's engine table says the same (engine, device,
    # dtype, 4-bit), so they go to the debug log instead of every notebook that trains
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        import unsloth  # noqa: F401  (must patch before transformers/trl are used)
        from unsloth import FastLanguageModel

        model, tok = FastLanguageModel.from_pretrained(
            model_name=ref.path, max_seq_length=cfg.max_seq_len, dtype=None, load_in_4bit=four,
            full_finetuning=False)
        model = FastLanguageModel.get_peft_model(
            model, r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.target_modules), bias="none", random_state=cfg.seed,
            use_gradient_checkpointing="unsloth" if dev["device"] == "cuda" else False)
    for line in out.getvalue().splitlines():
        log.debug("unsloth: %s", line)
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
                # the bar shows the steps; the notebook hears the run's one summary line (issue 28: 70 step lines
                # in 03), the rest stays in train_log.jsonl and at DEBUG
                level = logging.INFO if "train_runtime" in rec else logging.DEBUG
                log.log(level, "%s", step_line(rec, state.max_steps))

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
        return (f"{head}: done in {progress.fmt_seconds(rec['train_runtime'])}, "
                f"mean loss {rec.get('train_loss', float('nan')):.3f}")
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
    dev = recipes.device_info()
    engine, four, optim, reasons = recipes.resolve_engine(cfg)
    model, tok = (_load_unsloth if engine == "unsloth" else _load_trl)(ref, cfg, four, dev)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    train_rows, truncated = masks.tokenize_chat(tok, train_messages, cfg.max_seq_len)
    mask = masks.mask_report(tok, train_messages, cfg.max_seq_len)
    eval_rows, _ = masks.tokenize_chat(tok, eval_messages, cfg.max_seq_len) if eval_messages else ([], 0)
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
    trainer.train(resume_from_checkpoint=str(last) if last else None)
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
        if four and not recipes.resolve_engine(c)[1]:
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
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []


def write_adapter_meta(adapter_dir, ref, labels, system_prompt, task=stages.CLASSIFY, reply_format=None):
    """ftplay_adapter.json beside the adapter: what serving must match, and the task it answers (see
    identity.write_adapter_meta)."""
    from . import identity, models

    return identity.write_adapter_meta(adapter_dir, ref, models.load_tokenizer(ref), labels, system_prompt,
                                       task=task, reply_format=reply_format)


def gpu_export(model, recipe, axolotl_config, together):
    """03's record of what it exported for a GPU: the model, the seed's recipe for it, the Axolotl config written
    and the hosted (Together) job."""
    return {"model": model, "recipe": recipe, "axolotl_config": axolotl_config, "together": together}


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
