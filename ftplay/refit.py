"""Re-fine-tune cadence: re-run a playbook on a new base, compare old and new.

A LoRA adapter only fits the base it was trained on (`identity.check_base` detects a changed one).
`refit` re-runs an earlier run's notebooks with the parameters its executed notebooks record, MODEL
replaced, and `compare` puts the two runs side by side.
"""
from dataclasses import asdict
from pathlib import Path

from . import identity, records, report, run_plan, rundir, runner, stages
from .errors import FtplayError, check
from .params import declared_parameters


# ---------------------------------------------------------------- re-run on a new base
def refit_params(recorded, model):
    """({stem: parameters}, {stem: [dropped names]}) for the re-run: each notebook's recorded values
    that it still declares, MODEL replaced, RUN_DIR left to the runner, adapter folders emptied so that
    04 and 05 use the adapter trained on the new base."""
    current = run_plan.notebooks()
    per, dropped = {}, {}
    for stem, values in recorded.items():
        declared = declared_parameters(current[stem]) if stem in current else {}
        per[stem] = {k: v for k, v in values.items() if k in declared and k != "RUN_DIR"}
        gone = sorted(k for k in values if k not in declared)
        if gone:
            dropped[stem] = gone
        if "MODEL" in declared:
            per[stem]["MODEL"] = model
        for k in ("ADAPTER_DIR", "SECOND_ADAPTER_DIR"):
            if k in per[stem]:
                per[stem][k] = ""
    return {s: v for s, v in per.items() if s in current}, dropped


REQUIRED = (stages.CURATE, stages.TRAIN, stages.EVALUATE)   # what the comparison stands on, when the old run ran it


def old_record_problems(old, recorded):
    """Problems with the old run's records, found before anything trains: a record of a stage in
    REQUIRED that the run executed is missing, or any record present is unreadable; each names the file
    and the command that rebuilds it."""
    problems = []
    for stem in stages.STEMS:
        try:
            records.read(old, stem, missing_ok=not (stem in REQUIRED and stem in recorded))
        except FtplayError as e:
            problems.append(f"--from {old}: {e.problems[0]}; refit compares the new run against it, so rebuild it "
                            f"first (ftplay run --only {stem[:2]} --out {old}) or pass another run")
    return problems


def refit(old_run, model, out=None, run_root="runs", progress=print):
    """Re-run `old_run`'s notebooks on base `model` with its recorded parameters; returns
    (new run directory, summary, comparison). The comparison is also written to refit_compare.json."""
    old = Path(old_run)
    if out:   # before anything is read or built: a new base may take minutes to build
        from .run_checks import check_out_dir

        check_out_dir(out)
    recorded = run_plan.recorded_params(old)
    check([] if recorded else [f"--from {old}: no executed notebooks under {old / 'notebooks'}; pass a run "
                               "directory written by `ftplay run`"])
    check([] if stages.TRAIN in recorded else [f"--from {old}: that run did not execute {stages.TRAIN}, so "
                                                "there is no fine-tune to redo; pass a run that trained"])
    check(old_record_problems(old, recorded))
    base = identity.check_base(old, model)
    progress(f"[ftplay] refit: {old} trained on {base.trained_on}, re-fine-tuning on {base.base}"
             + (" (the same base: a reproducibility run)" if base.changed is False else ""))
    per, dropped = refit_params(recorded, model)
    tasks = records.task_runs(old)   # every task the old run fine-tuned, each with the parameters it ran with
    per_task = {task: {"notebooks": refit_params(run_plan.recorded_params(where), model)[0]}
                for task, where in list(tasks.items())[1:]}
    params = {"TASKS": list(tasks)} if tasks else {}
    run_dir, summary = runner.run(only=list(per), out=out, run_root=run_root, params=params, per_notebook=per,
                                  per_task=per_task, progress=progress)
    cmp = compare(old, run_dir) | {"base_check": asdict(base), "dropped_params": dropped}
    rundir.write_json(Path(run_dir) / "refit_compare.json", cmp)
    return run_dir, summary, cmp


# ---------------------------------------------------------------- side by side
# (metric, whether a difference new - old means something)
METRICS = [("base model", False), ("data fingerprints (train/held-out/production)", False),
           ("held-out n", False), ("held-out base macro-F1", True), ("held-out fine-tuned macro-F1", True),
           ("held-out fine-tuned - base", True), ("held-out McNemar p", False),
           ("production n", False), ("production base macro-F1", True), ("production fine-tuned macro-F1", True),
           ("gate", False), ("training steps", True), ("training seconds", True), ("train loss", True),
           ("eval loss", True), ("cost: best option", False), ("cost: $/month", True),
           ("cost: savings $/month", True), ("cost: training $", True), ("ship (report)", False)]


