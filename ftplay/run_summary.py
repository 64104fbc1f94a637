"""A run's summary: summary.json from the notebooks' own records, and its printed form."""
from pathlib import Path

from . import records, report, report_page, stages
from .run_plan import recorded_params

# The lines a default playbook's executed notebooks show, all tasks together, at most (issue 28: one reader reads
# them all; benchmarks/playbook_time.py counts them)
OUTPUT_LINES_BUDGET = 900


def output_lines(nb_path):
    """Lines an executed notebook shows: stream lines, result text lines, one per image."""
    import nbformat

    nb = nbformat.read(str(nb_path), as_version=4)
    n = 0
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                n += len(o.text.splitlines())
            elif o.output_type in ("execute_result", "display_data"):
                if any(m.startswith("image/") for m in o.data):
                    n += 1
                else:
                    n += len(o.data.get("text/plain", "").splitlines())
            elif o.output_type == "error":
                n += 1
    return n


def summarise(run_dir, status):
    """summary.json from the notebooks' own JSON records (nothing recomputed here)."""
    run_dir = Path(run_dir)
    ev, cost, serve, train = (records.read_or_empty(run_dir, s) for s in
                              (stages.EVALUATE, stages.COSTS, stages.SERVE, stages.TRAIN))
    summary = {"run_dir": str(run_dir), "notebooks": status, "params": recorded_params(run_dir, lenient=True)}
    for split in ("heldout", "production"):
        summary[split] = {"n": ev.at(split, "n")}
        for system in ("base", "finetuned"):
            m = ev.at(split, "systems", system, default={})
            summary[split][system] = {k: m.get(k) for k in ("accuracy", "macro_f1", "macro_f1_ci")}
    summary["training"] = {k: train.get(k) for k in ("engine", "load_in_4bit", "seconds", "tokens_per_s",
                                                     "train_loss", "eval_loss")}
    tpl = train.get("template") or {}
    summary["model"] = {"base": (train.get("base_model") or {}).get("requested"), "family": train.get("family"),
                        "serving_template": tpl.get("serving_template"), "training_mask": tpl.get("mask_method"),
                        "training_template_hash": tpl.get("training_template_hash"),
                        "prefix_preserving": tpl.get("prefix_preserving")}
    summary["serving"] = {k: serve.get(k) for k in ("adapters_served", "load_test")}
    summary["label_warnings"] = records.read_or_empty(run_dir, stages.CURATE).get("label_warnings") or []
    summary["cost"] = cost.get("verdict")
    summary["tasks"] = {task: _task_summary(run_dir, where) for task, where in records.task_runs(run_dir).items()}
    rep = report.build(run_dir, status)
    summary["ship_report"] = rep
    summary["decision"] = rep["ship"]  # the report's verdict: every checklist item done
    return summary


# what the summary shows of each task's base and fine-tuned scores (the first of these each system has)
TASK_METRICS = ("accuracy", "macro_f1", "macro_f1_ci", "valid_rate", "valid_ci", "field_accuracy",
                "field_accuracy_ci", "chrf", "chrf_ci")


def _task_summary(run_dir, where):
    """One task's place and scores: {dir, heldout: {n, base, finetuned}, production: {...}} from its 04 record."""
    ev = records.read_or_empty(where, stages.EVALUATE)
    out = {"dir": str(Path(where).relative_to(run_dir)) if Path(where) != Path(run_dir) else ".",
           "adapter": records.read_or_empty(where, stages.TRAIN).get("adapter_dir")}
    for split in ("heldout", "production"):
        out[split] = {"n": ev.at(split, "n")}
        for system in ("base", "finetuned"):
            m = ev.at(split, "systems", system, default={})
            out[split][system] = {k: m[k] for k in TASK_METRICS if k in m}
    return out


def _task_line(task, split, s):
    b, f = s.get("base") or {}, s.get("finetuned") or {}
    keys = ("accuracy", "macro_f1") if task == stages.CLASSIFY else ("valid_rate", "field_accuracy", "chrf")
    names = {"accuracy": "acc", "macro_f1": "macro-F1", "valid_rate": "valid", "field_accuracy": "fields",
             "chrf": "chrF"}
    def show(m):
        return " ".join(f"{names[k]} {_f(m.get(k), '.1f' if k == 'chrf' else '.3f')}" for k in keys if k in b or k in f)

    return f"{task:<9} {split:<10} n={s['n']:<4} base {show(b)} | fine-tuned {show(f)}"


def format_summary(summary):
    """The printed summary: each notebook's time, base vs fine-tuned, the cost verdict, ship or not."""
    lines = ["", f"Run: {summary['run_dir']}", "", f"{'notebook':<30} status    seconds  budget"]
    for stem, v in summary["notebooks"].items():
        extra = f"  cell {v.get('cell')}: {v.get('error', '')[:120]}" if v["status"] != "ok" else ""
        budget = stages.budget(stem)
        over = " over budget" if budget and v["status"] == "ok" and v["seconds"] > budget else ""
        lines.append(f"{stem:<30} {v['status']:<9} {v['seconds']:>7} {budget or '-':>7}{over}{extra}")
    ok = [v["seconds"] for v in summary["notebooks"].values()]
    lines.append(f"{'total':<30} {'':<9} {round(sum(ok), 1):>7} {stages.BUDGET_TOTAL_S:>7}  (budgets: the default "
                 "playbook on 2 CPU cores)")
    lines.append("")
    for task, t in (summary.get("tasks") or {}).items():
        for split in ("heldout", "production"):
            if (t.get(split) or {}).get("n"):
                lines.append(_task_line(task, split, t[split]))
    if summary.get("label_warnings"):
        from .data import format_label_warnings  # 02's wording of them

        lines.append(format_label_warnings(summary["label_warnings"]))
    c = summary.get("cost") or {}
    if c:
        lines.append(f"cost: {c.get('headline', '')}")
    lines += ["", report_page.format_text(summary["ship_report"])]
    return "\n".join(lines)


def _f(x, fmt=".3f"):
    return format(x, fmt) if isinstance(x, (int, float)) else "  -  "
