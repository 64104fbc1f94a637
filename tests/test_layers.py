"""The package's import graph: no loop, and every import points down the layers below.

Layers, top to bottom (a module imports only modules in a lower layer; function-level imports count):
  entry points   cli, modal_app            the command line and the Modal app
  refit          refit                     re-runs a playbook through the runner, compares two runs
  runner         runner                    executes the notebooks
  run steps      run_plan run_checks run_summary   what a run executes, what refuses it before anything runs,
                                           summary.json (the checks and the summary read the plan)
  report         report report_page        the ship checklist, read from a run's records; shown as text and HTML
  stages         decide data evaluate train cost serve hosted hosted_standin axolotl ... (helpers below
                 them: quality, dataload,
                 datachat, scoring, masks, serve_client, splitting, tokencount)
                                           one module per stage of the playbook; a stage may use a
                                           lower stage helper (data uses quality and dataload, evaluate scoring,
                                           loadtest serve_client); cost_run and cost_tables read cost
  identity       identity                  base and adapter identity (ftplay_adapter.json, the base check)
  tasks          tasks/ (a package)        one module per task behind one interface; the notebooks call it
  shared         records models prompts plots seeding params kernels footprint config numbers
  training config recipes config           TrainConfig, the recipes and the scoring knobs (params reads their ranges)
  model builders standins                  stand-in bases of real model families
  base           stages rundir errors tinymodel progress   names, files, errors, the embedded tiny model, progress bars
Notebooks sit above all of them.
"""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "ftplay"

# rank: higher imports lower only. Ranks inside a layer order the few imports within it.
LAYERS = {
    "entry": (90, {"cli", "modal_app"}),
    "refit": (80, {"refit"}),
    "runner": (70, {"runner"}),
    "run steps": (65, {"run_plan", "run_checks", "run_summary"}),
    "report": (60, {"report", "report_page"}),
    "tasks": (55, {"tasks"}),
    "stages": (50, {"decide", "data", "evaluate", "replies", "gate", "lessons", "harness", "train", "cost", "cost_run",
                    "cost_tables", "serve", "serve_tasks", "serve_checks", "loadtest", "hosted", "hosted_standin",
                    "axolotl", "curve"}),
    "stage helpers": (40, {"quality", "dataload", "datachat", "scoring", "masks", "serve_client", "splitting",
                           "tokencount", "requestlog"}),
    "identity": (30, {"identity"}),
    "shared": (20, {"records", "prompts", "models", "plots", "seeding", "params", "kernels", "footprint", "numbers"}),
    "training config": (17, {"recipes", "config"}),
    "model builders": (15, {"standins"}),
    # label_issues: self-contained like formats (sklearn and cleanlab only); params checks its modes
    "base": (10, {"stages", "rundir", "errors", "tinymodel", "progress", "formats", "ranges", "label_issues",
                  "__init__"}),
}
# within a layer, the few imports that are allowed (importer -> imported)
SIDEWAYS = {("datachat", "dataload"), ("replies", "evaluate"), ("lessons", "replies"), ("serve_checks", "serve"),
            ("serve_checks", "loadtest"), ("serve_checks", "evaluate"), ("lessons", "evaluate"), ("lessons", "train"),
            ("cost_run", "cost"), ("cost_tables", "cost"), ("run_checks", "run_plan"), ("run_summary", "run_plan"),
            ("tinymodel", "rundir"), ("tinymodel", "progress"),
            ("hosted_standin", "serve"), ("dataload", "requestlog"), ("requestlog", "quality"),
            ("curve", "evaluate"), ("decide", "curve")}


def imports(path, mods=None, depth=0):
    """ftplay modules that the module at `path` imports, anywhere in it (module level or in a function).

    `depth` is how many packages deep below ftplay/ the module sits (1 for ftplay/tasks/*.py): its
    relative imports climb that many levels more, and an import inside its own package is not an edge."""
    mods = mods or top_modules()
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            level = node.level - depth if node.level else 0
            if node.level and level < 1:
                continue                                                    # inside its own subpackage
            if (level == 1 and node.module is None) or (level == 0 and node.module == "ftplay"):
                out |= {a.name for a in node.names if a.name in mods}       # from . import x / from ftplay import x
            elif level == 1:
                out.add(node.module.split(".")[0])                          # from .x import y
            elif level == 0 and (node.module or "").startswith("ftplay."):
                out.add(node.module.split(".")[1])                          # from ftplay.x import y
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("ftplay.")}
    return out


