"""Axolotl export: the run's TrainConfig as Axolotl YAML (1 GPU, DeepSpeed, FSDP2) with launch commands."""
import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import prompts, rundir, standins
from .errors import ConfigError, FtplayError

log = logging.getLogger(__name__)
AXOLOTL_VERSION = "0.21.0"  # the schema the export is checked against (tests/test_axolotl.py)
REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_REQUIREMENTS = REPO_ROOT / "requirements" / "axolotl-schema.txt"
# ftplay optimizer -> Axolotl `optimizer` (Hugging Face optim names). adamw_bnb_8bit is the seed's
# spelling of bitsandbytes' 8-bit AdamW; transformers' OptimizerNames calls adamw_8bit "just an alias" of it.
OPTIMIZERS = {"adamw_8bit": "adamw_bnb_8bit", "paged_adamw_8bit": "paged_adamw_8bit",
              "adamw_torch": "adamw_torch", "adamw_torch_fused": "adamw_torch_fused"}
# bitsandbytes' 8-bit AdamW breaks on FSDP2's sharded tensors (Axolotl rejects adamw_8bit there and
# names this one instead): torchao's 8-bit AdamW keeps the memory saving.
FSDP_OPTIMIZERS = {"adamw_8bit": "adamw_torch_8bit", "paged_adamw_8bit": "adamw_torch_8bit"}
VARIANTS = ("single", "deepspeed", "fsdp")
# Axolotl's `chat_template` per family: `tokenizer_default` for all three, i.e. the base's original
# template, the one vLLM serves with. Measured with each stand-in's tokenizer through Axolotl 0.21's
# own chat_template strategy (tests/test_axolotl.py), on a system + ticket + answer row:
# - Llama 3.1: Axolotl's named `llama3` template lacks 3.1's "Cutting Knowledge Date / Today Date"
#   system header: 37 tokens instead of the 57 served, a prompt vLLM never sends.
# - Qwen 2.5: Axolotl's `qwen_25` renders the same ids; tokenizer_default still keeps the base's own
#   template (and the template hash ftplay compares between training and serving) in Axolotl's output.
# - Mistral v0.3: neither `tokenizer_default` nor `mistral_v2v3` (the same template) keeps the system
#   prompt in a training row: see SYSTEM_DROPPED.
CHAT_TEMPLATE = "tokenizer_default"
# Hub ids whose original template drops the system prompt from a conversation that ends with an
# answer: Mistral v0.3 writes it into the last user turn only when that turn is the last message.
# Axolotl renders the whole row with the template (and skips a leading system turn for any tokenizer
# whose name contains "mistral": prompt_strategies/chat_template.py, find_turn), so it would train
# `<s>[INST] ticket[/INST] label</s>` (9 tokens) while serving sends `<s>[INST] system\n\nticket[/INST]`
# (29). The export folds the system prompt into the user turn as the template writes it when serving,
# so the trained prompt is the served one (checked by rendering wherever the tokenizer is at hand; this
# set is for a hub id without local files, and tests/test_axolotl.py checks it against the stand-ins).
SYSTEM_DROPPED = {"mistralai/Mistral-7B-Instruct-v0.3"}


