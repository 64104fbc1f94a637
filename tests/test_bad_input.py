"""The bad-input corpus (tests/bad_input/*.yaml): each case runs the real `ftplay` command line and must stop
before any notebook runs, with its exit code and every expected fragment of the message.

A case: `args` (the command line), optional `params` (written to the --params file) or `params_text` (written
as it is), `run_dir` (the
directory `{out}` made beforehand: `executed` notebooks with the parameters papermill would have recorded,
`records` as JSON, raw `files`), `cwd`, `exit`, `expect` (fragments of stderr), `never_shown` (text the output
must not hold: a secret) and `absent` (paths the command must not create). `{tmp}`, `{out}` and `{params}` are
filled in.
"""
import json
import os
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


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_input_stops_before_any_notebook_runs(case, tmp_path):
    spec = yaml.safe_load(case.read_text())
    slots = {"tmp": str(tmp_path), "out": str(tmp_path / "run"), "params": str(tmp_path / "params.yaml")}
    if "params" in spec:
        Path(slots["params"]).write_text(yaml.safe_dump(spec["params"]))
    if "params_text" in spec:   # what a dict cannot hold: a key twice, an alias
        Path(slots["params"]).write_text(spec["params_text"])
    if "run_dir" in spec:
        _make_run_dir(tmp_path / "run", spec["run_dir"] or {})
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = subprocess.run([sys.executable, "-m", "ftplay.cli", *_fill(spec["args"], slots)], capture_output=True,
                          text=True, cwd=_fill(spec.get("cwd", str(ROOT)), slots), timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == spec["exit"], proc.stderr[-3000:]
    for fragment in _fill(spec["expect"], slots):
        assert fragment in proc.stderr, f"{fragment!r} not in:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout
    for fragment in spec.get("never_shown") or []:   # a secret the message must not echo
        assert fragment not in proc.stderr + proc.stdout, fragment
    for path in _fill(spec.get("absent") or [], slots):
        assert not Path(path).exists(), f"{path} was created"
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, "a command refused before any notebook ran writes nothing"


def test_every_case_says_why_and_expects_a_message():
    assert len(CASES) >= 15
    for case in CASES:
        spec = yaml.safe_load(case.read_text())
        assert spec.get("why") and spec.get("expect") and spec.get("exit") in (1, 2), case.name
