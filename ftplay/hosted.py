"""Hosted fine-tuning on Together AI: export the curated split in its chat format, check it, start a LoRA job.

Nothing here sends a request unless you call `start` with a client: `export` and `check_file` work
offline, `job_kwargs` maps ftplay's TrainConfig onto Together's job parameters, and `request_body`
builds, with the `together` package's own code, the JSON that `client.fine_tuning.create` would POST.
The `together` package comes with the optional `routes` extra and is imported only where needed.
"""
import json
from dataclasses import dataclass
from pathlib import Path

from . import rundir, standins
from .errors import ConfigError, DataError

# Together's documented rules for conversational fine-tuning data, read 2026-11 from
# https://docs.together.ai/docs/fine-tuning/data-preparation :
#   - JSONL, one example per line, each a JSON object; a line holding two formats (say `text` and
#     `messages`) is rejected;
#   - conversational examples hold a `messages` list; each message has a `role` (system, user or
#     assistant) and a `content`; the conversation starts with system or user, then user and assistant
#     alternate;
#   - the loss is computed on assistant messages only (unless train_on_inputs); a per-message `weight`
#     may be 0 or 1.
# ftplay adds two rules of its own, both about examples that would train nothing: no empty (or
# whitespace-only) turn, and the last message is the assistant's answer. The minimum example count and
# the largest file are the `together` package's own constants (MIN_SAMPLES, MAX_FILE_SIZE_GB), read at
# check time. The sequence limit comes from the model's limits (`max_seq_length_sft`,
# GET /fine-tunes/models/limits) or the MAX_TOKENS you pass.
ROLES = ("system", "user", "assistant")
OTHER_FORMATS = ("text", "prompt", "completion", "input", "preferred_output", "non_preferred_output")
RULES = {
    "json": "each non-empty line is one JSON object",
    "one_format": "a line holds `messages` and no field of another format (text, prompt/completion, input/...)",
    "messages": "`messages` is a non-empty list of objects",
    "role": "each message's `role` is system, user or assistant",
    "content": "each message's `content` is a non-empty string (no empty turns)",
    "order": "system (optional) comes first, then user and assistant alternate, starting with user",
    "ends_with_assistant": "the last message is the assistant's (only assistant messages are trained)",
    "weight": "a message `weight`, when present, is 0 or 1",
    "length": "an example fits the model's sequence limit",
    "min_examples": "the file holds at least the provider's minimum number of examples",
    "file_size": "the file is within the provider's size limit",
}
# Token counts without the model's tokenizer: byte-level BPE tokenizers (Llama 3, Qwen 2.5) emit at
# most one token per UTF-8 byte, and a chat template adds a few special tokens per message (Llama 3:
# 5, Qwen 2.5: 5); 8 per message is a safe margin. The result is an upper bound, not a count: pass
# `count_tokens` for an exact one.
TEMPLATE_TOKENS_PER_MESSAGE = 8
TOGETHER_MIN_BATCH = 8  # lora_training.min_batch_size in Together's FinetuneModelLimits for the models above
# ftplay MODEL (hub id) -> Together's name of the same base for fine-tuning. Source: the example in
# https://docs.together.ai/reference/post-fine-tunes (read 2026-11); other names pass through unchanged
# and Together answers whether it fine-tunes them (GET /fine-tunes/models/limits).
TOGETHER_MODELS = {"meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
                   "meta-llama/Meta-Llama-3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"}
# TrainConfig fields that have no Together counterpart, and why.
NOT_SENT = {"engine": "Together runs its own trainer",
            "load_in_4bit": "Together trains LoRA on its own base weights; QLoRA is not a job parameter",
            "optimizer": "not a job parameter (Together picks the optimizer)",
            "max_steps": "Together trains whole epochs (n_epochs)",
            "save_steps": "Together saves n_checkpoints evenly instead",
            "logging_steps": "Together reports its own events",
            "threads": "no local compute",
            "group_by_length": "a local batching speed-up; Together batches its own way",
            "max_seq_len": "02 already dropped longer examples; TOGETHER_MAX_SEQ_LENGTH sets Together's own "
                           "(None: the model's default), within its min_max_seq_length-max_seq_length_sft"}
