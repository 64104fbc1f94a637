"""The runner: parameter plumbing, failure reporting, the summary."""
import json
import os
from pathlib import Path

import nbformat
import pytest

from ftplay import cli, kernels, params, run_checks, run_plan, run_summary, rundir, runner, stages
from ftplay.errors import ConfigError


def test_unknown_parameter_and_notebook_are_rejected_up_front(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("MODELL: embedded\nnotebooks:\n  03_train_qlora:\n    EPOCH: 1\n")
    flat, per = run_plan.load_params(p)
    with pytest.raises(ConfigError) as e:
        run_plan.plan(None, flat, per)
    assert "MODELL is declared by no notebook" in str(e.value)
    assert "03_train_qlora has no parameter EPOCH" in str(e.value)
    with pytest.raises(ConfigError, match="--only 09: no such notebook"):
        run_plan.plan(["09"])


def test_bad_yaml_names_the_line(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("MODEL: embedded\nSEED: [1,\n")
    with pytest.raises(ConfigError, match="line"):
        run_plan.load_params(p)


def test_plan_passes_each_notebook_only_its_parameters():
    todo = run_plan.plan(["02", "03"], {"MODEL": "embedded", "SEED": 5}, {"03_train_qlora": {"MAX_STEPS": 2}})
    assert [s for s, _, _ in todo] == ["02_curate_data", "03_train_qlora"]
    assert todo[0][2] == {"MODEL": "embedded", "SEED": 5}
    assert todo[1][2] == {"MODEL": "embedded", "SEED": 5, "MAX_STEPS": 2}


def _failing_notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell('RUN_DIR = "x"  # where')
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), p, nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("raise ValueError('planted failure')")]
    nbformat.write(nb, str(path))


@pytest.mark.notebook
def test_failing_notebook_exits_non_zero_naming_notebook_and_cell(tmp_path, monkeypatch, capfd):
    first, second, third = stages.ORDER[:3]  # the playbook's run order: the second fails
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    ok = nbformat.v4.new_notebook()
    ok.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    c = nbformat.v4.new_code_cell('RUN_DIR = "x"  # where')
    c.metadata["tags"] = ["parameters"]
    ok.cells = [c, nbformat.v4.new_code_cell(f"import pathlib; pathlib.Path(RUN_DIR, '{first}.json')"
                                             ".write_text('{}')")]
    nbformat.write(ok, str(nbdir / f"{first}.ipynb"))
    _failing_notebook(nbdir / f"{second}.ipynb")
    _failing_notebook(nbdir / f"{third}.ipynb")
    monkeypatch.setattr(run_plan, "NOTEBOOK_DIR", nbdir)
    out = tmp_path / "run"
    out.mkdir()
    for stem in (first, second):   # a run before this one: its records must not read as this run's
        (out / f"{stem}.json").write_text(json.dumps({"from": "the run before"}))
    rc = cli.main(["run", "--out", str(out)])
    assert rc == 1
    assert json.loads((out / f"{first}.json").read_text()) == {} and not (out / f"{first}.json.previous").exists()
    assert not (out / f"{second}.json").exists(), "the failed notebook's old record is set aside, not read as new"
    assert json.loads((out / f"{second}.json.previous").read_text()) == {"from": "the run before"}
    err = capfd.readouterr().err  # the kernels' own stderr included
    assert f"{second} failed at cell" in err and "planted failure" in err
    assert "without encryption" not in err and "IPKernelApp" not in err, err
    runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
    assert not list(runtime.glob(f"ftplay-kernel-{os.getpid()}-*")), "each kernel's connection file goes with it"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notebooks"][first]["status"] == "ok"
    assert summary["notebooks"][second]["status"] == "failed"
    assert third not in summary["notebooks"], "later notebooks do not run"
    assert (out / f"{first}.json").exists(), "what ran before stays"
    assert summary["decision"]["ship"] is False


