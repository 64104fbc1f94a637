"""What a run executes: the playbook's notebooks, the params file, the tasks and their folders, each
notebook's parameters (as planned, and as an executed notebook recorded them)."""
import logging
from pathlib import Path

from . import rundir, stages
from .errors import ConfigError, FtplayError
from .params import declared_parameters, literal

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"


def notebooks():
    """{stem: path} of the playbook's notebooks, in execution order."""
    found = {p.stem: p for p in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))}
    return _in_order(found)


def _in_order(by_stem):
    """`by_stem` in the playbook's run order (stages.ORDER), other stems after."""
    return {s: by_stem[s] for s in stages.ORDER if s in by_stem} | {s: v for s, v in by_stem.items()
                                                                    if s not in stages.ORDER}


PARAMS_MAX_BYTES = 1 << 20


def _strict_loader():
    """yaml.SafeLoader that refuses a key given twice in one mapping (EPOCHS: -1 then EPOCHS: 2 would silently
    train with the second) and anchors/aliases (a parameters file needs none, and a few nested aliases expand
    into megabytes), each with its line."""
    import yaml

    class Strict(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, "an alias (*name): write the value out instead, parameters files use no anchors", mark)
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"{key} is given twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}): "
                        "keep one", key_node.start_mark)
                seen[key] = key_node.start_mark.line
            return super().construct_mapping(node, deep)

    return Strict


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
    if not p.is_file():
        raise ConfigError(f"--params {path}: not a file (give the path of a YAML file of NAME: value)")
    if p.stat().st_size > PARAMS_MAX_BYTES:
        raise ConfigError(f"--params {path}: {p.stat().st_size:,} bytes; a parameters file is at most "
                          f"{PARAMS_MAX_BYTES:,} (is it the right file?)")
    try:
        data = yaml.load(p.read_bytes().decode("utf-8"), Loader=_strict_loader()) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"--params {path}: not UTF-8 text (give the path of a YAML file of NAME: value)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"--params {path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--params {path}: expected a mapping of NAME: value")
    per = data.pop("notebooks", {}) or {}
    per_task = data.pop("tasks", {}) or {}
    check_shape(per, per_task, f"--params {path}: ")
    return (data, per, per_task) if with_tasks else (data, per)


def check_shape(per_notebook, per_task, where=""):
    """`notebooks:` maps a notebook to NAME: value pairs, `tasks:` a task to NAME: value pairs (and its own
    `notebooks:`): every misshapen section named at once, with what it should look like."""
    problems = []

    def pairs(section, value, example):
        if not isinstance(value, dict):
            problems.append(f"{where}{section} is {type(value).__name__} {value!r:.60}; it must map names to values, "
                            f"e.g. {example}")
            return False
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            problems.append(f"{where}{section} has the key {bad[0]!r}, not a name; e.g. {example}")
        return True

    if pairs("notebooks", per_notebook, "notebooks: {03_train_qlora: {EPOCHS: 2}}"):
        for stem, values in per_notebook.items():
            if isinstance(stem, str):
                pairs(f"notebooks.{stem}", values if values is not None else {},
                      f"notebooks: {{{stem}: {{EPOCHS: 2}}}}")
    if pairs("tasks", per_task, "tasks: {reply: {MAX_SEQ_LEN: 256}}"):
        for task, values in per_task.items():
            if not isinstance(task, str):
                continue
            if pairs(f"tasks.{task}", values if values is not None else {}, f"tasks: {{{task}: {{MAX_SEQ_LEN: 256}}}}"):
                own = (values or {}).get("notebooks")
                if own is not None and pairs(f"tasks.{task}.notebooks", own,
                                             f"tasks: {{{task}: {{notebooks: {{03_train_qlora: {{EPOCHS: 2}}}}}}}}"):
                    for stem, v in own.items():
                        if isinstance(stem, str):
                            pairs(f"tasks.{task}.notebooks.{stem}", v if v is not None else {}, "{EPOCHS: 2}")
    if problems:
        raise ConfigError(problems, "cannot run the playbook")


# The reply task's own data, passed to its notebooks unless the params file's `tasks: {reply: {...}}` says
# otherwise (the classification task's are the notebooks' own defaults).
TASK_PARAMS = {stages.CLASSIFY: {},
               stages.REPLY: {"TRAIN_PATH": "data/replies_raw.csv", "PRODUCTION_PATH": "data/replies_production.csv",
                              "OUTPUT_FIELD": "reply", "REPLY_FORMAT": "house", "REASON": "format_or_style",
                              # 00 and 04 score a seeded 100 of the 228 held-out replies (production: all 200): the
                              # base writes up to 102 tokens per reply for three prompts, 175 s for all 228 here
                              "MAX_ROWS": 100,
                              "DEMO_QUANTIZATION": False}}   # 03 measures 4-bit once, on the triage adapter
# What defines one task's data: given flat in a params file they are the run's first task's (a run on your own
# data is one task unless TASKS names more); another task takes them from TASK_PARAMS and `tasks:`.
TASK_DATA = ("TASK", "TRAIN_PATH", "HELDOUT_PATH", "PRODUCTION_PATH", "FORMAT", "TEXT_FIELD", "LABEL_FIELD",
             "OUTPUT_FIELD", "REPLY_FORMAT", "SYSTEM_PROMPT", "PII_ACCEPTED", "HUMAN_LABELS_PATH")


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
    """[Group] to execute in order: the first task's notebooks (00, 01, 02, 03, 04) into the run directory,
    each further task's 00 and 02-04 into <run dir>/<task>, then 05 and 06 (once, over every task) into the run
    directory. `per_task`: {task: {NAME: value, notebooks: {stem: {NAME: value}}}} from the params file's
    `tasks:` section (its `notebooks:` for that task's notebook only)."""
    check_shape(per_notebook or {}, per_task or {})
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


def effective(path, values):
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
        out[p.stem] = rundir.redact(effective(p, dict(injected)))
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
                          f"{Path(path).parent.parent}) or delete the file",
                          title="a run's notebook is unreadable") from None
