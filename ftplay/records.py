"""Run records (`<run_dir>/<stem>.json`): each stage's schema, written and read here; errors that name the file,
the field and the fix."""
import json
from dataclasses import dataclass
from pathlib import Path

from . import rundir, stages
from .errors import FtplayError

VERSION = 2   # the records' schema version, in every record as "schema"; readers refuse another version
ENVELOPE = ("task", "config", "versions", "written_at", "seconds", "schema")   # what rundir.record adds


@dataclass(frozen=True)
class Schema:
    """What one stage's record holds: the fields it must carry, those it may, and whether a task adds its own
    (Task.record_fields). Notebooks write their record through it (`records.EVALUATE.write(run_dir, ...)`)."""
    stem: str
    required: tuple
    optional: tuple = ()
    per_task: bool = False   # the stage runs once per task: its task's own fields are allowed beside these

    def write(self, run_dir, task=None, config=None, started=None, task_fields=None, **fields):
        """Write the record: `fields` checked against the schema (ValueError naming the stage and the field),
        `task_fields` (the task's own, per-task stages only) beside them, then the envelope: the task's name,
        the resolved config, versions, the time, the schema version."""
        missing = [k for k in self.required if k not in fields]
        unknown = [k for k in fields if k not in self.required + self.optional]
        extra = dict(task_fields or {})
        if extra and not self.per_task:
            unknown += list(extra)
        clash = [k for k in extra if k in fields or k in ENVELOPE]
        if missing or unknown or clash:
            raise ValueError(f"record {self.stem}: " + "; ".join(
                part for part in (missing and f"missing field(s) {', '.join(missing)}",
                                  unknown and f"field(s) not in its schema: {', '.join(unknown)}",
                                  clash and f"task field(s) that clash with the record's own: {', '.join(clash)}")
                if part))
        name = getattr(task, "name", task)
        return rundir.record(run_dir, self.stem, {**fields, **extra, "schema": VERSION}, config=config,
                             started=started, task=name)


def by_split(splits, results, paired):
    """04's per-split fields: {split: {"n", "systems", "paired"}} for every split of `splits` ({split: rows})."""
    return {split: {"n": len(rows), "systems": results.get(split, {}), "paired": paired.get(split, {})}
            for split, rows in splits.items()}


DECIDE = Schema(stages.DECIDE, ("proceed", "recommendation", "reasons", "todo", "quality", "quality_source", "tried",
                                "labeled_examples", "measured_baselines"))
BASELINE = Schema(stages.BASELINE, ("n", "labels", "systems", "best", "reference", "rows_in", "rows_out",
                                    "heldout_fingerprint"), ("priced_tokens", "hosted_request", "replaced",
                                                              "learning_curve"),
                  per_task=True)
CURATE = Schema(stages.CURATE, ("labels_list", "system_prompt", "pii_accepted", "rows_in", "rows_out", "split",
                                 "labels", "fingerprints", "leakage"),
                ("label_warnings", "trivial", "trivial_outputs", "pii_rows", "pii_kinds", "pii_redacted",
                 "pii_output_rows", "invalid_format", "conflicts", "conflict_rows", "exact_duplicates",
                 "exact_duplicate_rows_dropped", "truncated", "truncated_dropped", "max_seq_len", "tokens",
                 "prompt_tokens", "output_tokens", "near_duplicates", "near_duplicate_rows",
                 "near_duplicate_label_mixed", "near_duplicate_rows_dropped", "capped", "rare_labels",
                 "unseen_labels", "leakage_curated", "production_leakage", "reply_format", "output_field",
                 "label_issues", "teacher", "human_labels"))
TRAIN = Schema(stages.TRAIN, ("adapter_dir", "base_model", "base_params", "device", "engine", "eval_loss", "family",
                              "first_loss", "labels", "load_in_4bit", "log_path", "lora_share", "mask",
                              "peak_memory_mb", "reasons", "reply_format", "resumed_from", "second_adapter", "seconds",
                              "steps", "template", "template_hash", "tokens_per_s", "tokens_seen", "total_params",
                              "train_fingerprint", "train_ids", "train_loss", "train_rows", "trainable_params",
                              "truncated", "weights_dtype", "weights_mb", "quantization_demo", "axolotl_config",
                              "gpu_export"))
SERVE = Schema(stages.SERVE, ("command", "environment", "gpu_command", "adapters_served", "adapters", "adapter_tasks",
                              "tasks", "prompts_source", "preflight", "parity", "structured_output", "eval_framework",
                              "unknown_adapter", "load_test", "load_test_fixed", "model", "server"))
COSTS = Schema(stages.COSTS, ("options", "measured", "not_used", "assumed", "prices", "training", "classical_reference",
                              "seed_vs_run", "escalation_share", "verdict", "tasks", "routes", "favoured_route",
                              "seed_case"))
EVALUATE = Schema(stages.EVALUATE, ("heldout", "decision", "slices", "leakage_recheck", "adapter_dir", "baselines",
                                    "lessons"), ("production", "priced_tokens", "teacher_check", "learning_curve"),
                  per_task=True)