ANYSCALE_STATUS = (
    "Anyscale: no hosted per-token fine-tuning route today. Anyscale's docs state that effective August 1, 2024 "
    "the Anyscale Endpoints API is available only through the hosted Anyscale Platform and multi-tenant (shared, "
    "per-token) access to LLMs is removed (docs.anyscale.com/endpoints/fine-tuning/fine-tuning-api, read 2026-11). "
    "What remains is the platform: GPUs billed by the second and models deployed on your own dedicated instances, "
    "i.e. the same kind of route as Modal here, priced by GPU time, not per token.")


@dataclass(frozen=True)
class HostedConfig:
    """The Together job settings that ftplay's TrainConfig does not carry."""
    model: str = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"   # Together's name of the base to fine-tune
    suffix: str = "ftplay-triage"        # added to the fine-tuned model's name (Together: at most 40 characters)
    n_checkpoints: int = 1               # checkpoints kept during training
    n_evals: int = 0                     # evaluations on the validation file (needs one)
    packing: bool = True                 # Together's default: short examples packed into full sequences
    max_seq_length: int | None = None    # None: the model's default (its `max_seq_length_sft`)

    def __post_init__(self):
        p = []
        if not self.model or self.model == "embedded" or "/" not in self.model:
            p.append(f"TOGETHER_MODEL={self.model!r} is not a Together model name like "
                     "'meta-llama/Meta-Llama-3.1-8B-Instruct-Reference'; the embedded tiny model exists only here")
        if not 0 < len(self.suffix) <= 40:
            p.append(f"TOGETHER_SUFFIX={self.suffix!r} must be 1-40 characters (Together's limit)")
        if self.n_checkpoints < 1 or self.n_evals < 0:
            p.append(f"TOGETHER_N_CHECKPOINTS={self.n_checkpoints} must be >= 1 "
                     f"and TOGETHER_N_EVALS={self.n_evals} >= 0")
        if self.max_seq_length is not None and self.max_seq_length < 1:
            p.append(f"TOGETHER_MAX_SEQ_LENGTH={self.max_seq_length} must be positive, or None for the model's default")
        if p:
            raise ConfigError(p, "invalid hosted fine-tuning parameters")


def together_model(model):
    """Together's name for an ftplay MODEL (hub id); unknown names pass through for Together to judge.
    A stand-in `tiny:<hub id>` is its hub id: Together fine-tunes the real model."""
    if not model or model.startswith("embedded"):
        raise ConfigError(f"MODEL={model!r}: the embedded tiny model exists only on this machine; "
                          "pick the Together base to fine-tune, e.g. 'meta-llama/Meta-Llama-3.1-8B-Instruct-Reference'")
    if model.startswith(standins.PREFIX):
        model = standins.family_of(model).hub_id
    if model.startswith(("/", ".", "~")) or Path(model).exists():
        raise ConfigError(f"MODEL={model!r} is a local folder: Together fine-tunes the models it hosts; "
                          "set TOGETHER_MODEL (or GPU_MODEL in 03) to the hub id of its base")
    return TOGETHER_MODELS.get(model, model)


def gpu_job(cfg, gpu_model, training_file, together_name="", **hosted_kw):
    """{"model", "job"}: the Together job for the model a learner would train on a GPU (03's
    GPU_MODEL) with `cfg` (the seed's recipe there), or {"model": None, "why"} when Together cannot
    take it (a local folder and no `together_name`)."""
    try:
        name = together_name or together_model(gpu_model)
    except ConfigError as e:
        return {"model": None, "why": str(e)}
    return {"model": name, "job": job_kwargs(cfg, HostedConfig(model=name, **hosted_kw), training_file)}