@dataclass(frozen=True)
class ExportConfig:
    """Where the run's pieces are; the training knobs come from the TrainConfig."""
    base_model: str                      # MODEL as resolved: a hub id or a local model folder
    train_path: str                      # the run's data/train.jsonl (chat JSONL)
    heldout_path: str = ""               # a validation file for the per-epoch eval loss (Axolotl's test_datasets)
    val_set_size: float = 0.0            # or: this fraction of TRAIN_PATH held out for it (as EVAL_FRACTION in 03)
    output_dir: str = ""                 # where Axolotl writes the adapter; "": <export dir>/outputs
    sequence_len: int | None = None      # None: the TrainConfig's max_seq_len
    micro_batch_size: int | None = None  # per GPU; None: the TrainConfig's batch_size
    num_gpus: int = 2                    # GPUs in the multi-GPU launch commands
    zero_stage: int = 2                  # DeepSpeed ZeRO stage: 2 shards optimizer+gradients, 3 also weights
    sample_packing: bool = False         # packing changes what a batch holds; off keeps ftplay's recipe

    def __post_init__(self):
        p = []
        if not str(self.base_model).strip():
            p.append("BASE_MODEL is empty: pass the resolved model (ref.path), a hub id or a model folder")
        if not Path(self.train_path).is_file():
            p.append(f"TRAIN_PATH={self.train_path!r} is not a file: point it at the run's data/train.jsonl "
                     "(written by notebook 02)")
        if self.heldout_path and not Path(self.heldout_path).is_file():
            p.append(f"HELDOUT_PATH={self.heldout_path!r} is not a file: point it at data/heldout.jsonl or pass ''")
        if not 0 <= self.val_set_size < 1:
            p.append(f"VAL_SET_SIZE={self.val_set_size} must be in [0, 1): the fraction of TRAIN_PATH for eval loss")
        if self.val_set_size and self.heldout_path:
            p.append(f"VAL_SET_SIZE={self.val_set_size} and HELDOUT_PATH are both set; Axolotl takes one "
                     "eval set: pass VAL_SET_SIZE=0 or HELDOUT_PATH=''")
        if self.sequence_len is not None and self.sequence_len < 16:
            p.append(f"SEQUENCE_LEN={self.sequence_len} is too small; use at least 16 (or None for MAX_SEQ_LEN)")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            p.append(f"MICRO_BATCH_SIZE={self.micro_batch_size} must be >= 1 (or None for BATCH_SIZE)")
        if self.num_gpus < 2:
            p.append(f"NUM_GPUS={self.num_gpus} must be >= 2: it sizes the multi-GPU commands "
                     "(one GPU uses config.yml)")
        if self.zero_stage not in (2, 3):
            p.append(f"ZERO_STAGE={self.zero_stage} must be 2 or 3 (2 for LoRA on a model that fits one GPU)")
        if p:
            raise ConfigError(p, "invalid Axolotl export parameters")


@dataclass
class ExportResult:
    files: dict      # name -> path: config, config_deepspeed, config_fsdp, deepspeed_json, commands (+ data)
    commands: dict   # name -> shell command line
    template: "Template" = None   # how the conversations reach Axolotl


# ---------------------------------------------------------------- the base model and its template
@dataclass(frozen=True)
class Template:
    """How the export hands conversations to Axolotl for one base model."""
    base_model: str        # what config.yml names: the hub id a stand-in stands in for, else as given
    local_path: str        # a local model folder for this base ('' for a hub id without one)
    chat_template: str     # Axolotl's `chat_template`
    fold_system: bool      # system prompt folded into the user turn (SYSTEM_DROPPED)
    checked: str           # how fold_system was decided


def _stands_in_for(path):
    meta = Path(path) / "ftplay_tiny.json"
    try:
        return json.loads(meta.read_text()).get("stands_in_for") if meta.is_file() else None
    except ValueError:
        return None


def _tokenizer(path):
    if not (Path(path) / "tokenizer_config.json").is_file():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def template_for(base_model):
    """The Template for MODEL as resolved (ref.path), `tiny:<hub id>` or a hub id. A stand-in is
    exported as the hub id it stands in for: the real run happens on a GPU box with the real model.
    With a local tokenizer the fold is decided by rendering (prompts.prefix_preserving)."""
    base = str(base_model).strip()
    local = standins.build(base) if base.startswith(standins.PREFIX) else (Path(base) if Path(base).exists() else None)
    hub = base.removeprefix(standins.PREFIX) if base.startswith(standins.PREFIX) else base
    if local is not None:
        hub = _stands_in_for(local) or str(local)
    tok = _tokenizer(local) if local is not None else None
    if tok is not None:
        fold, how = not prompts.prefix_preserving(tok), f"rendered with the tokenizer in {local}"
    else:
        fold, how = hub in SYSTEM_DROPPED, "ftplay.axolotl.SYSTEM_DROPPED (no tokenizer here to render with)"
    return Template(hub, str(local or ""), CHAT_TEMPLATE, fold, how)