_ABSENT = object()
SCHEMAS = {s.stem: s for s in (DECIDE, BASELINE, CURATE, TRAIN, SERVE, COSTS, EVALUATE)}
# What the verdict reads, with its type, checked in every record read, an older one without `schema` too: a field
# of the wrong type (a list where a dict belongs) would end in an AttributeError. CORE_PRESENT must be there: 04's
# decision without its held-out scores read as a YES.
CORE_PRESENT = {stages.EVALUATE: ("heldout",)}
CORE = {stages.EVALUATE: {"heldout": dict, "decision": dict}, stages.BASELINE: {"systems": dict},
        stages.CURATE: {"split": dict}, stages.TRAIN: {"adapter_dir": str}, stages.COSTS: {"verdict": dict,
                                                                                          "options": list},
        stages.SERVE: {"adapters_served": list}, stages.DECIDE: {"proceed": bool}}


def shape_problems(data, stem):
    """What is wrong with a record's shape: its schema's required fields absent (records that carry `schema`),
    and the fields the verdict reads (CORE) absent or of the wrong type (every record)."""
    out = []
    schema = SCHEMAS.get(stem)
    if schema is not None and data.get("schema") == VERSION:
        missing = [k for k in schema.required if k not in data]
        if missing:
            out.append(f"lacks {', '.join(missing)}")
    absent = [k for k in CORE_PRESENT.get(stem, ()) if k not in data]
    if absent and not out:
        out.append(f"lacks {', '.join(absent)}")
    for k, kind in CORE.get(stem, {}).items():
        if k in data and data[k] is not None and not isinstance(data[k], kind):   # null: not recorded, readers handle
            out.append(f"has {k} of type {type(data[k]).__name__}, not {kind.__name__}")
    return out


class Record(dict):
    """A stage's record as written by `rundir.record`: a dict, plus `at` (a nested field, or a default)
    and `need` (a nested field, or an FtplayError naming the file and the field)."""

    def __init__(self, data, path, stem):
        super().__init__(data)
        self.path, self.stem = Path(path), stem

    def at(self, *keys, default=None):
        """The field at `keys` (`at("heldout", "systems", "base")`), or `default` where a level is
        absent or null."""
        value = self
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
            if value is None:
                return default
        return value

    def need(self, *keys):
        """The field at `keys`; FtplayError naming the file and the field when it is absent."""
        value = self.at(*keys, default=_ABSENT)
        if value is _ABSENT:
            raise FtplayError(f"{self.path} has no field {'.'.join(map(str, keys))}: it was written by another "
                              f"version of notebook {self.stem}; run {self.stem} again into this run directory",
                              title="a run record lacks a field")
        return value


def path(run_dir, stem):
    """<run_dir>/<stem>.json."""
    return Path(run_dir) / stages.record_name(stem)


def read(run_dir, stem, missing_ok=False):
    """The record stage `stem` wrote into `run_dir` as a Record (None when absent and `missing_ok`).
    FtplayError naming the file: absent ("run NN first"), not JSON, or not a JSON object."""
    p = path(run_dir, stem)
    if not p.exists():
        if missing_ok:
            return None
        raise FtplayError(f"{p} is missing: run notebook {stem} first, with RUN_DIR={run_dir}",
                          title="a run record is missing")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" (line {e.lineno}: {e.msg})" if isinstance(e, json.JSONDecodeError) else ""
        raise FtplayError(f"{p} is not JSON{where}: run notebook {stem} again to write it",
                          title="a run record is unreadable") from None
    if not isinstance(data, dict):
        raise FtplayError(f"{p} holds a JSON {type(data).__name__}, not a record (an object): run notebook "
                          f"{stem} again to write it", title="a run record is unreadable")
    if "schema" in data and data["schema"] != VERSION:
        raise FtplayError(f"{p} has field schema={data['schema']!r}: it was written by another version of ftplay, "
                          f"which this one (schema {VERSION}) does not read; run notebook {stem} again into this run "
                          "directory", title="a run record is of another version")
    bad = shape_problems(data, stem)
    if bad:
        raise FtplayError(f"{p} {'; '.join(bad)}: it is not a record notebook {stem} writes (edited, cut short or "
                          f"from another version); run notebook {stem} again into this run directory",
                          title="a run record has the wrong shape")
    return Record(data, p, stem)


def read_or_empty(run_dir, stem):
    """The record, or an empty Record when the stage has not run (every `at` then gives its default)."""
    return read(run_dir, stem, missing_ok=True) or Record({}, path(run_dir, stem), stem)


def read_all(run_dir, stems=stages.STEMS):
    """{stem: Record or None (not run)} for `stems` (default every stage)."""
    return {s: read(run_dir, s, missing_ok=True) for s in stems}


def task_of(run_dir):
    """The task the records in `run_dir` are for: the `task` field 02, 03 or 00 wrote ("classify" for a
    run recorded before tasks existed)."""
    for stem in (stages.CURATE, stages.TRAIN, stages.BASELINE, stages.EVALUATE):
        rec = read(run_dir, stem, missing_ok=True)
        if rec is not None:
            return rec.get("task") or stages.CLASSIFY
    return None


def task_runs(run_dir):
    """{task: folder} of every task recorded in the run: the run directory's own task first, then each
    <run_dir>/<task>/ that holds records. A run of one task gives one entry."""
    run_dir = Path(run_dir)
    out = {}
    first = task_of(run_dir)
    if first:
        out[first] = run_dir
    for task in stages.TASKS:
        sub = run_dir / task
        if task not in out and sub.is_dir() and task_of(sub):
            out[task_of(sub)] = sub
    return out