# ---------------------------------------------------------------- the data file
def _estimate_tokens(messages):
    return sum(len(str(m.get("content", "")).encode("utf-8")) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages)


def check_row(row, max_tokens=None, count_tokens=None):
    """[(rule, detail)] that one parsed line breaks (empty when it is fine)."""
    if not isinstance(row, dict):
        return [("json", f"found a JSON {type(row).__name__}, not an object")]
    out = []
    other = [k for k in OTHER_FORMATS if k in row]
    if other:
        out.append(("one_format", f"has {other} beside `messages`: remove them"))
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) for m in msgs):
        return out + [("messages", f"`messages` is {json.dumps(msgs)[:80]}")]
    for i, m in enumerate(msgs):
        if m.get("role") not in ROLES:
            out.append(("role", f"message {i} has role {m.get('role')!r}"))
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            out.append(("content", f"message {i} ({m.get('role')}) has content {json.dumps(m.get('content'))[:60]}"))
        if "weight" in m and m["weight"] not in (0, 1):
            out.append(("weight", f"message {i} has weight {m['weight']!r}"))
    roles = [m.get("role") for m in msgs]
    turns = roles[1:] if roles[0] == "system" else roles
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(turns))]
    if "system" in turns or turns != expected:
        out.append(("order", f"roles are {roles}"))
    if roles[-1] != "assistant":
        out.append(("ends_with_assistant", f"the last message is {roles[-1]!r}"))
    if max_tokens:
        n = count_tokens(msgs) if count_tokens else _estimate_tokens(msgs)
        if n > max_tokens:
            how = "tokens" if count_tokens else "tokens at most (UTF-8 bytes + template; pass count_tokens for exact)"
            out.append(("length", f"{n} {how} > the limit {max_tokens}"))
    return out


def check_file(path, max_tokens=None, count_tokens=None, min_examples=None):
    """Check a chat JSONL file against Together's rules (RULES). Returns {"path", "examples", "ok",
    "problems"}; each problem names the file, its line, the rule and what was found. `min_examples`
    defaults to the together package's MIN_SAMPLES (1 if the package is absent)."""
    path = Path(path)
    problems, n = [], 0
    if min_examples is None:
        min_examples, max_gb = _package_limits()
    else:
        max_gb = _package_limits()[1]
    if not path.exists():
        return {"path": str(path), "examples": 0, "ok": False, "problems": [f"{path}: file not found"]}
    size = path.stat().st_size
    if size > max_gb * 2**30:
        problems.append(f"{path}: rule file_size: {size / 2**30:.1f} GB > {max_gb} GB; split the file")
    with open(path, encoding="utf-8", errors="strict", newline="") as f:
        try:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue   # Together skips blank lines too
                n += 1
                try:
                    row = json.loads(line)
                except ValueError as e:
                    problems.append(f"{path}:{line_no}: rule json: {RULES['json']}; {e}")
                    continue
                problems += [f"{path}:{line_no}: rule {rule}: {RULES[rule]}; {detail}"
                             for rule, detail in check_row(row, max_tokens, count_tokens)]
        except UnicodeDecodeError as e:
            problems.append(f"{path}: not UTF-8 ({e}); Together reads UTF-8 only")
    if n < min_examples:
        problems.append(f"{path}: rule min_examples: {n} example(s) < the minimum {min_examples}")
    return {"path": str(path), "examples": n, "ok": not problems, "problems": problems}


def _package_limits():
    try:
        from together.lib.constants import MAX_FILE_SIZE_GB, MIN_SAMPLES
    except ImportError:
        return 1, 50.1   # the values in together 2.36.0
    return MIN_SAMPLES, MAX_FILE_SIZE_GB


def _raise(report, what):
    if not report["ok"]:
        shown = report["problems"][:20]
        more = len(report["problems"]) - len(shown)
        raise DataError(shown + ([f"... and {more} more"] if more > 0 else []), f"{what} breaks Together's data rules")
    return report