def fold_system(messages):
    """[system, user, ...] -> [user: system + blank line + user, ...], as Mistral v0.3's template writes
    the system prompt into the user turn when serving."""
    if len(messages) < 2 or messages[0]["role"] != "system" or messages[1]["role"] != "user":
        return list(messages)
    first = {**messages[1], "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}
    return [first, *messages[2:]]


def _write_folded(src, dst, tokenizer=None):
    """Copy a chat JSONL file with each row's system prompt folded into its user turn; with a
    tokenizer, check that the first row renders token for token as ftplay trains it."""
    rows = [json.loads(line) for line in Path(src).read_text(encoding="utf-8").splitlines() if line.strip()]
    out = [{**r, "messages": fold_system(r["messages"])} for r in rows]
    if tokenizer is not None and rows:
        want = prompts.training_example(tokenizer, rows[0]["messages"])[0]
        got = prompts.encode(tokenizer, prompts.render(tokenizer, out[0]["messages"]))
        if got != want:
            raise FtplayError(f"{src}: the row with its system prompt folded into the user turn renders "
                              f"{len(got)} tokens, ftplay trains {len(want)}: the template needs another fold",
                              "cannot export to Axolotl")
    rundir.write_text(dst, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    return dst


# ---------------------------------------------------------------- config
def _optimizer(cfg, variant):
    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError(f"OPTIMIZER={cfg.optimizer!r} has no Axolotl mapping; use one of {list(OPTIMIZERS)} "
                          "or add it to ftplay.axolotl.OPTIMIZERS", "cannot export to Axolotl")
    if variant == "fsdp":
        return FSDP_OPTIMIZERS.get(cfg.optimizer, OPTIMIZERS[cfg.optimizer])
    return OPTIMIZERS[cfg.optimizer]


def _dataset(path, split=None):
    """A chat JSONL file as Axolotl reads ftplay's {"messages": [system, user, assistant]} rows."""
    ds = {"path": str(path), "ds_type": "json"}
    if split:
        ds["split"] = split
    return {**ds, "type": "chat_template", "field_messages": "messages",
            "message_property_mappings": {"role": "role", "content": "content"},
            "roles_to_train": ["assistant"],   # loss on the answer only, as ftplay's assistant mask
            "train_on_eos": "turn"}            # and on the end-of-turn token after it, so it learns to stop


def decoder_layer_class(base_model):
    """FSDP's wrap unit for a local model folder or a stand-in family's hub id ('Qwen2ForCausalLM' ->
    'Qwen2DecoderLayer'); None if unknown."""
    cfg = Path(base_model) / "config.json"
    try:
        arch = (json.loads(cfg.read_text()).get("architectures") or [""])[0]
    except (OSError, ValueError):
        fam = standins.FAMILIES.get(str(base_model).removeprefix(standins.PREFIX))
        arch = fam.architecture if fam else ""
    return arch.replace("ForCausalLM", "DecoderLayer") if arch.endswith("ForCausalLM") else None


def config_dict(cfg, exp, output_dir, variant="single", deepspeed=None, template=None, data=None):
    """The Axolotl config for `variant` ('single', 'deepspeed' with the JSON path, 'fsdp') as a dict;
    `template` (template_for) and `data` ({"train": path, "heldout": path}: folded copies) from export."""
    if variant not in VARIANTS:
        raise ConfigError(f"VARIANT={variant!r} is not one of {VARIANTS}")
    if variant == "deepspeed" and not deepspeed:
        raise ConfigError("VARIANT='deepspeed' needs the DeepSpeed JSON path (deepspeed=...)")
    four = cfg.load_in_4bit
    template = template or template_for(exp.base_model)
    data = data or {"train": exp.train_path, "heldout": exp.heldout_path}
    # adapter: qlora, not the seed's literal `adapter: lora` next to `load_in_4bit: true  # QLoRA`: in
    # Axolotl 0.21 only qlora builds the nf4 BitsAndBytesConfig (loaders/model.py
    # _set_quantization_config); lora quantizes with load_in_8bit only, so the seed's lines would
    # train a 16-bit base. qlora also requires load_in_4bit (schemas/peft.py).
    y = {"base_model": template.base_model,
         "load_in_4bit": four,
         "adapter": "qlora" if four else "lora",
         "lora_r": cfg.lora_r, "lora_alpha": cfg.lora_alpha, "lora_dropout": cfg.lora_dropout,
         "lora_target_modules": list(cfg.target_modules),
         "chat_template": template.chat_template,          # see CHAT_TEMPLATE
         "chat_template_kwargs": dict(prompts.TEMPLATE_KWARGS),  # the one fixed date ftplay renders with
         "datasets": [_dataset(Path(data["train"]).resolve())]}
    if data["heldout"]:
        y["test_datasets"] = [_dataset(Path(data["heldout"]).resolve(), split="train")]
    y |= {"val_set_size": exp.val_set_size,      # 0 with a held-out file: it is the eval set
          "dataset_prepared_path": str(Path(output_dir) / "prepared"),
          "train_on_inputs": False,
          "sequence_len": exp.sequence_len or cfg.max_seq_len,
          "sample_packing": exp.sample_packing,
          "micro_batch_size": exp.micro_batch_size or cfg.batch_size,
          "gradient_accumulation_steps": cfg.grad_accum,
          "num_epochs": cfg.num_epochs}
    if cfg.max_steps > 0:
        y["max_steps"] = cfg.max_steps
    y |= {"learning_rate": cfg.learning_rate,
          "optimizer": _optimizer(cfg, variant),
          "lr_scheduler": cfg.lr_scheduler,
          "warmup_ratio": cfg.warmup_ratio,
          "weight_decay": cfg.weight_decay,
          "seed": cfg.seed,
          "bf16": "auto",                           # bf16 where the GPU has it (SM 80+), as ftplay does
          "gradient_checkpointing": variant != "fsdp",  # FSDP2 checkpoints inside fsdp_config instead
          "logging_steps": cfg.logging_steps}
    if exp.heldout_path or exp.val_set_size:
        y["evals_per_epoch"] = 1
    if cfg.save_steps:
        y |= {"save_steps": cfg.save_steps, "save_total_limit": 2}
    else:
        y["save_strategy"] = "no"                  # ftplay's SAVE_STEPS=0; the final adapter is still saved
    y["output_dir"] = str(output_dir)
    if variant == "deepspeed":
        y["deepspeed"] = str(deepspeed)
    if variant == "fsdp":
        fsdp = {"offload_params": False, "state_dict_type": "FULL_STATE_DICT",
                "auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "reshard_after_forward": True,
                "activation_checkpointing": True}
        layer = decoder_layer_class(template.local_path or template.base_model)
        if layer:  # else accelerate wraps the model's own _no_split_modules
            fsdp["transformer_layer_cls_to_wrap"] = layer
        y |= {"fsdp_version": 2, "fsdp_config": fsdp}
    return y


def deepspeed_json(stage=2):
    """A ZeRO config whose batch and precision fields ("auto") Axolotl fills from the YAML."""
    zero = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True,
            "reduce_bucket_size": "auto"}
    if stage == 3:
        zero |= {"stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto",
                 "stage3_gather_16bit_weights_on_model_save": True}
    # No optimizer offload: a LoRA adapter's optimizer state is a few MB, and DeepSpeed's CPU offload
    # would replace the 8-bit AdamW with its own CPU Adam.
    return {"zero_optimization": zero, "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},
            "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
            "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto",
            "wall_clock_breakdown": False}


# ---------------------------------------------------------------- files and commands
def commands(files, num_gpus):
    """Launch command lines for the written files; `axolotl train` wraps `accelerate launch`."""
    q = {k: shlex.quote(str(v)) for k, v in files.items()}
    n = int(num_gpus)
    return {
        "install": f"pip install --no-build-isolation 'axolotl[deepspeed]=={AXOLOTL_VERSION}'  # Python >= 3.12, CUDA",
        "preprocess": f"axolotl preprocess {q['config']}",
        "train_1gpu": f"axolotl train {q['config']}",
        "train_1gpu_accelerate": f"accelerate launch -m axolotl.cli.train {q['config']}",
        "train_deepspeed": f"axolotl train {q['config_deepspeed']} --launcher accelerate -- --num_processes {n}",
        "train_deepspeed_accelerate": f"accelerate launch --num_processes {n} -m axolotl.cli.train "
                                      f"{q['config_deepspeed']}",
        "train_fsdp": f"axolotl train {q['config_fsdp']} --launcher accelerate -- --num_processes {n}",
        "train_fsdp_accelerate": f"accelerate launch --num_processes {n} -m axolotl.cli.train {q['config_fsdp']}",
    }


def _yaml(d, title):
    import yaml

    head = (f"# {title}\n# Written by ftplay.axolotl for Axolotl {AXOLOTL_VERSION}; "
            "see COMMANDS.md beside this file.\n")
    return head + yaml.safe_dump(d, sort_keys=False, default_flow_style=False)


def export(cfg, exp, out_dir):
    """Write config.yml, config_deepspeed.yml, config_fsdp.yml, zeroN.json and COMMANDS.md into
    `out_dir` (and data/*.jsonl where the system prompt is folded, SYSTEM_DROPPED); return their
    paths, the command lines and the Template. Paths inside are absolute."""
    out = Path(out_dir).resolve()
    output_dir = Path(exp.output_dir).resolve() if exp.output_dir else out / "outputs"
    files = {"config": out / "config.yml", "config_deepspeed": out / "config_deepspeed.yml",
             "config_fsdp": out / "config_fsdp.yml", "deepspeed_json": out / f"zero{exp.zero_stage}.json",
             "commands": out / "COMMANDS.md"}
    template = template_for(exp.base_model)
    data = {"train": exp.train_path, "heldout": exp.heldout_path}
    if template.fold_system:
        data = {k: str(out / "data" / f"{k}.jsonl") if v else "" for k, v in data.items()}
    kw = {"template": template, "data": data}
    single = config_dict(cfg, exp, output_dir, **kw)  # raises before anything is written
    if template.fold_system:
        tok = _tokenizer(template.local_path) if template.local_path else None
        for k in ("train", "heldout"):
            if data[k]:
                files[f"data_{k}"] = _write_folded({"train": exp.train_path, "heldout": exp.heldout_path}[k],
                                                   data[k], tok)
    rundir.write_json(files["deepspeed_json"], deepspeed_json(exp.zero_stage))
    rundir.write_text(files["config"], _yaml(single, "One GPU: QLoRA/LoRA as ftplay's TrainConfig"))
    rundir.write_text(files["config_deepspeed"], _yaml(
        config_dict(cfg, exp, output_dir, "deepspeed", files["deepspeed_json"], **kw),
        f"Several GPUs, DeepSpeed ZeRO-{exp.zero_stage}: data parallel, optimizer state and gradients sharded"))
    rundir.write_text(files["config_fsdp"], _yaml(
        config_dict(cfg, exp, output_dir, "fsdp", **kw),
        "Several GPUs, FSDP2: weights sharded too (for a base model that does not fit one GPU)"))
    cmds = commands(files, exp.num_gpus)
    micro = single["micro_batch_size"] * single["gradient_accumulation_steps"]
    md = [f"# Training this run with Axolotl {AXOLOTL_VERSION}", "",
          "Same recipe as ftplay's TrainConfig. Global batch = micro_batch_size x gradient_accumulation_steps"
          f" x GPUs: {micro} on one GPU, {micro * exp.num_gpus} on {exp.num_gpus}"
          " (lower gradient_accumulation_steps to keep it).", ""]
    for name, line in cmds.items():
        md += [f"## {name}", "", "```bash", line, "```", ""]
    rundir.write_text(files["commands"], "\n".join(md))
    return ExportResult(files={k: str(v) for k, v in files.items()}, commands=cmds, template=template)


def differences(configs):
    """{key: [value in each config]} for the top-level keys whose values differ between the YAML files
    `configs` ({label: path}); datasets and paths are compared as written."""
    import yaml

    loaded = [yaml.safe_load(Path(p).read_text()) for p in configs.values()]
    keys = list(dict.fromkeys(k for y in loaded for k in y))
    return {k: [y.get(k) for y in loaded] for k in keys
            if len({json.dumps(y.get(k), sort_keys=True) for y in loaded}) > 1}


# ---------------------------------------------------------------- Axolotl's own validator
def ensure_schema_env(cache=None, requirements=SCHEMA_REQUIREMENTS, python=sys.executable):
    """A folder with Axolotl (no dependencies) to put on PYTHONPATH over this venv, built once and
    keyed by the requirements file's hash. ~10 MB, a few seconds. Raises FtplayError with pip's output."""
    req = Path(requirements)
    key = hashlib.sha256(req.read_bytes()).hexdigest()[:12]
    root = Path(cache or os.environ.get("FTPLAY_CACHE", REPO_ROOT / ".cache" / "ftplay")) / "axolotl-env"
    site = root / key
    if (site / ".complete").exists():
        return site
    tmp = root / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile", "--ignore-requires-python",
           "--disable-pip-version-check", "--target", str(tmp), "-r", str(req)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FtplayError(f"`{' '.join(cmd)}` failed:\n{(r.stdout + r.stderr)[-2000:]}",
                          "cannot install Axolotl's config validator")
    (tmp / ".complete").write_text(" ".join(cmd) + "\n")
    if site.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(site)
    return site


def validate(items, site, python=sys.executable, timeout=600):
    """Run Axolotl's own validate_config (what `axolotl train` runs before training) on YAML files,
    each a path or (path, n_gpu), in a subprocess with `site` on PYTHONPATH. Returns one dict per
    file: ok, error, warnings (Axolotl's), unknown_keys (keys its schema would silently drop), resolved."""
    pairs = [(str(i), 1) if isinstance(i, (str, Path)) else (str(i[0]), int(i[1])) for i in items]
    return _in_axolotl_env([json.dumps(pairs)], site, python, timeout, "the Axolotl validator")


def _in_axolotl_env(args, site, python, timeout, what):
    """Run `python -m ftplay.axolotl ARGS` with Axolotl's install (`site`) on PYTHONPATH, offline;
    the JSON list its last line prints."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO_ROOT)]),
           "AXOLOTL_DO_NOT_TRACK": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    r = subprocess.run([python, "-m", "ftplay.axolotl", *args], capture_output=True, text=True, env=env,
                       cwd=REPO_ROOT, timeout=timeout)
    last = (r.stdout.strip().splitlines() or [""])[-1]
    if r.returncode != 0 or not last.startswith("["):
        raise FtplayError(f"{what} did not run (exit {r.returncode}):\n{r.stderr[-3000:]}", f"{what} failed to start")
    return json.loads(last)


def tokenized(config, tokenizer_path, site, rows=2, python=sys.executable, timeout=300):
    """What Axolotl itself trains on: its chat_template strategy (what `axolotl preprocess` runs)
    applied to the first `rows` rows of config's first dataset, with the tokenizer in
    `tokenizer_path` (a stand-in's folder: config.yml names the hub id). [{"input_ids", "labels"}]."""
    return _in_axolotl_env(["--tokenize", json.dumps([str(config), str(tokenizer_path), rows])], site, python,
                           timeout, "Axolotl's tokenization")


def _tokenize_here(config, tokenizer_path, rows):
    """In the subprocess: Axolotl's chat_template strategy on the config's first dataset."""
    import yaml
    from axolotl.prompt_strategies.chat_template import load
    from axolotl.utils.dict import DictDefault
    from transformers import AutoTokenizer

    cfg = DictDefault(yaml.safe_load(Path(config).read_text()))
    ds = dict(cfg["datasets"][0])
    strategy = load(AutoTokenizer.from_pretrained(tokenizer_path), cfg, ds)
    lines = Path(ds["path"]).read_text(encoding="utf-8").splitlines()[:rows]
    return [{k: list(v) for k, v in strategy.tokenize_prompt(json.loads(line)).items() if k in ("input_ids", "labels")}
            for line in lines]


def _fields(model):
    return set(model.model_fields) | {a for f in model.model_fields.values()
                                      for a in getattr(f.validation_alias, "choices", []) if isinstance(a, str)}


def _unknown_keys(raw):
    """Keys Axolotl's schema does not define: pydantic drops them without a word, so a misspelt
    key would pass validation and be ignored in training."""
    from axolotl.utils.schemas.config import AxolotlConfigWCapabilities
    from axolotl.utils.schemas.datasets import SFTDataset
    from axolotl.utils.schemas.fsdp import FSDPConfig

    top, ds, fsdp = _fields(AxolotlConfigWCapabilities), _fields(SFTDataset), _fields(FSDPConfig)
    bad = [k for k in raw if k not in top]
    for name in ("datasets", "test_datasets"):
        bad += [f"{name}[{i}].{k}" for i, d in enumerate(raw.get(name) or []) for k in d if k not in ds]
    bad += [f"fsdp_config.{k}" for k in raw.get("fsdp_config") or {} if k not in fsdp]
    return bad


def _validate_here(path, n_gpu):
    """In the subprocess: load the YAML as `axolotl train` does and validate it as on SM 90 GPUs."""
    import torch
    import yaml
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    caps = {"bf16": True, "fp8": False, "tf32": True, "n_gpu": n_gpu, "compute_capability": "sm_90"}
    env_caps = {"torch_version": torch.__version__.split("+")[0]}
    raw = yaml.safe_load(Path(path).read_text())
    unknown = _unknown_keys(raw)
    cfg = validate_config(DictDefault(raw), capabilities=caps, env_capabilities=env_caps)
    keys = ("adapter", "load_in_4bit", "optimizer", "micro_batch_size", "sequence_len", "bf16",
            "train_on_inputs", "deepspeed")
    return unknown, {k: cfg.get(k) for k in keys if cfg.get(k) is not None} | {
        "datasets": [dict(d) for d in cfg.get("datasets") or []],
        "fsdp_config": dict(cfg["fsdp_config"]) if cfg.get("fsdp_config") else None}


def _main(argv):
    """`python -m ftplay.axolotl '[[path, n_gpu], ...]'` prints one JSON list (see `validate`);
    `--tokenize '[config, tokenizer, rows]'` prints Axolotl's tokenized rows (see `tokenized`)."""
    if argv[0] == "--tokenize":
        logging.getLogger("axolotl").setLevel(logging.ERROR)
        print(json.dumps(_tokenize_here(*json.loads(argv[1]))))
        return
    warnings = []

    class Catch(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())

    logging.getLogger("axolotl").addHandler(Catch(logging.WARNING))
    results = []
    for path, n_gpu in json.loads(argv[0]):
        warnings.clear()
        try:
            unknown, resolved = _validate_here(path, n_gpu)
            results.append({"path": path, "ok": True, "error": None, "warnings": list(warnings),
                            "unknown_keys": unknown, "resolved": resolved})
        except Exception as e:  # noqa: BLE001  (every rejection is a result, reported per file)
            results.append({"path": path, "ok": False, "error": f"{type(e).__name__}: {e}",
                            "warnings": list(warnings), "unknown_keys": None, "resolved": None})
    print(json.dumps(results, default=lambda o: getattr(o, "value", str(o))))


if __name__ == "__main__":
    _main(sys.argv[1:])