def test_summary_reads_recorded_results(tmp_path):
    ev = {"heldout": {"n": 10, "systems": {"base": {"accuracy": .1, "macro_f1": .05},
                                           "finetuned": {"accuracy": .9, "macro_f1": .8}}},
          "production": {"n": 5, "systems": {"base": {"accuracy": .2, "macro_f1": .1},
                                             "finetuned": {"accuracy": .8, "macro_f1": .7}}},
          "decision": {"ship": True, "reasons": ["held-out: better"]}}
    (tmp_path / "04_evaluate.json").write_text(json.dumps(ev))
    (tmp_path / "06_compare_costs.json").write_text(json.dumps({"verdict": {"cheaper": False, "headline": "h",
                                                                            "reasons": ["cost: no"]}}))
    warning = {"label": "gift_cards", "kind": "train_only", "rows": 1, "message": "label 'gift_cards' has 1 row(s)"}
    (tmp_path / "02_curate_data.json").write_text(json.dumps({"label_warnings": [warning]}))
    s = run_summary.summarise(tmp_path, {"04_evaluate": {"status": "ok", "seconds": 1.0}})
    assert s["heldout"]["finetuned"]["macro_f1"] == .8 and s["production"]["n"] == 5
    assert s["label_warnings"] == [warning]
    assert "labels: 1 warning(s)\n  - label 'gift_cards' has 1 row(s)" in run_summary.format_summary(s)
    assert s["decision"]["ship"] is False
    assert "Cost compared: not cheaper: h" in [r["text"] for r in s["decision"]["reasons"]]
    assert "ship: NO" in run_summary.format_summary(s)


def test_bad_inputs_stop_before_any_notebook_runs(tmp_path):
    one = tmp_path / "one_label.csv"
    one.write_text("text,label\nmy card was charged,billing\nrefund please now,billing\n")
    with pytest.raises(ConfigError) as e:
        run_checks.check_inputs(run_plan.plan(["00", "02"], {"MODEL": str(tmp_path / "nope"),
                                                              "PRODUCTION_PATH": "data/missing.csv"}))
    msg = str(e.value)
    assert "MODEL=" in msg and "does not exist" in msg
    assert "PRODUCTION_PATH='data/missing.csv' does not exist" in msg
    with pytest.raises(ConfigError, match="has 1 label"):
        run_checks.check_inputs(run_plan.plan(["02"], {"TRAIN_PATH": str(one)}))


def test_cli_reports_bad_parameters_with_exit_2(tmp_path, capsys):
    p = tmp_path / "p.yaml"
    p.write_text("TRAIN_PATH: data/nope.csv\n")
    assert cli.main(["run", "--params", str(p), "--out", str(tmp_path / "run")]) == 2
    assert "TRAIN_PATH='data/nope.csv' does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run").exists(), "nothing is created for a run that cannot start"


