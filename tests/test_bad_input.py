"""The bad-input corpus (tests/bad_input/*.yaml): each case runs the real `ftplay` command line and must stop
before any notebook runs, with its exit code and every expected fragment of the message.

Each case calls `ftplay.cli.main` in this process (a `python -m ftplay.cli` per case cost 2.5 s of interpreter
and import start-up, 45 cases about 110 s of every test run); `test_the_installed_command_answers_like_main` runs
cases through the installed `ftplay` script, so the entry point itself stays covered.

A case: `args` (the command line), optional `params` (written to the --params file) or `params_text` (written
as it is), `run_dir` (the
directory `{out}` made beforehand: `executed` notebooks with the parameters papermill would have recorded,
`records` as JSON, raw `files`), `cwd`, `exit`, `expect` (fragments of stderr), `never_shown` (text the output
must not hold: a secret) and `absent` (paths the command must not create). `{tmp}`, `{out}` and `{params}` are
filled in.
"""
import json
import logging
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CASES = sorted((ROOT / "tests" / "bad_input").glob("*.yaml"))


def _fill(value, slots):
    if isinstance(value, str):
        return value.format(**slots)
    if isinstance(value, list):
        return [_fill(v, slots) for v in value]
    return value


def _make_run_dir(out, spec):
    out.mkdir(parents=True)
    for stem, params in (spec.get("executed") or {}).items():
        nb = nbformat.read(str(ROOT / "notebooks" / f"{stem}.ipynb"), as_version=4)
        nb.metadata["papermill"] = {"parameters": {"RUN_DIR": str(out), **params}}
        (out / "notebooks").mkdir(exist_ok=True)
        nbformat.write(nb, str(out / "notebooks" / f"{stem}.ipynb"))
    for stem, record in (spec.get("records") or {}).items():
        (out / f"{stem}.json").write_text(json.dumps(record))
    for rel, text in (spec.get("files") or {}).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)


def _prepare(case, tmp_path):
    spec = yaml.safe_load(case.read_text())
    slots = {"tmp": str(tmp_path), "out": str(tmp_path / "run"), "params": str(tmp_path / "params.yaml")}
    if "params" in spec:
        Path(slots["params"]).write_text(yaml.safe_dump(spec["params"]))
    if "params_text" in spec:   # what a dict cannot hold: a key twice, an alias
        Path(slots["params"]).write_text(spec["params_text"])
    if "run_dir" in spec:
        _make_run_dir(tmp_path / "run", spec["run_dir"] or {})
    return spec, slots


def _main_here(args, cwd, capsys, monkeypatch):
    """(exit code, stdout, stderr) of `ftplay.cli.main(args)` run in `cwd`, the loggers' levels it sets put back."""
    from ftplay import cli

    levels = {name: lg.level for name, lg in logging.root.manager.loggerDict.items()
              if isinstance(lg, logging.Logger)}
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    try:
        code = cli.main(args)
    except SystemExit as e:   # argparse's own usage errors
        code = e.code
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    out, err = capsys.readouterr()
    return code, out, err


def _check(spec, slots, tmp_path, before, code, out, err):
    assert code == spec["exit"], err[-3000:]
    for fragment in _fill(spec["expect"], slots):
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    assert "Traceback" not in err + out
    for fragment in spec.get("never_shown") or []:   # a secret the message must not echo
        assert fragment not in err + out, fragment
    for path in _fill(spec.get("absent") or [], slots):
        assert not Path(path).exists(), f"{path} was created"
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, "a command refused before any notebook ran writes nothing"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_input_stops_before_any_notebook_runs(case, tmp_path, capsys, monkeypatch):
    spec, slots = _prepare(case, tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, out, err = _main_here(_fill(spec["args"], slots), _fill(spec.get("cwd", str(ROOT)), slots), capsys,
                                monkeypatch)
    _check(spec, slots, tmp_path, before, code, out, err)


# through the installed script, in a process of its own: a params file, a run directory, a relative --out
BY_SCRIPT = ("params_duplicate_key", "report_false_yes", "relative_out")


@pytest.mark.parametrize("stem", BY_SCRIPT)
def test_the_installed_command_answers_like_main(stem, tmp_path):
    spec, slots = _prepare(ROOT / "tests" / "bad_input" / f"{stem}.yaml", tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    script = Path(sys.executable).parent / "ftplay"
    proc = subprocess.run([str(script), *_fill(spec["args"], slots)], capture_output=True, text=True, timeout=120,
                          cwd=_fill(spec.get("cwd", str(ROOT)), slots))
    _check(spec, slots, tmp_path, before, proc.returncode, proc.stdout, proc.stderr)


def test_every_case_says_why_and_expects_a_message():
    assert len(CASES) >= 15
    for case in CASES:
        spec = yaml.safe_load(case.read_text())
        assert spec.get("why") and spec.get("expect") and spec.get("exit") in (1, 2), case.name