def export(run_dir, out_dir=None, max_tokens=None, count_tokens=None):
    """Write <run_dir>/data/{train,heldout}.jsonl in Together's chat format under `out_dir`
    (default <run_dir>/together): only `messages`, each message only `role` and `content`.
    The source files are checked first, so a bad row is reported at its line in the run's data;
    ids.json keeps the line -> id mapping the export drops. Returns {"files", "examples", "ids",
    "fingerprints"}."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "together"
    files, counts, ids, prints = {}, {}, {}, {}
    for split in ("train", "heldout"):
        src = run_dir / "data" / f"{split}.jsonl"
        if not src.exists():
            raise DataError(f"{src} is missing: run notebook 02 (curation) with RUN_DIR={run_dir} first")
        _raise(check_file(src, max_tokens, count_tokens), str(src))
        rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
        out = [{"messages": [{"role": m["role"], "content": m["content"]} for m in r["messages"]]} for r in rows]
        files[split] = rundir.write_text(out_dir / f"{split}.jsonl",
                                         "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
        _raise(check_file(files[split], max_tokens, count_tokens), str(files[split]))
        counts[split], ids[split] = len(out), [r.get("id") for r in rows]
        prints[split] = rundir.fingerprint_file(files[split])
    rundir.write_json(out_dir / "ids.json", ids)
    return {"files": {k: str(v) for k, v in files.items()}, "examples": counts, "ids": str(out_dir / "ids.json"),
            "fingerprints": prints}


# ---------------------------------------------------------------- the job
def job_kwargs(cfg, hosted, training_file, validation_file=None):
    """Keyword arguments for `client.fine_tuning.create` from a TrainConfig (LoRA knobs, epochs,
    learning rate, warmup, batch size, seed) and a HostedConfig. TrainConfig fields with no Together
    counterpart are listed in NOT_SENT."""
    from .recipes import ALL_LINEAR

    p = []
    if float(cfg.num_epochs) != int(cfg.num_epochs):
        p.append(f"EPOCHS={cfg.num_epochs}: Together trains whole epochs (n_epochs is an integer); round it")
    if cfg.lr_scheduler not in ("linear", "cosine"):
        p.append(f"lr_scheduler={cfg.lr_scheduler!r}: Together offers 'linear' or 'cosine'")
    if validation_file is None and hosted.n_evals:
        p.append(f"TOGETHER_N_EVALS={hosted.n_evals} needs a validation file; pass one or set it to 0")
    if p:
        raise ConfigError(p, "this training config cannot be sent to Together")
    modules = "all-linear" if set(cfg.target_modules) == set(ALL_LINEAR) else ",".join(cfg.target_modules)
    kw = {"training_file": training_file, "model": hosted.model, "n_epochs": int(cfg.num_epochs),
          "learning_rate": cfg.learning_rate, "lr_scheduler_type": cfg.lr_scheduler,
          "warmup_ratio": cfg.warmup_ratio, "weight_decay": cfg.weight_decay,
          # Together's LoRA jobs take at least 8 sequences per batch: the seed's micro batch 4 goes as 8
          "batch_size": max(cfg.batch_size, TOGETHER_MIN_BATCH), "gradient_accumulation_steps": cfg.grad_accum,
          "lora": True, "lora_r": cfg.lora_r, "lora_alpha": cfg.lora_alpha, "lora_dropout": cfg.lora_dropout,
          "lora_trainable_modules": modules, "train_on_inputs": False,   # loss on the answer only, as 03 trains
          "n_checkpoints": hosted.n_checkpoints, "n_evals": hosted.n_evals, "packing": hosted.packing,
          "max_seq_length": hosted.max_seq_length, "suffix": hosted.suffix, "random_seed": cfg.seed}
    if validation_file is not None:
        kw["validation_file"] = validation_file
    return kw


def _limits(limits):
    from together.types import FinetuneModelLimits

    return limits if isinstance(limits, FinetuneModelLimits) else FinetuneModelLimits.model_validate(limits)


def check_limits(kwargs, limits, examples=None):
    """Raise ConfigError naming every job parameter outside the model's limits (Together's
    FinetuneModelLimits, or its JSON as a dict); returns the limits object when all fit."""
    lim = _limits(limits)
    lora, p = lim.lora_training, []
    if kwargs["lora_r"] > lora.max_rank:
        p.append(f"LORA_R={kwargs['lora_r']} > {lora.max_rank}, "
                 f"the largest rank Together trains for {lim.api_model_name}")
    modules = kwargs["lora_trainable_modules"]
    bad = [] if modules == "all-linear" else [m for m in modules.split(",") if m not in lora.target_modules]
    if bad:
        p.append(f"TARGET_MODULES {bad} are not LoRA targets of {lim.api_model_name}: {lora.target_modules}")
    if not 1 <= kwargs["n_epochs"] <= lim.max_num_epochs:
        p.append(f"EPOCHS={kwargs['n_epochs']} must be 1-{lim.max_num_epochs} on Together")
    if not lim.min_learning_rate <= kwargs["learning_rate"] <= lim.max_learning_rate:
        p.append(f"LEARNING_RATE={kwargs['learning_rate']} is outside Together's "
                 f"[{lim.min_learning_rate}, {lim.max_learning_rate}] for {lim.api_model_name}")
    if kwargs["batch_size"] != "max" and not lora.min_batch_size <= kwargs["batch_size"] <= lora.max_batch_size:
        p.append(f"BATCH_SIZE={kwargs['batch_size']} must be {lora.min_batch_size}-{lora.max_batch_size} "
                 f"for LoRA on {lim.api_model_name}")
    if kwargs["n_checkpoints"] > lim.max_num_checkpoints or kwargs["n_evals"] > lim.max_num_evals:
        p.append("TOGETHER_N_CHECKPOINTS / TOGETHER_N_EVALS must be "
                 f"<= {lim.max_num_checkpoints} / {lim.max_num_evals}")
    seq = kwargs.get("max_seq_length")
    if seq is not None and not lim.min_max_seq_length <= seq <= lim.max_seq_length_sft:
        p.append(f"TOGETHER_MAX_SEQ_LENGTH={seq} must be {lim.min_max_seq_length}-{lim.max_seq_length_sft}")
    if p:
        raise ConfigError(p, f"job parameters outside Together's limits for {lim.api_model_name}")
    return lim


def request_body(kwargs, limits):
    """The JSON body `client.fine_tuning.create(**kwargs)` POSTs to /fine-tunes, built by the
    together package's own `create_finetune_request` (no network)."""
    from together.lib.resources.fine_tuning import create_finetune_request

    request, _, _ = create_finetune_request(model_limits=_limits(limits), **kwargs)
    return request.model_dump(exclude_none=True, mode="json")


def start(client, train_path, cfg, hosted, validation_path=None, count_tokens=None):
    """Upload the exported file(s) and start the LoRA job on `client` (a together.Together).
    Checks the file and the model's limits before anything is spent. Returns {"training_file",
    "validation_file", "limits", "job"} as the package's response objects."""
    limits = client.fine_tuning.model_limits(model_name=hosted.model)
    paths = {"training_file": train_path, "validation_file": validation_path}
    for path in filter(None, paths.values()):
        _raise(check_file(path, hosted.max_seq_length or limits.max_seq_length_sft, count_tokens), str(path))
    kw = job_kwargs(cfg, hosted, "pending-upload", "pending-upload" if validation_path else None)
    check_limits(kw, limits)
    uploaded = {k: client.files.upload(file=Path(v), purpose="fine-tune", check=True) if v else None
                for k, v in paths.items()}
    kw = job_kwargs(cfg, hosted, uploaded["training_file"].id,
                    uploaded["validation_file"].id if uploaded["validation_file"] else None)
    job = client.fine_tuning.create(model_limits=limits, **kw)
    return {**uploaded, "limits": limits, "job": job}