def test_parameter_types_are_checked_for_every_notebook_before_anything_runs(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("MODEL: embedded\nSEED: '7'\nnotebooks:\n  03_train_qlora: {EPOCHS: three, LORA_R: '16', "
                 "LEARNING_RATE: 2e-3, LOAD_IN_4BIT: 1, TARGET_MODULES: [q_proj, 3]}\n"
                 "  04_evaluate: {N_BOOT: 100.5}\n")
    with pytest.raises(ConfigError) as e:
        runner.run(p, out=tmp_path / "run", progress=lambda *_: None)
    msg = str(e.value)
    for text in ("EPOCHS='three' (str) must be Optional[float]", "LORA_R='16' (str) must be Optional[int] "
                 "(written in quotes: drop them)", "LEARNING_RATE='2e-3' (str) must be Optional[float] (YAML read it "
                 "as text: write 0.002", "LOAD_IN_4BIT=1 (int) must be Optional[bool]",
                 "TARGET_MODULES=['q_proj', 3] (list)",
                 "N_BOOT=100.5 (float) must be int", "00_baseline_prompting: SEED='7' (str) must be int"):
        assert text in msg, msg
    assert not (tmp_path / "run").exists(), "nothing runs or is written before the types are right"
    params.check_types(run_plan.plan(None, {"MODEL": "embedded", "SEED": 7},
                                     {"03_train_qlora": {"EPOCHS": 2, "LEARNING_RATE": 0.002, "LORA_R": None,
                                                         "TARGET_MODULES": ["q_proj"]}}))


def test_a_relative_out_is_the_callers_and_a_run_directory_is_locked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = {}
    monkeypatch.setattr(runner, "_execute", lambda todo, run_dir, progress, done=None: seen.setdefault("dir", run_dir))
    runner.run(None, only=["01"], out="rel/run", progress=lambda *_: None)
    assert seen["dir"] == tmp_path / "rel" / "run" and seen["dir"].is_absolute()
    assert not (seen["dir"] / ".ftplay.lock").exists(), "released when the run ends"
    (seen["dir"] / ".ftplay.lock").write_text(str(os.getppid()))  # a live process holds it
    with pytest.raises(ConfigError, match=f"being written by another ftplay run \\(pid {os.getppid()}\\)"):
        runner.run(None, only=["01"], out="rel/run", progress=lambda *_: None)
    (seen["dir"] / ".ftplay.lock").write_text("999999999")  # a killed run's lock is taken over
    runner.run(None, only=["01"], out="rel/run", progress=lambda *_: None)
    assert not (seen["dir"] / ".ftplay.lock").exists()


def test_which_names_are_secrets_and_what_is_redacted():
    assert [n for n in ("API_KEY", "HF_TOKEN", "VLLM_API_KEY", "db-password", "MAX_TOKENS", "ENDPOINT_API_KEY_ENV",
                        "MODEL", "TOKENIZER", "bos_token", "eos_token_id") if rundir.is_secret(n)] == [
        "API_KEY", "HF_TOKEN", "VLLM_API_KEY", "db-password"]
    assert rundir.redact({"API_KEY": "sk-1", "x": [{"HF_TOKEN": "t"}], "MAX_TOKENS": 8, "EMPTY_KEY": ""}) == {
        "API_KEY": "***", "x": [{"HF_TOKEN": "***"}], "MAX_TOKENS": 8, "EMPTY_KEY": ""}


def test_a_notebook_run_before_what_it_needs_says_which_to_run_first(tmp_path):
    with pytest.raises(ConfigError) as e:
        runner.run(None, only=["03", "04"], out=tmp_path / "run", progress=lambda *_: None)
    assert str(e.value).count("needs 02_curate_data's output") == 2
    assert "run 02 first (--only 02,03 --out" in str(e.value)
    assert "04_evaluate needs 03_train_qlora" not in str(e.value), "03 is in the plan before 04"
    with pytest.raises(ConfigError, match="05_serve_vllm needs 03_train_qlora's output.*or set ADAPTER_DIR"):
        run_checks.check_order(run_plan.plan(["05"]), tmp_path)
    run_checks.check_order(run_plan.plan(["05"], per_notebook={"05_serve_vllm": {"ADAPTER_DIR": "x"}}), tmp_path)
    run_checks.check_order(run_plan.plan(None), None)  # the whole playbook needs nothing beforehand
    (tmp_path / "02_curate_data.json").write_text("{}")
    run_checks.check_order(run_plan.plan(["03"]), tmp_path)


def test_ctrl_c_is_one_line_naming_the_notebook_and_report_refuses_a_non_run(tmp_path, monkeypatch, capsys):
    def interrupted(todo, run_dir, progress, done=None):
        runner.CURRENT.update(stem="03_train_qlora", notebook=run_dir / "notebooks" / "03_train_qlora.ipynb",
                              run_dir=run_dir)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_execute", interrupted)
    assert cli.main(["run", "--only", "01", "--out", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted (Ctrl-C) in 03_train_qlora" in err[0] and "--resume` goes on" in err[0]
    assert not (tmp_path / "run" / ".ftplay.lock").exists(), "the lock goes with the run"
    runner.CURRENT.clear()
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", str(tmp_path / "empty")]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    assert not (tmp_path / "empty" / "ship_report.html").exists()


def test_every_numeric_parameter_of_every_notebook_has_a_range_its_default_meets():
    numeric = {(stem, name): info for stem, path in run_plan.notebooks().items()
               for name, info in params.declared_parameters(path).items()
               if params.is_numeric(info["inferred_type_name"])}
    assert len(numeric) > 60
    unranged = sorted(f"{stem}: {name}" for stem, name in numeric if name not in params.RANGES | params.UNBOUNDED)
    assert not unranged, f"add these to params.RANGES (or UNBOUNDED, with why): {unranged}"
    for (stem, name), info in numeric.items():
        default = params.literal(info["default"])
        assert default is None or name in params.UNBOUNDED or params.RANGES[name].holds(default), (stem, name, default)
    assert not set(params.RANGES) - {n for _, n in numeric}, "a range for a parameter no notebook declares"


def test_ranges_say_the_rule_and_hold_at_their_edges():
    r = params.RANGES
    assert [str(r[n]) for n in ("BATCH_SIZE", "EPOCHS", "HELDOUT_FRACTION", "MAX_DROP", "LORA_DROPOUT", "MAX_STEPS",
                                "SEED")] == [">= 1", "> 0", "in (0, 1)", "in [0, 1]", "in [0, 1)", "-1 or >= 1",
                                             "in [0, 4294967295]"]
    assert [r["HELDOUT_FRACTION"].holds(v) for v in (0, 0.01, 0.99, 1)] == [False, True, True, False]
    assert [r["MAX_STEPS"].holds(v) for v in (-2, -1, 0, 1)] == [False, True, False, True]
    assert not r["EPOCHS"].holds(float("nan")) and r["N_BOOT"].holds(1) and not r["N_BOOT"].holds(0)


def test_ranges_are_checked_for_every_notebook_of_the_plan_before_anything_runs(tmp_path):
    todo = run_plan.plan(["00", "03", "06"], {"BATCH_SIZE": 0, "SEED": -1, "MAX_SEQ_LEN": 8},
                         {"03_train_qlora": {"LEARNING_RATE": 0.0, "LORA_R": 300},
                          "06_compare_costs": {"SERVING_UTILISATION": 0.0}})
    with pytest.raises(ConfigError) as e:
        params.check_ranges(todo)
    assert e.value.problems == [
        "00_baseline_prompting: BATCH_SIZE=0 must be >= 1; set BATCH_SIZE in the params file to a value >= 1 such as "
        "16, its default",
        "00_baseline_prompting: SEED=-1 must be in [0, 4294967295]; set SEED in the params file to a value in "
        "[0, 4294967295] such as 0, its default",
        "00_baseline_prompting: MAX_SEQ_LEN=8 must be >= 16; set MAX_SEQ_LEN in the params file to a value >= 16 "
        "such as 512, its default",
        "03_train_qlora: LEARNING_RATE=0.0 must be in (0, 1); set LEARNING_RATE in the params file to a value in "
        "(0, 1)",
        "03_train_qlora: LORA_R=300 must be in [1, 256]; set LORA_R in the params file to a value in [1, 256]",
        "06_compare_costs: SERVING_UTILISATION=0.0 must be in (0, 1]; set SERVING_UTILISATION in the params file to a "
        "value in (0, 1] such as 0.5, its default"]
    with pytest.raises(ConfigError, match="BATCH_SIZE=0 must be >= 1"):
        runner.run(None, only=["04"], params={"BATCH_SIZE": 0}, out=tmp_path / "run", progress=lambda *_: None)
    assert not (tmp_path / "run").exists()
    params.check_ranges(run_plan.plan(None, {"BATCH_SIZE": 1, "SEED": 0, "N_BOOT": 1},
                                      {"03_train_qlora": {"LORA_R": None, "MAX_STEPS": -1, "EPOCHS": 0.5}}))


def test_a_text_parameter_of_a_few_values_is_checked_before_anything_runs(tmp_path):
    """SCORING_METHOD (00 and 04) takes label scoring's methods only; a typo is one error (named once, as a number
    out of range is), with the values that work, before any notebook runs; both methods pass."""
    from ftplay import config, scoring

    # one tuple, three readers: the params check, the scoring config and the scorer (not three equal copies)
    assert params.CHOICES["SCORING_METHOD"] is config.SCORING_METHODS is scoring.LabelScorer.METHODS
    with pytest.raises(ConfigError) as e:
        params.check_ranges(run_plan.plan(["00", "04"], {"SCORING_METHOD": "likelihood"}))
    assert e.value.problems == [
        "00_baseline_prompting: SCORING_METHOD='likelihood' is not one of 'constrained', 'joint'; set SCORING_METHOD "
        "in the params file to one of them"]
    with pytest.raises(ConfigError, match="SCORING_METHOD='Joint' is not one of"):
        runner.run(None, only=["04"], params={"SCORING_METHOD": "Joint"}, out=tmp_path / "run",
                   progress=lambda *_: None)
    assert not (tmp_path / "run").exists()
    for method in scoring.LabelScorer.METHODS:
        params.check_ranges(run_plan.plan(["00", "04"], {"SCORING_METHOD": method}))
    assert "SCORING_METHOD" in params.RUN_IDENTITY  # 04 pairs its systems with 00's: one method for both


def test_a_system_prompt_showing_json_passes_the_checks_and_renders_as_written():
    from ftplay import prompts

    text = 'Answer as JSON {"label": "<one of {labels}>"}; nothing else.'
    todo = run_plan.plan(["00", "02"], {"SYSTEM_PROMPT": text})
    params.check_types(todo)
    params.check_ranges(todo)
    assert prompts.messages("my card", ["billing", "bug"], system_prompt=text)[0]["content"] == \
        'Answer as JSON {"label": "<one of billing, bug>"}; nothing else.'


def _executed(run_dir, stem, injected, record=True):
    nb = nbformat.read(str(run_plan.NOTEBOOK_DIR / f"{stem}.ipynb"), as_version=4)
    nb.metadata["papermill"] = {"parameters": {"RUN_DIR": str(run_dir), **injected}}
    (run_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(run_dir / "notebooks" / f"{stem}.ipynb"))
    if record:
        (run_dir / f"{stem}.json").write_text("{}")


def test_a_second_run_with_other_parameters_is_refused_and_a_rerun_with_the_same_passes(tmp_path):
    run = tmp_path / "run"
    _executed(run, "02_curate_data", {"TRAIN_PATH": "data/other.csv", "MAX_SEQ_LEN": 256})
    _executed(run, "03_train_qlora", {"MAX_STEPS": 2}, record=False)  # failed or killed: no record, not compared
    with pytest.raises(ConfigError) as e:
        run_checks.check_same_run(run_plan.plan(["02", "03"], {"MAX_SEQ_LEN": 256}), run)
    assert e.value.problems[:1] == [f"TRAIN_PATH='data/tickets_raw.csv' for 02_curate_data, but 02_curate_data in "
                                    f"{run} ran with TRAIN_PATH='data/other.csv'"]
    assert "03_train_qlora: MAX_SEQ_LEN" not in str(e.value) and len(e.value.problems) == 2  # + the fix
    assert "add --force" in e.value.problems[-1]
    with pytest.raises(ConfigError, match="MODEL='embedded:1' for 04_evaluate, but 02_curate_data in"):
        # the run's identity, any notebook
        run_checks.check_same_run(run_plan.plan(["04"], {"MODEL": "embedded:1"}), run)
    same = {"TRAIN_PATH": "data/other.csv", "MAX_SEQ_LEN": 256}
    run_checks.check_same_run(run_plan.plan(["02", "03"], same), run)                 # a rerun: the same parameters
    # 03's own knobs are its own
    run_checks.check_same_run(run_plan.plan(["03"], {"MAX_SEQ_LEN": 1024, "MAX_STEPS": 5}), run)
    run_checks.check_same_run(run_plan.plan(["02"]), run, force=True)
    run_checks.check_same_run(run_plan.plan(["02"]), tmp_path / "fresh")


def test_recorded_params_name_an_unreadable_notebook(tmp_path):
    from ftplay.errors import FtplayError

    _executed(tmp_path, "02_curate_data", {"SEED": 4})
    (tmp_path / "notebooks" / "03_train_qlora.ipynb").write_text('{"cells": [')
    with pytest.raises(FtplayError, match="03_train_qlora.ipynb is not a readable notebook .*--only 03 --out"):
        run_plan.recorded_params(tmp_path)
    assert run_plan.recorded_params(tmp_path, lenient=True)["02_curate_data"]["SEED"] == 4
    assert list(run_plan.recorded_params(tmp_path, stems={"02_curate_data"})) == ["02_curate_data"]


def test_stale_kernel_connection_files_are_removed_and_kernels_are_encrypted(tmp_path):
    dead, alive = 2**22 + 12345, os.getpid()
    assert not rundir.pid_alive(dead)
    for name in (f"ftplay-kernel-{dead}-a.json", f"ftplay-kernel-{alive}-b.json", "kernel-other.json"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in kernels.remove_stale_connection_files(tmp_path)] == [f"ftplay-kernel-{dead}-a.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"ftplay-kernel-{alive}-b.json", "kernel-other.json"]
    km = kernels.manager()(kernel_name="python3")
    assert km.transport_encryption == "auto"
    assert Path(km.connection_file).name.startswith(f"ftplay-kernel-{alive}-")


CTRL_C_DRIVER = """
import sys
from pathlib import Path
from ftplay import cli, run_plan
run_plan.NOTEBOOK_DIR = Path(sys.argv[1])
sys.exit(cli.main(["run", "--out", sys.argv[2]]))
"""


def _sleeping_notebook(nbdir, seconds=120):
    """01, whose cell marks that it started, then sleeps."""
    nbdir.mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    c = nbformat.v4.new_code_cell('RUN_DIR = "x"  # where')
    c.metadata["tags"] = ["parameters"]
    nb.cells = [c, nbformat.v4.new_code_cell(f"import pathlib, time\npathlib.Path(RUN_DIR, 'started').touch()\n"
                                             f"time.sleep({seconds})")]
    nbformat.write(nb, str(nbdir / "01_decide_approach.ipynb"))
    return nbdir


def _start_run(nbdir, out, runtime):
    """`ftplay run` in a process group of its own, as from a terminal; returns it once the cell started."""
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "PYTHONPATH": str(runner.ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_DRIVER, str(nbdir), str(out)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 90
    while not (out / "started").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert (out / "started").exists(), proc.communicate()
    return proc


@pytest.mark.notebook
def test_ctrl_c_in_a_cell_is_one_line_and_leaves_no_kernel_file(tmp_path):
    """The real `ftplay run` on a notebook whose cell sleeps, SIGINT as a terminal's Ctrl-C sends it (to the
    process group): one line on stderr, exit 130, no kernel traceback, no connection file left."""
    import signal

    out, runtime = tmp_path / "run", tmp_path / "runtime"
    proc = _start_run(_sleeping_notebook(tmp_path / "notebooks"), out, runtime)
    assert len(list(runtime.glob("ftplay-kernel-*.json"))) == 1
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [f"ftplay: interrupted (Ctrl-C) in 01_decide_approach; what ran before it is "
                                        f"in {out}: `ftplay run --out {out} --resume` goes on from 01_decide_approach"
                                        ], err
    assert not list(runtime.glob("*.json")) and not (out / ".ftplay.lock").exists()


RESUME_DRIVER = """
import sys
from pathlib import Path
from ftplay import cli, run_plan
run_plan.NOTEBOOK_DIR = Path(sys.argv[1])
sys.exit(cli.main(sys.argv[2:]))
"""


def _recording_notebooks(nbdir, out):
    """00 and 02, each writing its record; 02 of the first task marks that it started and sleeps unless
    <out>/go-on exists."""
    nbdir.mkdir()
    for stem in ("00_baseline_prompting", "02_curate_data"):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        c = nbformat.v4.new_code_cell('RUN_DIR = "x"  # where')
        c.metadata["tags"] = ["parameters"]
        wait = (f"if RUN_DIR == {str(out)!r} and not pathlib.Path(RUN_DIR, 'go-on').exists():\n"
                "    pathlib.Path(RUN_DIR, 'started').touch()\n    time.sleep(120)\n") if stem.startswith("02") else ""
        nb.cells = [c, nbformat.v4.new_code_cell(
            f"import json, pathlib, time\n{wait}pathlib.Path(RUN_DIR, '{stem}.json').write_text(json.dumps({{}}))")]
        nbformat.write(nb, str(nbdir / f"{stem}.ipynb"))
    return nbdir


@pytest.mark.notebook
def test_sigterm_in_a_two_task_run_ends_in_one_line_whose_command_goes_on_where_it_stopped(tmp_path):
    """The real `ftplay run` of both tasks, SIGTERM in the first task's 02 (as a scheduler or `kill` sends it):
    one line naming the notebook and a --resume command, exit 143, the lock and kernel file gone, a summary that
    says where it stopped; that command, run as printed, runs only what had not finished, in each task's folder."""
    import shlex
    import signal
    import subprocess
    import sys
    import time

    out, runtime = tmp_path / "run", tmp_path / "runtime"
    nbdir = _recording_notebooks(tmp_path / "notebooks", out)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "PYTHONPATH": str(runner.ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", RESUME_DRIVER, str(nbdir), "run", "--out", str(out)], env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while not (out / "started").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert (out / "started").exists(), proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ftplay: stopped (SIGTERM) in 02_curate_data"), err
    command = lines[0].split("`")[1]
    assert command == f"ftplay run --out {shlex.quote(str(out))} --resume", command
    assert not list(runtime.glob("*.json")) and not (out / ".ftplay.lock").exists()
    stopped = json.loads((out / "summary.json").read_text())["notebooks"]
    assert stopped["00_baseline_prompting"]["status"] == "ok" and stopped["02_curate_data"]["status"] == "stopped"
    assert not (out / "reply").exists() and not (out / "02_curate_data.json").exists()

    (out / "go-on").touch()
    first = (out / "00_baseline_prompting.json").stat().st_mtime_ns
    again = subprocess.run([sys.executable, "-c", RESUME_DRIVER, str(nbdir), *shlex.split(command)[1:]], env=env,
                           capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert (out / "00_baseline_prompting.json").stat().st_mtime_ns == first, "a finished notebook is not run again"
    summary = json.loads((out / "summary.json").read_text())["notebooks"]
    assert list(summary) == ["00_baseline_prompting", "02_curate_data", "reply/00_baseline_prompting",
                             "reply/02_curate_data"] and {v["status"] for v in summary.values()} == {"ok"}
    assert (out / "reply" / "02_curate_data.json").exists() and not list(runtime.glob("*.json"))
    nothing = subprocess.run([sys.executable, "-c", RESUME_DRIVER, str(nbdir), *shlex.split(command)[1:]], env=env,
                             capture_output=True, text=True, timeout=60)
    assert nothing.returncode == 2 and "nothing to resume" in nothing.stderr, nothing.stderr


@pytest.mark.notebook
def test_after_sigkill_the_next_run_removes_the_kernel_file_and_takes_the_lock(tmp_path):
    import signal
    import subprocess
    import sys

    out, runtime = tmp_path / "run", tmp_path / "runtime"
    proc = _start_run(_sleeping_notebook(tmp_path / "notebooks"), out, runtime)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    left = list(runtime.glob("ftplay-kernel-*.json"))
    assert [p.name.split("-")[2] for p in left] == [str(proc.pid)] and (out / ".ftplay.lock").exists()
    (out / "started").unlink()
    again = subprocess.run([sys.executable, "-c", CTRL_C_DRIVER, str(_sleeping_notebook(tmp_path / "notebooks", 0)),
                            str(out)], env={**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime),
                                            "PYTHONPATH": str(runner.ROOT)},
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "summary.json").read_text())["notebooks"]["01_decide_approach"]["status"] == "ok"
    assert not list(runtime.glob("*.json")) and not (out / ".ftplay.lock").exists()


def test_the_default_playbook_runs_both_tasks_each_into_its_own_folder():
    groups = run_plan.plan_groups()
    assert [(g.task, g.sub, [t[0][:2] for t in g.todo]) for g in groups] == [
        ("classify", "", ["00", "01", "02", "03", "04"]), ("reply", "reply", ["00", "02", "03", "04"]),
        ("classify", "", ["05", "06"])]
    reply = {stem: values for stem, _, values in groups[1].todo}
    assert reply["02_curate_data"]["TASK"] == "reply"
    assert reply["02_curate_data"]["TRAIN_PATH"] == run_plan.TASK_PARAMS["reply"]["TRAIN_PATH"]
    assert "TASK" not in {k for _, _, v in groups[2].todo for k in v}, "06 and 05 serve and price every task"


def test_flat_data_parameters_make_a_one_task_run_and_other_tasks_keep_their_own_data():
    one = run_plan.plan_groups(None, {"TRAIN_PATH": "x.csv", "SEED": 3})
    assert [g.task for g in one] == ["classify", "classify"] and all(g.sub == "" for g in one)
    reply = run_plan.plan_groups(["02"], {"TASK": "reply", "TRAIN_PATH": "b.csv"})
    assert [(g.task, g.sub) for g in reply] == [("reply", "")]
    assert reply[0].todo[0][2]["TRAIN_PATH"] == "b.csv" and reply[0].todo[0][2]["TASK"] == "reply"
    both = run_plan.plan_groups(["02"], {"TASKS": ["classify", "reply"], "TRAIN_PATH": "mine.csv", "SEED": 3},
                                per_task={"reply": {"MAX_SEQ_LEN": 256}})
    (_, _, first), (_, _, second) = both[0].todo[0], both[1].todo[0]
    assert first["TRAIN_PATH"] == "mine.csv" and second["TRAIN_PATH"] == run_plan.TASK_PARAMS["reply"]["TRAIN_PATH"]
    assert first["SEED"] == second["SEED"] == 3, "a shared knob reaches every task"
    assert second["MAX_SEQ_LEN"] == 256 and "MAX_SEQ_LEN" not in first
    for bad in ({"TASKS": ["classify", "poem"]}, {"TASKS": ["reply", "reply"]}, {"TASK": "poem"},
                {"TASKS": ["classify", "reply"], "TASK": "reply"}):
        with pytest.raises(ConfigError):
            run_plan.plan_groups(None, bad)


def test_choices_checked_up_front_are_the_ones_their_modules_take():
    from ftplay import dataload, formats, recipes, serve, stages

    c = params.CHOICES
    assert c["SERVE_BACKEND"] == serve.BACKENDS and c["FORMAT"] == dataload.FORMATS
    assert c["ENGINE"] is recipes.ENGINES and set(c["SECOND_ADAPTER"]) == {"", *recipes.EXPERIMENTS}
    assert set(c["REPLY_FORMAT"]) == set(formats.FORMATS) and set(c["TASK"]) == set(stages.TASKS)
    nb03 = (run_plan.NOTEBOOK_DIR / "03_train_qlora.ipynb").read_text()
    assert all(f'\\"{r}\\": ' in nb03 for r in c["RECIPE"]), "03 maps every RECIPE the check allows"


def test_a_model_folder_whose_tokenizer_outgrows_its_embeddings_is_refused_before_00(tmp_path, tiny_ref):
    """8 tokens added to the tokenizer without resizing the embeddings passed pre-flight and died in 00 with
    `IndexError: index out of range in self`."""
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path / "model"
    shutil.copytree(tiny_ref.path, folder)
    todo = run_plan.plan(["00"], {"MODEL": str(folder)})
    run_checks.check_inputs(todo)   # the model as built: consistent
    tok = AutoTokenizer.from_pretrained(folder)
    tok.add_tokens([f"zzq{i}" for i in range(8)])
    tok.save_pretrained(folder)
    with pytest.raises(ConfigError, match=r"its tokenizer has [\d,]+ tokens but the model's embedding table [\d,]+ "
                                          r"\(config.json vocab_size\): the 8 beyond it"):
        run_checks.check_inputs(todo)


def test_an_endpoint_that_refuses_the_key_is_named_before_anything_runs(monkeypatch):
    """A real HTTP server on loopback answering 401 to /v1/models, and one answering 404 (a provider without
    /models: left to 00)."""
    import http.server
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(401 if self.path == "/v1/models" else 404)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        monkeypatch.delenv("FTPLAY_TEST_KEY", raising=False)
        refused = run_checks.endpoint_problems(url + "/v1", "m", "FTPLAY_TEST_KEY")
        assert refused == [f"ENDPOINT_URL='{url}/v1' refused no key ($FTPLAY_TEST_KEY is not set in this environment) "
                           "(HTTP 401): set ENDPOINT_API_KEY_ENV to the name of the environment variable holding a "
                           "valid key, and export it"]
        monkeypatch.setenv("FTPLAY_TEST_KEY", "sk-wrong")
        assert "refused the key in $FTPLAY_TEST_KEY" in run_checks.endpoint_problems(url + "/v1", "m",
                                                                                    "FTPLAY_TEST_KEY")[0]
        assert run_checks.endpoint_problems(url + "/other", "m", "FTPLAY_TEST_KEY") == []
    finally:
        server.shutdown()
