"""The main job: execute the playbook's notebooks with papermill into a fresh run directory."""
import html
import logging
import os
import signal
import threading
import time
from pathlib import Path

from . import identity, kernels, records, report, rundir, stages
from .errors import ConfigError, FtplayError
from .params import RUN_IDENTITY, check_ranges, check_types, declared_parameters, literal
from .progress import Watch, cell_title

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
CURRENT = {}  # the notebook executing now {stem, notebook, run_dir}: what a Ctrl-C message names


def notebooks():
    """{stem: path} of the playbook's notebooks, in execution order."""
    found = {p.stem: p for p in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))}
    return _in_order(found)


def _in_order(by_stem):
    """`by_stem` in the playbook's run order (stages.ORDER), other stems after."""
    return {s: by_stem[s] for s in stages.ORDER if s in by_stem} | {s: v for s, v in by_stem.items()
                                                                    if s not in stages.ORDER}


def load_params(path, with_tasks=False):
    """Read a params YAML: flat `NAME: value` for every notebook that declares NAME, plus an
    optional `notebooks: {stem: {NAME: value}}` for one notebook only, an optional `TASKS: [...]`
    (the tasks to run, see `tasks_of`) and `tasks: {task: {NAME: value}}` for one task only
    (returned third when `with_tasks`)."""
    import yaml

    if path is None:
        return ({}, {}, {}) if with_tasks else ({}, {})
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"--params {path}: file not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"--params {path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--params {path}: expected a mapping of NAME: value")
    per = data.pop("notebooks", {}) or {}
    per_task = data.pop("tasks", {}) or {}
    if not isinstance(per_task, dict):
        raise ConfigError(f"--params {path}: tasks must map a task name to NAME: value pairs")
    return (data, per, per_task) if with_tasks else (data, per)


# The reply task's own data, passed to its notebooks unless the params file's `tasks: {reply: {...}}` says
# otherwise (the classification task's are the notebooks' own defaults).
TASK_PARAMS = {stages.CLASSIFY: {},
               stages.REPLY: {"TRAIN_PATH": "data/replies_raw.csv", "PRODUCTION_PATH": "data/replies_production.csv",
                              "OUTPUT_FIELD": "reply", "REPLY_FORMAT": "house", "REASON": "format_or_style",
                              # 01 and 04 score a seeded 100 of the 228 held-out replies (production: all 200): the
                              # base writes up to 102 tokens per reply for three prompts, 175 s for all 228 here
                              "MAX_ROWS": 100,
                              "DEMO_QUANTIZATION": False}}   # 03 measures 4-bit once, on the triage adapter
# What defines one task's data: given flat in a params file they are the run's first task's (a run on your own
# data is one task unless TASKS names more); another task takes them from TASK_PARAMS and `tasks:`.
TASK_DATA = ("TASK", "TRAIN_PATH", "HELDOUT_PATH", "PRODUCTION_PATH", "FORMAT", "TEXT_FIELD", "LABEL_FIELD",
             "OUTPUT_FIELD", "REPLY_FORMAT", "SYSTEM_PROMPT", "PII_ACCEPTED")


class Group(tuple):
    """One task's notebooks run into one folder: (task, folder relative to the run directory, todo)."""
    task = property(lambda self: self[0])
    sub = property(lambda self: self[1])
    todo = property(lambda self: self[2])


def tasks_of(params):
    """The tasks a run covers: the params' TASKS list; else the one task of a run on given data (a TASK or
    any data parameter set flat); else stages.DEFAULT_TASKS (the default playbook: both tasks)."""
    given = params.get("TASKS")
    if given is not None:
        given = [given] if isinstance(given, str) else list(given)
        bad = [t for t in given if t not in stages.TASKS]
        if bad or not given or len(set(given)) != len(given):
            raise ConfigError(f"TASKS={given!r}: name each task once, from {', '.join(stages.TASKS)}",
                              "cannot run the playbook")
        if "TASK" in params and params["TASK"] != given[0]:
            raise ConfigError(f"TASK={params['TASK']!r} but TASKS starts with {given[0]!r}: the flat data parameters "
                              "are the first task's; drop TASK or put it first in TASKS", "cannot run the playbook")
        return given
    if params.get("TASK") is not None and params["TASK"] not in stages.TASKS:
        raise ConfigError(f"TASK={params['TASK']!r} is not a task; choose from {', '.join(stages.TASKS)}",
                          "cannot run the playbook")
    if any(k in params for k in TASK_DATA):
        return [params.get("TASK", stages.CLASSIFY)]
    return list(stages.DEFAULT_TASKS)


def plan_groups(only=None, params=None, per_notebook=None, per_task=None):
    """[Group] to execute in order: the first task's notebooks (01, 00, 02, 03, 04) into the run directory,
    each further task's 01-04 into <run dir>/<task>, then 06 and 05 (once, over every task) into the run
    directory. `per_task`: {task: {NAME: value, notebooks: {stem: {NAME: value}}}} from the params file's
    `tasks:` section (its `notebooks:` for that task's notebook only)."""
    params, per_task = dict(params or {}), dict(per_task or {})
    tasks = tasks_of(params)
    params.pop("TASKS", None)
    bad = [t for t in per_task if t not in stages.TASKS]
    if bad:
        raise ConfigError(f"tasks.{bad[0]}: no such task; tasks: {', '.join(stages.TASKS)}", "cannot run the playbook")
    groups, first = [], tasks[0]
    shared = {k: v for k, v in params.items() if k not in TASK_DATA}
    for i, task in enumerate(tasks):
        own = dict(per_task.get(task) or {})
        per_nb = {**per_notebook} if per_notebook else {}
        for stem, values in (own.pop("notebooks", None) or {}).items():   # this task's notebook only
            per_nb[stem] = {**(per_nb.get(stem) or {}), **values}
        values = {**TASK_PARAMS[task], **(params if i == 0 else shared), **own, "TASK": task}
        todo = plan(only, values, per_nb, lenient=("TASK",) + tuple(TASK_PARAMS[task]))
        mine = [t for t in todo if t[0] in stages.PER_TASK or (i == 0 and t[0] not in (stages.SERVE, stages.COSTS))]
        if mine:
            groups.append(Group((task, "" if i == 0 else str(stages.task_dir("", task, first)), mine)))
    rest = [t for t in plan(only, {**params, "TASK": first}, per_notebook, lenient=("TASK",))
            if t[0] in (stages.SERVE, stages.COSTS)]
    if rest:
        groups.append(Group((first, "", rest)))
    return groups


def plan(only=None, params=None, per_notebook=None, lenient=()):
    """[(stem, path, parameters)] to execute; unknown names and notebooks are errors up front. `lenient`:
    names passed only to the notebooks that declare them, without an error where none does."""
    nbs = notebooks()
    params, per_notebook = params or {}, per_notebook or {}
    problems = []
    stems = list(nbs)
    if only:
        wanted = [o.strip() for o in only]
        stems = []
        for w in wanted:
            match = [s for s in nbs if s == w or s.startswith(w + "_")]
            if not match:
                problems.append(f"--only {w}: no such notebook; choose from {', '.join(s[:2] for s in nbs)}")
            stems += match
        stems = [s for s in nbs if s in stems]
    declared = {s: declared_parameters(p) for s, p in nbs.items()}
    every = set().union(*[set(d) for d in declared.values()]) if declared else set()
    for name in params:
        if name not in every and name not in lenient:
            problems.append(f"parameter {name} is declared by no notebook; known: {', '.join(sorted(every))}")
    for stem, values in per_notebook.items():
        if stem not in nbs:
            problems.append(f"notebooks.{stem}: no such notebook")
            continue
        for name in values or {}:
            if name not in declared[stem]:
                problems.append(f"notebooks.{stem}.{name}: {stem} has no parameter {name}")
    if problems:
        raise ConfigError(problems, "cannot run the playbook")
    out = []
    for s in stems:
        mine = {k: v for k, v in params.items() if k in declared[s]}
        mine.update(per_notebook.get(s) or {})
        out.append((s, nbs[s], mine))
    return out


def check_inputs(todo):
    """Catch bad parameters before any long work: a MODEL that cannot be found, a data file that
    is missing or unreadable, training data with a single label. Uses each notebook's effective
    values (its defaults, overridden by the params file)."""
    from . import dataload, models

    problems, seen = [], set()
    for stem, path, values in todo:
        eff = _effective(path, values)
        for name, value in eff.items():
            if (name, str(value)) in seen:
                continue
            seen.add((name, str(value)))
            if name == "MODEL":
                try:
                    models.resolve(value)
                except ConfigError as e:
                    problems += [f"{stem}: {p}" for p in e.problems]
            elif name.endswith("_PATH") and value and _existing(value) is None:
                problems.append(f"{stem}: {name}={value!r} does not exist; set {name} to an existing file "
                                "(relative paths are relative to the repository root)")
        train = eff.get("TRAIN_PATH")
        p = _existing(train)
        key = ("load", str(p), eff.get("TASK"), eff.get("OUTPUT_FIELD"))
        if p is not None and key not in seen:
            seen.add(key)
            try:
                reply = eff.get("TASK") == stages.REPLY
                rows = dataload.load(p, eff.get("FORMAT", "auto"), eff.get("TEXT_FIELD", "text"),
                                     eff.get("LABEL_FIELD", "label"), output_field=eff.get("OUTPUT_FIELD") if reply else None)
                labels = {r["label"] for r in rows}
                if len(labels) < 2 and not reply:   # a reply task may have no categories (one group)
                    problems.append(f"TRAIN_PATH={train!r} has {len(labels)} label(s) "
                                    f"{sorted(labels)}; a classifier needs at least 2: point TRAIN_PATH at the full export")
            except FtplayError as e:
                problems += e.problems[:20]
    if problems:
        raise ConfigError(problems, "cannot run the playbook")


def check_order(todo, run_dir=None):
    """A notebook run without what it cannot do without (03 without 02's split, 04 and 06 without
    03's adapter unless ADAPTER_DIR names one) is refused up front, naming what to run first,
    instead of failing inside the notebook with a missing file."""
    problems, planned = _unreadable_records(todo, run_dir), []
    for stem, path, values in todo:
        adapter_given = bool(_effective(path, values).get("ADAPTER_DIR"))
        for need in stages.STAGES[stem].needs if stem in stages.STAGES else ():
            if need in planned or (need == stages.TRAIN and adapter_given):
                continue
            if run_dir is None or not records.path(run_dir, need).exists():
                where = f"{run_dir} has no {stages.record_name(need)}" if run_dir else "a fresh run directory"
                problems.append(f"{stem} needs {need}'s output and {where}: run {need[:2]} first "
                                f"(--only {need[:2]},{stem[:2]}{' --out ' + str(run_dir) if run_dir else ''})"
                                + (" or set ADAPTER_DIR" if need == stages.TRAIN else ""))
        planned.append(stem)
    if problems:
        raise ConfigError(sorted(set(problems), key=problems.index), "cannot run the playbook")


def _unreadable_records(todo, run_dir):
    """A record already in `run_dir` that this run does not rewrite must be readable: a notebook that reads
    it would stop inside, and the summary and report read them all at the end of the run."""
    rewritten = {stem for stem, _, _ in todo}
    problems = []
    for stage in stages.STEMS if run_dir else ():
        if stage in rewritten or not records.path(run_dir, stage).exists():
            continue
        try:
            records.read(run_dir, stage)
        except FtplayError as e:
            readers = [s for s in rewritten if stage in stages.STAGES.get(s, stages.Stage(s)).reads]
            who = f"{readers[0]} reads {stage}'s record" if readers else "the run's summary and report read every record"
            problems.append(f"{who}: {e.problems[0]} (--only {stage[:2]} --out {run_dir}), or delete it")
    return problems


def check_same_run(todo, run_dir, force=False):
    """A run into a directory whose finished notebooks ran with other parameters is refused (unless
    `force`), naming each parameter: the same notebook with another value of any parameter, or any
    notebook with another value of a parameter that defines the run's data and model (RUN_IDENTITY).
    Otherwise the records would describe two runs: summary.json naming one TRAIN_PATH, data/ holding
    another's rows. The same parameters (a rerun, --only to continue) pass."""
    if run_dir is None or force or not Path(run_dir, "notebooks").is_dir():
        return
    planned = {stem for stem, _, _ in todo}
    done = {s for s in stages.STEMS if records.path(run_dir, s).exists()}
    old = recorded_params(run_dir, stems=done, lenient=planned)
    problems = []
    for stem, path, values in todo:
        new = _effective(path, values)
        for old_stem, before in old.items():
            shared = new.keys() & before.keys() - {"RUN_DIR"}
            for name in sorted(shared if old_stem == stem else shared & set(RUN_IDENTITY)):
                if rundir.is_secret(name) or _same(new[name], before[name]):
                    continue
                problems.append(f"{name}={new[name]!r} for {stem}, but {old_stem} in {run_dir} ran with "
                                f"{name}={before[name]!r}")
    if problems:
        problems = sorted(set(problems), key=problems.index)
        problems.append(f"a run with other parameters goes into a new --out; to run into {run_dir} anyway, add "
                        "--force (the notebooks not run again keep the results of their old parameters)")
        raise ConfigError(problems, "this run would mix two runs' results in one directory")


def _same(a, b):
    """Parameter values equal as recorded (a JSON round trip turns tuples into lists)."""
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    return norm(a) == norm(b)


def check_adapters(todo, run_dir=None):
    """An adapter reused rather than trained by this run (ADAPTER_DIR, or the one 03 recorded in an
    existing run directory when 03 is not run again) must have been trained on MODEL: a changed base
    stops the run before anything runs, with the fix (see identity.check_base)."""
    trains = any(stem == stages.TRAIN for stem, _, _ in todo)
    reused = run_dir and not trains and records.path(run_dir, stages.TRAIN).exists()
    problems, seen = [], set()
    for stem, path, values in todo:
        eff = _effective(path, values)
        if "ADAPTER_DIR" not in eff:
            continue
        if eff["ADAPTER_DIR"]:
            source = _existing(eff["ADAPTER_DIR"])
            if source is None:
                problems.append(f"{stem}: ADAPTER_DIR={eff['ADAPTER_DIR']!r} does not exist; set it to an adapter "
                                "folder, or leave it empty to use the one 03 trains")
                continue
        elif reused:
            source = Path(run_dir)  # 03's record there pins the base of the adapter 04 and 06 will use
        else:
            continue
        key = (str(source), str(eff.get("MODEL")))
        if key in seen:
            continue
        seen.add(key)
        try:
            base = identity.check_base(source, eff.get("MODEL", "embedded"))
        except ConfigError as e:
            problems += [f"{stem}: {p}" for p in e.problems]
            continue
        if base.changed:
            problems.append(f"{stem}: {base.message}")
    if problems:
        raise ConfigError(problems, "cannot run the playbook")


def _effective(path, values):
    """A notebook's parameters as it will run: its declared defaults, overridden by `values`."""
    return {k: literal(v["default"]) for k, v in declared_parameters(path).items()} | values


def recorded_params(run_dir, stems=None, lenient=()):
    """{stem: {NAME: value}} each notebook in <run_dir>/notebooks/ ran with, in execution order: the
    defaults of its parameters cell as executed, overridden by what papermill injected (recorded in
    the notebook's metadata). Notebooks run by an earlier `ftplay run` into the same directory count.
    `stems`: only these; an unreadable executed notebook is an FtplayError naming it and what to run,
    or left out (with a warning) when its stem is in `lenient` (all: True)."""
    out = {}
    for p in sorted(Path(run_dir, "notebooks").glob("[0-9][0-9]_*.ipynb")):
        if stems is not None and p.stem not in stems:
            continue
        try:
            injected = _injected(p)
        except FtplayError:
            if lenient is True or p.stem in lenient:
                log.warning("%s is unreadable; its parameters are left out", p)
                continue
            raise
        out[p.stem] = rundir.redact(_effective(p, dict(injected)))
    return _in_order(out)


def _injected(path):
    """The parameters papermill injected into an executed notebook; FtplayError naming the file when
    it is not a notebook (a run killed while writing it leaves it truncated)."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
        return (nb.metadata.get("papermill") or {}).get("parameters") or {}
    except Exception as e:  # nbformat raises NotJSONError, ValidationError, ... on a damaged file
        stem = Path(path).stem
        raise FtplayError(f"{path} is not a readable notebook ({type(e).__name__}: {str(e)[:80]}); it is the executed "
                          f"copy of {stem}: run {stem[:2]} again into this directory (--only {stem[:2]} --out "
                          f"{Path(path).parent.parent}) or delete the file", title="a run's notebook is unreadable") from None


def _existing(value):
    """The path a *_PATH parameter names (absolute, or relative to the repository root), if it exists."""
    if not value:
        return None
    p = Path(str(value))
    p = p if p.is_absolute() else ROOT / p
    return p if p.exists() else None


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
        force=False, per_task=None):
    """Execute the notebooks; returns (run_dir, summary). Parameters come from the YAML at
    `params_path`, else from `params` / `per_notebook` / `per_task` (same shapes). Each task of the
    run (`plan_groups`) runs its notebooks into its own folder. Stops at the first failing notebook,
    keeping everything that ran before it, and records the failing cell in the summary.
    `force`: run into an `out` whose finished notebooks ran with other parameters (check_same_run)."""
    if params_path:
        params, per, per_task = load_params(params_path, with_tasks=True)
    else:
        params, per, per_task = params or {}, per_notebook or {}, per_task or {}
    groups = plan_groups(only, params, per, per_task)
    every = [t for g in groups for t in g.todo]
    check_types(every)
    check_ranges(every)
    check_inputs(every)
    # --out is the caller's path, resolved once here: the notebooks run with the repository root as
    # their working directory, so a relative RUN_DIR would land in another folder than the summary
    out = Path(out).expanduser().resolve() if out else None
    for sub, todo in _by_folder(groups).items():
        where = out / sub if out and sub else out
        check_order(todo, where)
        check_adapters(todo, where)
        check_same_run(todo, where, force)
    run_dir = out or rundir.new_run_dir(ROOT / run_root)
    run_dir.mkdir(parents=True, exist_ok=True)
    with _locked(run_dir):
        return _execute(groups, run_dir, progress)


def _by_folder(groups):
    """{folder relative to the run directory: the todo of every group that writes there}."""
    out = {}
    for g in groups:
        out.setdefault(g.sub, []).extend(g.todo)
    return out


def step_name(sub, stem):
    """How the summary names a notebook of a run: its stem, or <task folder>/<stem> for a further task."""
    return f"{sub}/{stem}" if sub else stem


def _execute(groups, run_dir, progress):
    import papermill as pm

    if groups and not isinstance(groups[0], Group):   # a plain todo list: one task into the run directory
        groups = [Group((stages.CLASSIFY, "", groups))]
    _env(run_dir)
    kernels.remove_stale_connection_files()
    status, passed = {}, set()
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
                try:
                    with Watch(name, where, progress) as watch:
                        pm.execute_notebook(str(path), str(out_nb), parameters=values, cwd=str(ROOT),
                                            kernel_name="python3", progress_bar=False, log_output=False,
                                            kernel_manager_class=kernels.manager(), engine_name=watch.engine())
                    status[name] = {"status": "ok", "seconds": round(time.time() - t0, 1)}
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
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    CURRENT.clear()
    summary = summarise(run_dir, status)
    rundir.write_json(run_dir / "summary.json", summary)
    report.write_html(run_dir, summary["ship_report"])
    return run_dir, summary


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
        alts = [f"plot: {html.escape(cell_title(nb, i, code_first=True), quote=True)}" for i, cell in enumerate(nb.cells)
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
    show = lambda m: " ".join(f"{names[k]} {_f(m.get(k), '.1f' if k == 'chrf' else '.3f')}"  # noqa: E731
                              for k in keys if k in b or k in f)
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
    lines += ["", report.format_text(summary["ship_report"])]
    return "\n".join(lines)


def _f(x, fmt=".3f"):
    return format(x, fmt) if isinstance(x, (int, float)) else "  -  "
