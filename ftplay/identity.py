"""Base and adapter identity: the base a run or adapter was trained on, `ftplay_adapter.json`, the changed-base check.

A LoRA adapter only fits the base it was trained on. Notebook 03 pins that base (id and files hash or
hub revision) in `03_train_qlora.json` and in the adapter's `ftplay_adapter.json`, with the chat
template's hash, the labels and the system prompt; `check_base` compares such a record with the base
in use now. The runner (before reusing an adapter), refit, notebook 04 and serving's pre-flight all
read and compare through this module.
"""
import json
from dataclasses import dataclass
from pathlib import Path

from . import models, prompts, records, rundir, stages
from .errors import ConfigError, check

ADAPTER_META = "ftplay_adapter.json"


def base_record(ref):
    """{requested, path, kind, revision} of a ModelRef: how runs and adapters pin their base."""
    return {"requested": ref.requested, "path": ref.path, "kind": ref.kind, "revision": ref.revision}


def write_adapter_meta(adapter_dir, ref, tokenizer, labels, system_prompt, vocab_size=None, task=stages.CLASSIFY,
                       reply_format=None):
    """Write ftplay_adapter.json beside an adapter: what serving must match (base, template, labels,
    system prompt, the embedding rows trained against: the base config's vocab_size unless given,
    which is not len(tokenizer) for every family: Qwen2.5-7B has 152,064 rows for 151,665 tokens),
    and the task it answers (`task`; the reply task's `reply_format` too, so a reply conversation
    can be rebuilt from the adapter alone); returns the record."""
    if vocab_size is None:
        vocab_size = _config_vocab(ref) or len(tokenizer)
    meta = {"task": task, "base": base_record(ref), "family": models.family(ref),
            "template_hash": models.template_hash(tokenizer), "template": prompts.describe(tokenizer),
            "labels": list(labels), "system_prompt": system_prompt, "vocab_size": vocab_size,
            "tokenizer_size": len(tokenizer), **({"reply_format": reply_format} if task == stages.REPLY else {})}
    rundir.write_json(Path(adapter_dir) / ADAPTER_META, meta)
    return meta


def _config_vocab(ref):
    """vocab_size of the base's config.json (a local folder, or the hub model's cached config)."""
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(ref.path).vocab_size
    except (OSError, ValueError):
        return None


def adapter_task(meta):
    """The task an adapter's ftplay_adapter.json names ("classify" for an adapter written before tasks existed)."""
    return (meta or {}).get("task") or stages.CLASSIFY


def read_adapter_meta(adapter_dir, missing_ok=False):
    """ftplay_adapter.json of an adapter folder (None when absent and `missing_ok`); a ConfigError with
    the fix when it is absent or not JSON."""
    p = Path(adapter_dir) / ADAPTER_META
    if not p.exists():
        if missing_ok:
            return None
        raise ConfigError(f"{p} is missing: the labels and system prompt come from it; point ADAPTER_DIR at an "
                          "adapter trained by notebook 03 (it writes that file)")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p} is not JSON (line {e.lineno}: {e.msg}): train the adapter again with notebook 03, "
                          "which writes it") from None


@dataclass(frozen=True)
class BaseCheck:
    """A recorded base (of an adapter or a run) against the base model in use now."""
    trained_on: str        # "requested@revision" as recorded at training time
    base: str              # "requested@revision" of the base now
    changed: bool | None   # None: the record has no revision to compare
    source: str            # the file the recorded base was read from
    message: str


def recorded_base(source):
    """(base record {requested, path, revision}, file) of a run directory (03_train_qlora.json) or an
    adapter folder (ftplay_adapter.json, else adapter_config.json, which pins no revision)."""
    src = Path(source)
    trained = records.read(src, stages.TRAIN, missing_ok=True)
    if trained and trained.get("base_model"):
        return trained["base_model"], str(trained.path)
    meta = read_adapter_meta(src, missing_ok=True)
    if meta and meta.get("base"):
        return meta["base"], str(src / ADAPTER_META)
    cfg = rundir.read_json(src / "adapter_config.json")
    if cfg and cfg.get("base_model_name_or_path"):
        name = cfg["base_model_name_or_path"]
        return {"requested": name, "path": name, "revision": cfg.get("revision")}, str(src / "adapter_config.json")
    raise ConfigError(f"{src} records no base model: pass a run directory with {stages.record_name(stages.TRAIN)} "
                      f"or an adapter folder with {ADAPTER_META} (notebook 03 writes both)")


def compare_base(recorded, ref, source="", param="MODEL"):
    """BaseCheck of a recorded base {requested, path, revision} against a resolved ModelRef."""
    name = recorded.get("requested") or recorded.get("path") or "?"
    rev = recorded.get("revision")
    was, now = f"{name}@{rev}", f"{ref.requested}@{ref.revision}"
    if not rev:
        return BaseCheck(was, now, None, source, f"{source} pins no base revision, so a changed base cannot be "
                         f"detected against {now}; train with ftplay (03 records it) to pin it")
    if rev != ref.revision:
        return BaseCheck(was, now, True, source, f"adapter trained on {was}, base is now {now}: re-fine-tune "
                         f"(ftplay refit --from RUN_DIR --model {ref.requested}) or set {param}={name!r}")
    same = "" if name in (ref.requested, ref.path) else f" (recorded as {name!r}, same files)"
    return BaseCheck(was, now, False, source, f"base revision {rev} matches{same}")


def check_base(source, model, param="MODEL"):
    """BaseCheck of a run directory's or adapter folder's recorded base against `model` (a MODEL value
    or a ModelRef)."""
    ref = model if isinstance(model, models.ModelRef) else models.resolve(model, param)
    recorded, path = recorded_base(source)
    return compare_base(recorded, ref, path, param)


def require_same_base(source, model, param="MODEL"):
    """check_base, raising ConfigError (with the fix) when the base has changed; returns the BaseCheck."""
    base = check_base(source, model, param)
    check([base.message] if base.changed else [], title="the adapter does not fit this base")
    return base