def top_modules():
    """The package's modules and subpackages, by the name an import gives them."""
    return {p.stem for p in PKG.glob("*.py")} | {p.parent.name for p in PKG.glob("*/__init__.py")}


def graph():
    """{module: set of ftplay modules it imports} for every module of the package; a subpackage is one node."""
    g = {p.stem: imports(p) - {p.stem} for p in sorted(PKG.glob("*.py"))}
    for init in sorted(PKG.glob("*/__init__.py")):
        sub = init.parent
        g[sub.name] = set().union(*(imports(p, depth=1) for p in sorted(sub.glob("*.py")))) - {sub.name}
    return g


def rank(module):
    for r, members in LAYERS.values():
        if module in members:
            return r
    return None


def test_every_module_has_a_layer():
    assert [m for m in graph() if rank(m) is None] == [], "add the new module to a layer in LAYERS"


def test_imports_point_down():
    upward = [f"{m} ({rank(m)}) imports {d} ({rank(d)})" for m, deps in graph().items() for d in sorted(deps)
              if rank(d) is not None and rank(m) is not None and rank(d) >= rank(m) and (m, d) not in SIDEWAYS]
    assert upward == []


def test_no_import_loop():
    g = graph()
    state, loops = {}, []

    def visit(m, path):
        state[m] = "open"
        for d in sorted(g.get(m, ())):
            if state.get(d) == "open":
                loops.append(" -> ".join(path[path.index(d):] + [d]))
            elif d not in state:
                visit(d, path + [d])
        state[m] = "done"

    for m in g:
        if m not in state:
            visit(m, [m])
    assert loops == []


def test_serving_and_the_runner_stand_on_identity_not_refit():
    g = graph()
    assert "refit" not in g["runner"] and "refit" not in g["run_checks"]
    assert "refit" not in g["serve"] and "refit" not in g["serve_checks"]
    assert "identity" in g["run_checks"] and "identity" in g["refit"]   # the runner's base check before a run


def test_the_graph_reads_function_level_imports(tmp_path):
    src = tmp_path / "x.py"
    src.write_text("from . import a\nfrom .b import c\ndef f():\n    from . import d, e\n    from ftplay import g\n"
                   "    from ftplay.h import i\n    import ftplay.j\n")
    assert imports(src, mods={"a", "d", "e", "g"}) == {"a", "b", "d", "e", "g", "h", "j"}
    sub = tmp_path / "y.py"
    sub.write_text("from .. import a\nfrom ..b import c\nfrom . import local\nfrom .other import z\n")
    assert imports(sub, mods={"a"}, depth=1) == {"a", "b"}


def test_the_tasks_package_is_in_the_graph():
    assert "tasks" in graph() and {"gate", "records"} <= graph()["tasks"]


# imported but installed elsewhere on purpose
NOT_DECLARED = {"axolotl": "validated in its own throw-away environment (ftplay/axolotl.py)",
                "toml": "modal_app's fallback where tomllib is missing (Python < 3.11)"}


def test_every_third_party_import_is_declared():
    """Every package the package or a notebook imports is a dependency or an extra in pyproject.toml."""
    import re
    import sys
    import tomllib
    from importlib import metadata

    import nbformat

    project = tomllib.loads((PKG.parent / "pyproject.toml").read_text())["project"]
    norm = lambda name: name.lower().replace("_", "-")  # noqa: E731
    declared = {norm(re.split(r"[=<>\[; ]", d)[0])
                for d in project["dependencies"] + sum(project["optional-dependencies"].values(), [])}
    sources = [p.read_text() for p in PKG.rglob("*.py")]
    sources += [c.source for nb in (PKG.parent / "notebooks").glob("*.ipynb")
                for c in nbformat.read(str(nb), as_version=4).cells if c.cell_type == "code"]
    tops = set()
    for src in sources:
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                tops |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops.add(node.module.split(".")[0])
    dists = metadata.packages_distributions()
    missing = [m for m in sorted(tops - set(sys.stdlib_module_names) - {"ftplay", "__future__"} - set(NOT_DECLARED))
               if not {norm(d) for d in dists.get(m, [m])} & declared]
    assert missing == [], "declare them in pyproject.toml (pinned to the version in .venv) and requirements/train.lock"
