"""What 05 serves and sends: the run's adapters named by task, each task's held-out tickets and the
prompts built from them as training built them, and the context length they need."""
from dataclasses import dataclass
from pathlib import Path

from . import identity, prompts, records, stages
from .errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def resolve_adapters(run_dir, adapter_dir="", second_adapter_dir=""):
    """{served name: folder} for notebook 05. Without ADAPTER_DIR: every task's adapter that notebook 03
    recorded in the run (`records.task_runs`: the run directory's own task, then each <RUN_DIR>/<task>/),
    named by its task (stages.ADAPTER_NAMES: "triage", "reply"), each followed by 03's second adapter of
    that task when it trained one ("<name>_b"). With ADAPTER_DIR: that adapter, named by the task its
    ftplay_adapter.json states. SECOND_ADAPTER_DIR adds one more after the first ("<name>_b")."""
    out = {}
    if adapter_dir:
        out[_task_name(adapter_dir)] = adapter_dir
    else:
        tasks = records.task_runs(run_dir)
        for task, folder in tasks.items():
            rec = records.read_or_empty(folder, stages.TRAIN)
            if rec.get("adapter_dir"):
                name = stages.ADAPTER_NAMES.get(task, task)
                out[name] = rec["adapter_dir"]
                if rec.at("second_adapter", "adapter_dir"):
                    out[name + "_b"] = rec.at("second_adapter", "adapter_dir")
        if not out:
            where = ", ".join(str(records.path(f, stages.TRAIN)) for f in tasks.values()) or \
                str(records.path(run_dir, stages.TRAIN))
            raise ConfigError(f"ADAPTER_DIR is empty and no adapter_dir is recorded in {where}: run notebook 03 with "
                              "this RUN_DIR first, or set ADAPTER_DIR")
    if second_adapter_dir:
        out[next(iter(out)) + "_b"] = second_adapter_dir
    missing = [f"{n}: {p} has no adapter_config.json" for n, p in out.items()
               if not (Path(p) / "adapter_config.json").exists()]
    if missing:
        raise ConfigError([m + "; set ADAPTER_DIR / SECOND_ADAPTER_DIR to a saved adapter folder" for m in missing])
    return out


def _task_name(adapter_dir):
    return stages.ADAPTER_NAMES.get(identity.adapter_task(identity.read_adapter_meta(adapter_dir, missing_ok=True)),
                                    stages.ADAPTER_NAMES[stages.CLASSIFY])


@dataclass(frozen=True)
class TaskServing:
    """What 05 sends for one task: its adapters (served names), what they were trained with (ftplay_adapter.json
    of the first), the held-out tickets to send, and the answer cap."""
    task: str
    adapters: tuple          # served names of this task's adapters
    labels: tuple
    system_prompt: str
    reply_format: str | None
    rows: tuple              # ({"text", "label"}, ...): held-out tickets of this task (never trained on)
    source: str              # the file the rows came from
    max_tokens: int

    def conversations(self, n=None):
        """The serving prompts (no answer) of the first `n` rows, built as training built them."""
        from . import formats

        rows = self.rows[:n] if n else self.rows
        if self.task == stages.REPLY:
            fmt = formats.get(self.reply_format or formats.HOUSE.name)
            return [prompts.reply_messages(r["text"], fmt, system_prompt=self.system_prompt) for r in rows]
        return [prompts.messages(r["text"], self.labels, system_prompt=self.system_prompt) for r in rows]


def task_serving(run_dir, adapters, n=12, max_tokens=None):
    """{task: TaskServing} for the served adapters, in their order: each adapter's task from its
    ftplay_adapter.json, the rows from that task's held-out split (`records.task_runs`), else the
    project's production samples of the task. `max_tokens` is {task: answer cap}."""
    tasks = records.task_runs(run_dir)
    by_task = {}
    for name, path in adapters.items():
        meta = identity.read_adapter_meta(path)
        by_task.setdefault(identity.adapter_task(meta), []).append((name, meta))
    out = {}
    for task, named in by_task.items():
        meta = named[0][1]
        rows, src = sample_rows(tasks.get(task, run_dir) if task in tasks else None, n, task)
        out[task] = TaskServing(task, tuple(n_ for n_, _ in named), tuple(meta.get("labels") or ()),
                                meta["system_prompt"], meta.get("reply_format"), tuple(rows), src,
                                (max_tokens or {}).get(task, 8))
    return out


SAMPLES = {stages.CLASSIFY: ROOT / "data" / "production_samples.csv",
           stages.REPLY: ROOT / "data" / "replies_production.csv"}


def sample_rows(run_dir, n=12, task=stages.CLASSIFY):
    """Tickets to send, [{"text", "label"}]: the first `n` of <run_dir>/data/heldout.jsonl (never
    trained on), else of the project's production samples of `task`; and the file they came from."""
    import csv

    held = Path(run_dir) / "data" / "heldout.jsonl" if run_dir else None
    if held is not None and held.exists():
        from . import dataload

        return [{"text": r["text"], "label": r["label"]} for r in dataload.load(held, "chat")[:n]], str(held)
    src = SAMPLES[task]
    with open(src, newline="", encoding="utf-8") as f:
        return [{"text": r["text"], "label": r.get("label", "")} for r in csv.DictReader(f)][:n], str(src)


def sample_texts(run_dir, n=12):
    """The texts of `sample_rows`, and the file they came from."""
    rows, src = sample_rows(run_dir, n)
    return [r["text"] for r in rows], src


def model_len_for(prompt_lengths, max_tokens, at_least=512, step=256):
    """--max-model-len for these prompts and answer caps: the longest prompt plus its task's cap, rounded up
    to `step`, at least `at_least` (a reply conversation's system prompt states the whole format)."""
    need = max([p + m for p, m in zip(prompt_lengths, max_tokens)], default=0)
    return max(at_least, -(-need // step) * step)


def record_fields(tasks):
    """05's record fields of what it served per task ({task: TaskServing}): each adapter's task, each task's
    adapters, prompts' source, answer cap, format and system prompt, and the first task's prompts' source."""
    return {"adapter_tasks": {name: task for task, t in tasks.items() for name in t.adapters},
            "tasks": {task: {"adapters": list(t.adapters), "prompts_source": t.source, "max_tokens": t.max_tokens,
                             "reply_format": t.reply_format, "system_prompt": t.system_prompt}
                      for task, t in tasks.items()},
            "prompts_source": next(iter(tasks.values())).source}