def figures(run_dir):
    """{metric: (value, 95% CI or None)} of one run, read from its JSON records (None where absent)."""
    r = {s: records.read_or_empty(run_dir, s) for s in (stages.CURATE, stages.TRAIN, stages.EVALUATE, stages.COSTS)}
    t, e, c = r[stages.TRAIN], r[stages.EVALUATE], r[stages.COSTS]
    b = t.at("base_model", default={})
    fp = r[stages.CURATE].at("fingerprints", default={})
    out = {"base model": (f"{b.get('requested')}@{b.get('revision')}" if b else None, None),
           "data fingerprints (train/held-out/production)":
               ("/".join(str(fp.get(k))[:8] for k in ("train", "heldout", "production")) if fp else None, None)}
    for split, label in (("heldout", "held-out"), ("production", "production")):
        out[f"{label} n"] = (e.at(split, "n"), None)
        for system, name in (("base", "base"), ("finetuned", "fine-tuned")):
            m = e.at(split, "systems", system, default={})
            out[f"{label} {name} macro-F1"] = (m.get("macro_f1"), m.get("macro_f1_ci"))
    p = e.at("heldout", "paired", "finetuned_vs_base", default={})
    out["held-out fine-tuned - base"] = (p.get("macro_f1_diff"), p.get("macro_f1_diff_ci"))
    out["held-out McNemar p"] = (p.get("mcnemar_p"), None)
    gate = e.get("decision")
    out["gate"] = (None if gate is None else "ship" if gate.get("ship") else "stop", None)
    for key, metric in (("steps", "training steps"), ("seconds", "training seconds"), ("train_loss", "train loss"),
                        ("eval_loss", "eval loss")):
        out[metric] = (t.get(key), None)
    v = c.at("verdict", default={})
    best = next((o for o in c.get("options") or [] if o.get("name") == v.get("best_option")), {})
    out["cost: best option"] = (v.get("best_option"), None)
    out["cost: $/month"] = (best.get("monthly_cost"), None)
    out["cost: savings $/month"] = (best.get("savings_vs_hosted"), None)
    out["cost: training $"] = (best.get("training_cost"), None)
    out["ship (report)"] = ("yes" if report.build(run_dir)["ship"]["ship"] else "no", None)
    return out


def compare(old_run, new_run):
    """The two runs side by side: {"old_run", "new_run", "same_data", "rows": [{metric, old, new,
    old_ci, new_ci, delta}]}; delta is new - old where both are numbers and the difference means something."""
    old, new = figures(old_run), figures(new_run)
    rows = []
    for metric, diff in METRICS:
        (a, a_ci), (b, b_ci) = old[metric], new[metric]
        num = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        rows.append({"metric": metric, "old": a, "new": b, "old_ci": a_ci, "new_ci": b_ci,
                     "delta": b - a if diff and num else None})
    fp = "data fingerprints (train/held-out/production)"
    same = None if old[fp][0] is None or new[fp][0] is None else old[fp][0] == new[fp][0]
    return {"old_run": str(old_run), "new_run": str(new_run), "same_data": same, "rows": rows}


def format_compare(cmp):
    """The side-by-side table as text."""
    def cell(v, ci):
        if v is None:
            return "-"
        if isinstance(v, float):
            return (f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.2g}" if 0 < abs(v) < 1e-3
                    else f"{v:,.4g}")
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

    w = max(26, max(len(cell(r["old"], r["old_ci"])) for r in cmp["rows"]) + 2)
    lines = [f"old: {cmp['old_run']}", f"new: {cmp['new_run']}", "", f"{'':<46}{'old':<{w}}{'new':<{w}}change"]
    for r in cmp["rows"]:
        d = r["delta"]
        lines.append(f"{r['metric']:<46}{cell(r['old'], r['old_ci']):<{w}}{cell(r['new'], r['new_ci']):<{w}}"
                     + ("" if d is None else f"{d:+,}" if isinstance(d, int) else f"{d:+.3f}" if abs(d) < 10
                        else f"{d:+,.1f}"))
    same = cmp.get("same_data")
    lines.append("same data: " + ("yes" if same else "unknown (02 not recorded)" if same is None else
                                  "NO: the curated splits differ, so the columns are not comparable row by row"))
    b = cmp.get("base_check")
    if b:
        lines.append(f"base: {b['trained_on']} -> {b['base']}: " + {True: "changed, re-fine-tuned", False: "unchanged",
                                                                   None: "unknown (no revision pinned)"}[b["changed"]])
    for stem, names in (cmp.get("dropped_params") or {}).items():
        lines.append(f"not passed to {stem} (no longer declared): {', '.join(names)}")
    return "\n".join(lines)
