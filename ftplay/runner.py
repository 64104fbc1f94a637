"""The main job: execute the playbook's notebooks with papermill into a fresh run directory.

What runs is run_plan's; run_checks refuses a bad run before anything runs; run_summary writes summary.json."""
import html
import logging
import os
import time
from pathlib import Path

from . import kernels, records, report_page, rundir, stages
from .errors import ConfigError
from .params import check_ranges, check_secrets, check_types, declared_parameters
from .progress import Watch, cell_title
from .run_checks import check_adapters, check_inputs, check_order, check_out_dir, check_same_run
from .run_plan import ROOT, Group, load_params, plan_groups
from .run_summary import summarise

log = logging.getLogger(__name__)
CURRENT = {}  # the notebook executing now {stem, notebook, run_dir}: what a Ctrl-C message names


def _env(run_dir):
    cache = Path(os.environ.get("FTPLAY_CACHE", Path.home() / ".cache" / "ftplay"))
    for var, sub in (("MPLCONFIGDIR", "matplotlib"), ("IPYTHONDIR", "ipython"),
                     ("JUPYTER_RUNTIME_DIR", "jupyter-runtime")):
        os.environ.setdefault(var, str(cache / sub))
        Path(os.environ[var]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TQDM_DISABLE", "1")  # an executed notebook is a document: bars would stay at 0% in it
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' own ("Loading weights") read this one
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # and datasets' (TRL's "Truncating train dataset")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["FTPLAY_RUN_DIR"] = str(run_dir)


def run(params_path=None, only=None, out=None, run_root="runs", progress=print, params=None, per_notebook=None,
        force=False, per_task=None, resume=False):
    """Execute the notebooks; returns (run_dir, summary). Parameters come from the YAML at
    `params_path`, else from `params` / `per_notebook` / `per_task` (same shapes). Each task of the
    run (`plan_groups`) runs its notebooks into its own folder. Stops at the first failing notebook,
    keeping everything that ran before it, and records the failing cell in the summary.
    `force`: run into an `out` whose finished notebooks ran with other parameters (check_same_run).
    `resume`: run only the notebooks of the plan that have no record in `out` yet (a run stopped half-way
    goes on where it stopped, every task in its own folder)."""
    if params_path:
        params, per, per_task = load_params(params_path, with_tasks=True)
    else:
        params, per, per_task = params or {}, per_notebook or {}, per_task or {}
    groups = plan_groups(only, params, per, per_task)
    every = [t for g in groups for t in g.todo]
    check_parameters(every)
    check_inputs(every)
    # --out is the caller's path, resolved once here: the notebooks run with the repository root as
    # their working directory, so a relative RUN_DIR would land in another folder than the summary
    out = check_out_dir(out) if out else None
    if resume:
        groups, done = _still_to_run(groups, out)
        if not any(g.todo for g in groups):
            raise ConfigError(f"nothing to resume: every notebook of this plan has its record in {out} (drop --resume "
                              "to run them again)", "cannot resume")
    for sub, todo in _by_folder(groups).items():
        where = out / sub if out and sub else out
        check_order(todo, where)
        check_adapters(todo, where)
        check_same_run(todo, where, force)
    run_dir = out or rundir.new_run_dir(ROOT / run_root)
    run_dir.mkdir(parents=True, exist_ok=True)
    CURRENT.update(top=run_dir, params=params_path, only=only)
    with _locked(run_dir):
        return _execute(groups, run_dir, progress, done if resume else None)


def _still_to_run(groups, out):
    """(groups without the notebooks whose record is already in their folder, {step name: its status in the
    run's summary.json}) for --resume. A notebook stopped half-way has no record (set_aside): it runs again."""
    if out is None:
        raise ConfigError("--resume needs --out: the run directory to go on in", "cannot resume")
    earlier = (rundir.read_json(out / "summary.json", {}) or {}).get("notebooks") or {}
    kept, done = [], {}
    for g in groups:
        where = out / g.sub if g.sub else out
        todo = []
        for t in g.todo:
            if records.path(where, t[0]).exists():
                name = step_name(g.sub, t[0])
                done[name] = earlier.get(name) if (earlier.get(name) or {}).get("status") == "ok" else \
                    {"status": "ok", "seconds": 0.0}
            else:
                todo.append(t)
        kept.append(Group((g.task, g.sub, todo)))
    return [g for g in kept if g.todo], done


def check_parameters(todo):
    """Secrets, types and ranges of every notebook's parameters, all problems in one error (a wrong type does not
    hide a range problem of another parameter: each check looks only at values of the right type)."""
    problems = []
    for check in (check_secrets, check_types, check_ranges):
        try:
            check(todo)
        except ConfigError as e:
            problems += e.problems
    if problems:
        raise ConfigError(problems, "cannot run the playbook")


def set_aside(where, stem):
    """Move the record `stem` wrote before to <stem>.json.previous while the notebook runs again: a run stopped
    half-way (an error, Ctrl-C, SIGTERM) then leaves no old record that reads as this run's (the report would say
    "Served: done" from the last run's 05), and nothing is lost. Removed once the notebook writes a new one."""
    old = records.path(where, stem)
    if not old.exists():
        return None
    aside = old.with_name(old.name + ".previous")
    os.replace(old, aside)
    return aside


def _by_folder(groups):
    """{folder relative to the run directory: the todo of every group that writes there}."""
    out = {}
    for g in groups:
        out.setdefault(g.sub, []).extend(g.todo)
    return out


def step_name(sub, stem):
    """How the summary names a notebook of a run: its stem, or <task folder>/<stem> for a further task."""
    return f"{sub}/{stem}" if sub else stem


def _execute(groups, run_dir, progress, done=None):
    """Run the groups' notebooks; `done`: {step name: status} of notebooks an earlier run finished (--resume),
    kept in the summary ahead of this run's."""
    import papermill as pm

    if groups and not isinstance(groups[0], Group):   # a plain todo list: one task into the run directory
        groups = [Group((stages.CLASSIFY, "", groups))]
    _env(run_dir)
    kernels.remove_stale_connection_files()
    status, passed = dict(done or {}), set()
    previous = kernels.catch_ctrl_c()
    try:
        for group in groups:
            where = run_dir / group.sub if group.sub else run_dir
            (where / "notebooks").mkdir(parents=True, exist_ok=True)
            for stem, path, values in group.todo:
                name = step_name(group.sub, stem)
                values = {**values, "RUN_DIR": str(where)} if "RUN_DIR" in declared_parameters(path) else values
                for secret in [k for k, v in values.items() if rundir.is_secret(k) and isinstance(v, str) and v]:
                    # a secret reaches the kernel through its environment (rundir.secret reads it there): as a
                    # papermill parameter it would be written into the executed notebook and summary.json
                    os.environ[f"FTPLAY_{secret}"] = values.pop(secret)
                    passed.add(f"FTPLAY_{secret}")
                out_nb = where / "notebooks" / path.name
                CURRENT.update(stem=name, notebook=out_nb, run_dir=where)
                progress(f"[ftplay] {name} ...")
                t0 = time.time()
                aside = set_aside(where, stem)
                try:
                    with Watch(name, where, progress) as watch:
                        pm.execute_notebook(str(path), str(out_nb), parameters=values, cwd=str(ROOT),
                                            kernel_name="python3", progress_bar=False, log_output=False,
                                            kernel_manager_class=kernels.manager(), engine_name=watch.engine())
                    status[name] = {"status": "ok", "seconds": round(time.time() - t0, 1)}
                    if aside is not None:   # the notebook wrote its record anew
                        aside.unlink(missing_ok=True)
                except KeyboardInterrupt:   # Ctrl-C or SIGTERM: the summary says where it stopped, then cli's line
                    status[name] = {"status": "stopped", "seconds": round(time.time() - t0, 1), "cell": None,
                                    "error": f"stopped by {(kernels.STOPPED_BY or ['Ctrl-C'])[0]}"}
                    _write_summary(run_dir, status)
                    raise
                except pm.PapermillExecutionError as e:
                    status[name] = {"status": "failed", "seconds": round(time.time() - t0, 1),
                                    "cell": e.exec_count, "error": f"{e.ename}: {e.evalue}"[:2000]}
                except Exception as e:  # kernel died, bad notebook...
                    status[name] = {"status": "failed", "seconds": round(time.time() - t0, 1),
                                    "cell": None, "error": f"{type(e).__name__}: {e}"[:2000]}
                _html(out_nb, where / "html" / f"{stem}.html")
                progress(f"[ftplay] {name}: {status[name]['status']} in {status[name]['seconds']} s")
                if status[name]["status"] != "ok":
                    break
            if any(v["status"] != "ok" for v in status.values()):
                break
    finally:  # a secret is this run's only: the next run in this process must not inherit it
        for var in passed:
            os.environ.pop(var, None)
        kernels.restore(previous)
    CURRENT.clear()
    return run_dir, _write_summary(run_dir, status)


def _write_summary(run_dir, status):
    summary = summarise(run_dir, status)
    rundir.write_json(run_dir / "summary.json", summary)
    report_page.write_html(run_dir, summary["ship_report"])
    return summary


class _locked:
    """Hold <run_dir>/.ftplay.lock (this process's pid) while a run writes there; a second run into
    the same directory is refused, naming the holder. A lock whose process is gone is taken over."""

    def __init__(self, run_dir):
        self.path = Path(run_dir) / ".ftplay.lock"

    def __enter__(self):
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = self.path.read_text().strip() if self.path.exists() else ""
            if holder.isdigit() and rundir.pid_alive(int(holder)):
                raise ConfigError(f"{self.path.parent} is being written by another ftplay run (pid {holder}): wait "
                                  "for it to finish, or pass another --out") from None
            self.path.unlink(missing_ok=True)  # a stale lock: its run was killed
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


NBCONVERT_ALT = "No description has been provided for this image"


def _html(nb_path, html_path):
    if not Path(nb_path).exists():
        return
    try:
        import nbformat
        from nbconvert import HTMLExporter

        nb = nbformat.read(str(nb_path), as_version=4)
        # nbconvert's lab template writes no alt text: it fills in a placeholder and warns "Alternative text is
        # missing on N image(s)" on the runner's stderr. Each plot is named here by the heading it sits under
        alts = [f"plot: {html.escape(cell_title(nb, i, code_first=True), quote=True)}"
                for i, cell in enumerate(nb.cells)
                for out in cell.get("outputs", []) for m in out.get("data", {}) if m in ("image/png", "image/jpeg")]
        exporter = HTMLExporter()
        exporter.log = logging.getLogger("ftplay.nbconvert")
        exporter.log.addFilter(lambda r: "Alternative text is missing" not in r.getMessage())
        body, _ = exporter.from_notebook_node(nb)
        parts = body.split(NBCONVERT_ALT)
        body = parts[0] + "".join(alt + rest for alt, rest in zip(alts + [NBCONVERT_ALT] * len(parts), parts[1:]))
        rundir.write_text(html_path, body)
    except Exception as e:  # an HTML rendering problem must not hide the run's result
        log.warning("could not render %s as HTML: %s", nb_path, e)
