"""The runner: parameter plumbing, failure reporting, the summary."""
import json
import os
from pathlib import Path

import nbformat
import pytest

from ftplay import cli, runner
from ftplay.errors import ConfigError


def test_unknown_parameter_and_notebook_are_rejected_up_front(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("MODELL: embedded\nnotebooks:\n  03_train_qlora:\n    EPOCH: 1\n")
    params, per = runner.load_params(p)
    with pytest.raises(ConfigError) as e:
        runner.plan(None, params, per)
    assert "MODELL is declared by no notebook" in str(e.value)
    assert "03_train_qlora has no parameter EPOCH" in str(e.value)
    with pytest.raises(ConfigError, match="--only 09: no such notebook"):
        runner.plan(["09"])


def test_bad_yaml_names_the_line(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("MODEL: embedded\nSEED: [1,\n")
    with pytest.raises(ConfigError, match="line"):
        runner.load_params(p)


def test_plan_passes_each_notebook_only_its_parameters():
    todo = runner.plan(["02", "03"], {"MODEL": "embedded", "SEED": 5}, {"03_train_qlora": {"MAX_STEPS": 2}})
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
def test_failing_notebook_exits_non_zero_naming_notebook_and_cell(tmp_path, monkeypatch, capsys):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    ok = nbformat.v4.new_notebook()
    ok.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    c = nbformat.v4.new_code_cell('RUN_DIR = "x"  # where')
    c.metadata["tags"] = ["parameters"]
    ok.cells = [c, nbformat.v4.new_code_cell("import json, pathlib; pathlib.Path(RUN_DIR, '00_decide_approach.json').write_text('{}')")]
    nbformat.write(ok, str(nbdir / "00_decide_approach.ipynb"))
    _failing_notebook(nbdir / "01_baseline_prompting.ipynb")
    _failing_notebook(nbdir / "02_curate_data.ipynb")
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", nbdir)
    out = tmp_path / "run"
    rc = cli.main(["run", "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "01_baseline_prompting failed at cell" in err and "planted failure" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notebooks"]["00_decide_approach"]["status"] == "ok"
    assert summary["notebooks"]["01_baseline_prompting"]["status"] == "failed"
    assert "02_curate_data" not in summary["notebooks"], "later notebooks do not run"
    assert (out / "00_decide_approach.json").exists(), "what ran before stays"
    assert summary["decision"]["ship"] is False


def test_summary_reads_recorded_results(tmp_path):
    ev = {"heldout": {"n": 10, "systems": {"base": {"accuracy": .1, "macro_f1": .05}, "finetuned": {"accuracy": .9, "macro_f1": .8}}},
          "production": {"n": 5, "systems": {"base": {"accuracy": .2, "macro_f1": .1}, "finetuned": {"accuracy": .8, "macro_f1": .7}}},
          "decision": {"ship": True, "reasons": ["held-out: better"]}}
    (tmp_path / "04_evaluate.json").write_text(json.dumps(ev))
    (tmp_path / "05_compare_costs.json").write_text(json.dumps({"verdict": {"cheaper": False, "headline": "h", "reasons": ["cost: no"]}}))
    s = runner.summarise(tmp_path, {"04_evaluate": {"status": "ok", "seconds": 1.0}})
    assert s["heldout"]["finetuned"]["macro_f1"] == .8 and s["production"]["n"] == 5
    assert s["decision"]["ship"] is False and "cost: no" in s["decision"]["reasons"]
    assert "ship: NO" in runner.format_summary(s)


def test_bad_inputs_stop_before_any_notebook_runs(tmp_path):
    one = tmp_path / "one_label.csv"
    one.write_text("text,label\nmy card was charged,billing\nrefund please now,billing\n")
    with pytest.raises(ConfigError) as e:
        runner.check_inputs(runner.plan(["01", "02"], {"MODEL": str(tmp_path / "nope"), "PRODUCTION_PATH": "data/missing.csv"}))
    msg = str(e.value)
    assert "MODEL=" in msg and "does not exist" in msg
    assert "PRODUCTION_PATH='data/missing.csv' does not exist" in msg
    with pytest.raises(ConfigError, match="has 1 label"):
        runner.check_inputs(runner.plan(["02"], {"TRAIN_PATH": str(one)}))


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
    params, per = runner.load_params(p)
    with pytest.raises(ConfigError) as e:
        runner.run(p, out=tmp_path / "run", progress=lambda *_: None)
    msg = str(e.value)
    for text in ("EPOCHS='three' (str) must be Optional[float]", "LORA_R='16' (str) must be Optional[int] "
                 "(written in quotes: drop them)", "LEARNING_RATE='2e-3' (str) must be Optional[float] (YAML read it "
                 "as text: write 0.002", "LOAD_IN_4BIT=1 (int) must be bool", "TARGET_MODULES=['q_proj', 3] (list)",
                 "N_BOOT=100.5 (float) must be int", "01_baseline_prompting: SEED='7' (str) must be int"):
        assert text in msg, msg
    assert not (tmp_path / "run").exists(), "nothing runs or is written before the types are right"
    runner.check_types(runner.plan(None, {"MODEL": "embedded", "SEED": 7},
                                   {"03_train_qlora": {"EPOCHS": 2, "LEARNING_RATE": 0.002, "LORA_R": None,
                                                       "TARGET_MODULES": ["q_proj"]}}))


def test_a_relative_out_is_the_callers_and_a_run_directory_is_locked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = {}
    monkeypatch.setattr(runner, "_execute", lambda todo, run_dir, progress: seen.setdefault("dir", run_dir))
    runner.run(None, only=["00"], out="rel/run", progress=lambda *_: None)
    assert seen["dir"] == tmp_path / "rel" / "run" and seen["dir"].is_absolute()
    assert not (seen["dir"] / ".ftplay.lock").exists(), "released when the run ends"
    (seen["dir"] / ".ftplay.lock").write_text(str(os.getppid()))  # a live process holds it
    with pytest.raises(ConfigError, match=f"being written by another ftplay run \\(pid {os.getppid()}\\)"):
        runner.run(None, only=["00"], out="rel/run", progress=lambda *_: None)
    (seen["dir"] / ".ftplay.lock").write_text("999999999")  # a killed run's lock is taken over
    runner.run(None, only=["00"], out="rel/run", progress=lambda *_: None)
    assert not (seen["dir"] / ".ftplay.lock").exists()


def test_which_names_are_secrets_and_what_is_redacted():
    from ftplay import rundir

    assert [n for n in ("API_KEY", "HF_TOKEN", "VLLM_API_KEY", "db-password", "MAX_TOKENS", "ENDPOINT_API_KEY_ENV",
                        "MODEL", "TOKENIZER", "bos_token", "eos_token_id") if rundir.is_secret(n)] == ["API_KEY", "HF_TOKEN", "VLLM_API_KEY",
                                                                         "db-password"]
    assert rundir.redact({"API_KEY": "sk-1", "x": [{"HF_TOKEN": "t"}], "MAX_TOKENS": 8, "EMPTY_KEY": ""}) == {
        "API_KEY": "***", "x": [{"HF_TOKEN": "***"}], "MAX_TOKENS": 8, "EMPTY_KEY": ""}


def test_a_notebook_run_before_what_it_needs_says_which_to_run_first(tmp_path):
    with pytest.raises(ConfigError) as e:
        runner.run(None, only=["03", "04"], out=tmp_path / "run", progress=lambda *_: None)
    assert str(e.value).count("needs 02_curate_data's output") == 2 and "run 02 first (--only 02,03 --out" in str(e.value)
    assert "04_evaluate needs 03_train_qlora" not in str(e.value), "03 is in the plan before 04"
    with pytest.raises(ConfigError, match="06_serve_vllm needs 03_train_qlora's output.*or set ADAPTER_DIR"):
        runner.check_order(runner.plan(["06"]), tmp_path)
    runner.check_order(runner.plan(["06"], per_notebook={"06_serve_vllm": {"ADAPTER_DIR": "x"}}), tmp_path)
    runner.check_order(runner.plan(None), None)  # the whole playbook needs nothing beforehand
    (tmp_path / "02_curate_data.json").write_text("{}")
    runner.check_order(runner.plan(["03"]), tmp_path)


def test_ctrl_c_is_one_line_naming_the_notebook_and_report_refuses_a_non_run(tmp_path, monkeypatch, capsys):
    def interrupted(todo, run_dir, progress):
        runner.CURRENT.update(stem="03_train_qlora", notebook=run_dir / "notebooks" / "03_train_qlora.ipynb",
                              run_dir=run_dir)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_execute", interrupted)
    assert cli.main(["run", "--only", "00", "--out", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted (Ctrl-C) in 03_train_qlora" in err[0] and "--only 03 --out" in err[0]
    assert not (tmp_path / "run" / ".ftplay.lock").exists(), "the lock goes with the run"
    runner.CURRENT.clear()
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", str(tmp_path / "empty")]) == 2
    assert "is not a run directory" in capsys.readouterr().err and not (tmp_path / "empty" / "ship_report.html").exists()
