"""Re-fine-tune cadence: changed-base detection, the recorded parameters, the side-by-side comparison, refit."""
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import nbformat
import pytest

from ftplay import cli, identity, models, refit, run_checks, run_plan, runner
from ftplay.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bases():
    """Two embedded bases of different seeds: different weights, so different revisions (both cached)."""
    return models.resolve("embedded"), models.resolve("embedded:1")


def adapter_on(path, ref):
    """An adapter folder as far as the base check reads it: ftplay_adapter.json naming its base."""
    path.mkdir(parents=True)
    (path / "ftplay_adapter.json").write_text(json.dumps({"base": asdict(ref)}))
    return path


def test_changed_base_is_detected_and_the_same_base_is_quiet(bases, tmp_path):
    old, new = bases
    adapter = adapter_on(tmp_path / "adapter", old)
    changed = identity.check_base(adapter, "embedded:1")
    assert changed.changed is True
    assert changed.message == (f"adapter trained on embedded@{old.revision}, base is now embedded:1@{new.revision}: "
                               "re-fine-tune (ftplay refit --from RUN_DIR --model embedded:1) or set MODEL='embedded'")
    same = identity.check_base(adapter, old)
    assert same.changed is False and same.message == f"base revision {old.revision} matches"
    assert identity.require_same_base(adapter, "embedded") == same
    with pytest.raises(ConfigError, match="re-fine-tune"):
        identity.require_same_base(adapter, "embedded:1")


def test_a_run_directory_is_checked_through_its_manifest(bases, tmp_path):
    old, new = bases
    (tmp_path / "03_train_qlora.json").write_text(json.dumps({"base_model": asdict(new)}))
    assert identity.check_base(tmp_path, "embedded").changed is True
    assert identity.check_base(tmp_path, "embedded:1").changed is False
    assert identity.check_base(tmp_path, "embedded:1").source == str(tmp_path / "03_train_qlora.json")


def test_an_adapter_without_a_pinned_revision_is_unknown_and_an_empty_folder_an_error(bases, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": bases[0].path}))
    check = identity.check_base(bare, "embedded")
    assert check.changed is None and "pins no base revision" in check.message
    with pytest.raises(ConfigError, match="records no base model"):
        identity.check_base(tmp_path, "embedded")


def test_runner_stops_a_reused_adapter_on_a_changed_base(bases, tmp_path):
    old, _ = bases
    run = tmp_path / "run"
    run.mkdir()
    (run / "03_train_qlora.json").write_text(json.dumps({"base_model": asdict(old), "adapter_dir": "x"}))
    with pytest.raises(ConfigError) as e:
        run_checks.check_adapters(run_plan.plan(["04", "05"], {"MODEL": "embedded:1"}), run)
    assert [p.split(":")[0] for p in e.value.problems] == ["04_evaluate"]  # one problem per adapter and base
    assert "base is now embedded:1@" in str(e.value)
    run_checks.check_adapters(run_plan.plan(["04", "05"], {"MODEL": "embedded"}), run)  # same base: quiet
    run_checks.check_adapters(run_plan.plan(["03", "04"], {"MODEL": "embedded:1"}), run)  # 03 trains a new adapter
    with pytest.raises(ConfigError, match="ADAPTER_DIR='nope/adapter' does not exist"):
        run_checks.check_adapters(run_plan.plan(["04"], {"MODEL": "embedded", "ADAPTER_DIR": "nope/adapter"}), run)
    foreign = adapter_on(tmp_path / "foreign", bases[1])
    with pytest.raises(ConfigError, match="05_serve_vllm: adapter trained on embedded:1@"):
        run_checks.check_adapters(run_plan.plan(["05"], {"ADAPTER_DIR": str(foreign)}), None)


def test_recorded_params_are_the_executed_defaults_overridden_by_the_injected(tmp_path):
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.read(str(ROOT / "notebooks" / "03_train_qlora.ipynb"), as_version=4)
    nb.metadata["papermill"] = {"parameters": {"RUN_DIR": "runs/old", "MAX_STEPS": 2, "MODEL": "embedded"}}
    nbformat.write(nb, str(tmp_path / "notebooks" / "03_train_qlora.ipynb"))
    shutil.copy(ROOT / "notebooks" / "02_curate_data.ipynb", tmp_path / "notebooks")
    rec = run_plan.recorded_params(tmp_path)
    assert list(rec) == ["02_curate_data", "03_train_qlora"]
    assert rec["03_train_qlora"]["MAX_STEPS"] == 2 and rec["03_train_qlora"]["BATCH_SIZE"] is None
    assert rec["03_train_qlora"]["LORA_R"] is None and rec["02_curate_data"]["HELDOUT_FRACTION"] == 0.2


def test_refit_params_replace_the_model_and_nothing_else():
    recorded = {"03_train_qlora": {"RUN_DIR": "runs/old", "MODEL": "embedded", "MAX_STEPS": 2, "OLD_KNOB": 1},
                "04_evaluate": {"RUN_DIR": "runs/old", "MODEL": "embedded", "ADAPTER_DIR": "runs/old/train/adapter",
                                "N_BOOT": 50},
                "01_decide_approach": {"RUN_DIR": "runs/old", "LABELED_EXAMPLES": 900},
                "09_gone": {"RUN_DIR": "x"}}
    per, dropped = refit.refit_params(recorded, "embedded:1")
    assert per == {"03_train_qlora": {"MODEL": "embedded:1", "MAX_STEPS": 2},
                   "04_evaluate": {"MODEL": "embedded:1", "ADAPTER_DIR": "", "N_BOOT": 50},
                   "01_decide_approach": {"LABELED_EXAMPLES": 900}}
    assert dropped == {"03_train_qlora": ["OLD_KNOB"], "09_gone": ["RUN_DIR"]}


def _run(path, base, rev, heldout_ft, prod_ft, seconds, monthly, savings, ship=True, train_fp="t1"):
    path.mkdir()
    recs = {
        "02_curate_data": {"fingerprints": {"train": train_fp, "heldout": "h1", "production": "p1"}},
        "03_train_qlora": {"base_model": {"requested": base, "revision": rev}, "steps": 100, "seconds": seconds,
                           "train_loss": 1.0, "eval_loss": 1.25},
        "04_evaluate": {"heldout": {"n": 200, "systems": {
            "base": {"macro_f1": 0.1, "macro_f1_ci": [0.05, 0.15]},
            "finetuned": {"macro_f1": heldout_ft, "macro_f1_ci": [heldout_ft - 0.1, heldout_ft + 0.1]}},
            "paired": {"finetuned_vs_base": {"macro_f1_diff": heldout_ft - 0.1, "macro_f1_diff_ci": [0.2, 0.4],
                                             "mcnemar_p": 0.001}}},
            "production": {"n": 100, "systems": {"base": {"macro_f1": 0.2, "macro_f1_ci": [0.1, 0.3]},
                                                 "finetuned": {"macro_f1": prod_ft, "macro_f1_ci": [0.3, 0.6]}}},
            "decision": {"ship": ship, "reasons": []}},
        "06_compare_costs": {"verdict": {"best_option": "self_hosted_vllm", "cheaper": True},
                             "options": [{"name": "self_hosted_vllm", "monthly_cost": monthly,
                                          "savings_vs_hosted": savings, "training_cost": 0.5}]},
    }
    for stem, rec in recs.items():
        (path / f"{stem}.json").write_text(json.dumps(rec))
    return path


def test_compare_puts_two_runs_side_by_side(tmp_path):
    old = _run(tmp_path / "old", "embedded", "aaaa", 0.5, 0.45, 100.0, 900.0, 8100.0)
    new = _run(tmp_path / "new", "embedded:1", "bbbb", 0.625, 0.5, 160.0, 900.0, 8100.0, ship=False)
    cmp = refit.compare(old, new)
    rows = {r["metric"]: r for r in cmp["rows"]}
    assert [r["metric"] for r in cmp["rows"]] == [m for m, _ in refit.METRICS]
    assert (rows["base model"]["old"], rows["base model"]["new"]) == ("embedded@aaaa", "embedded:1@bbbb")
    assert rows["held-out fine-tuned macro-F1"] == {"metric": "held-out fine-tuned macro-F1", "old": 0.5, "new": 0.625,
                                                    "old_ci": [0.4, 0.6], "new_ci": [0.525, 0.725], "delta": 0.125}
    assert rows["held-out base macro-F1"]["delta"] == 0.0
    assert rows["production fine-tuned macro-F1"]["delta"] == pytest.approx(0.05)
    assert rows["held-out fine-tuned - base"]["new"] == 0.525 and rows["held-out fine-tuned - base"]["delta"] == 0.125
    assert rows["held-out McNemar p"]["delta"] is None and rows["held-out n"]["delta"] is None
    assert (rows["gate"]["old"], rows["gate"]["new"]) == ("ship", "stop")
    assert rows["training seconds"]["delta"] == 60.0 and rows["cost: $/month"]["delta"] == 0.0
    assert rows["cost: savings $/month"]["new"] == 8100.0 and rows["cost: training $"]["old"] == 0.5
    assert rows["ship (report)"]["old"] == "no"  # 00, 05 were not recorded: the report does not ship
    assert cmp["same_data"] is True
    text = refit.format_compare(cmp)
    assert "held-out fine-tuned macro-F1" in text and "0.625 [0.525, 0.725]" in text and "+0.125" in text
    assert "same data: yes" in text
    other = _run(tmp_path / "other", "embedded:1", "bbbb", 0.5, 0.5, 1.0, 1.0, 1.0, train_fp="t2")
    assert refit.compare(old, other)["same_data"] is False
    assert refit.compare(old, tmp_path)["same_data"] is None  # nothing recorded: unknown, no crash


def test_refit_needs_a_run_that_trained(tmp_path):
    with pytest.raises(ConfigError, match="no executed notebooks"):
        refit.refit(tmp_path, "embedded:1")
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "02_curate_data.ipynb", tmp_path / "notebooks")
    with pytest.raises(ConfigError, match="did not execute 03_train_qlora"):
        refit.refit(tmp_path, "embedded:1")


# 10 steps: the loss falls; no triage production rows (scored by the same code as the held-out rows). A flat
# data parameter makes a run one task unless TASKS names more: both tasks are named
SMALL = {"MODEL": "embedded", "HELDOUT_FRACTION": 0.1, "MAX_STEPS": 10, "N_BOOT": 50, "PRODUCTION_PATH": "",
         "TASKS": ["classify", "reply"]}
# the reply task is re-fitted too, small: 24 held-out replies of at most 32 tokens, no production rows (its 04
# generated 315 replies of up to 102 tokens, 90 s of the test's 7.5 minutes, twice)
SMALL_REPLY = {"reply": {"PRODUCTION_PATH": "", "MAX_NEW_TOKENS": 32, "notebooks": {"04_evaluate": {"MAX_ROWS": 24}}}}


@pytest.mark.notebook
@pytest.mark.slow
def test_refit_reruns_the_playbook_on_a_new_base(tmp_path, capsys, bases):
    """A small real run on `embedded` (02, 03, 04, 06), then `ftplay refit` onto `embedded:1`."""
    old, new = bases
    old_dir, summary = runner.run(only=["02", "03", "04", "06"], out=tmp_path / "old", progress=lambda *_: None,
                                  params=SMALL, per_task=SMALL_REPLY)
    assert {v["status"] for v in summary["notebooks"].values()} == {"ok"}, summary["notebooks"]
    assert cli.main(["refit", "--from", str(old_dir), "--model", "embedded:1", "--out", str(tmp_path / "new")]) == 0
    out = capsys.readouterr().out
    assert f"embedded@{old.revision}" in out and f"embedded:1@{new.revision}" in out and "same data: yes" in out
    cmp = json.loads((tmp_path / "new" / "refit_compare.json").read_text())
    assert cmp["base_check"]["changed"] is True and cmp["same_data"] is True
    rows = {r["metric"]: r for r in cmp["rows"]}
    assert rows["base model"]["new"] == f"embedded:1@{new.revision}" and rows["training steps"]["new"] == 10
    assert rows["held-out n"]["old"] == rows["held-out n"]["new"] > 0
    assert all(isinstance(rows[f"held-out {s} macro-F1"][k], float)
               for s in ("base", "fine-tuned") for k in ("old", "new"))
    # the same parameters, except MODEL and RUN_DIR
    before, after = run_plan.recorded_params(old_dir), run_plan.recorded_params(tmp_path / "new")

    def strip(rec):
        return {s: {k: v for k, v in p.items() if k not in ("MODEL", "RUN_DIR")} for s, p in rec.items()}

    assert strip(before) == strip(after) and list(after) == ["02_curate_data", "03_train_qlora", "04_evaluate",
                                                             "06_compare_costs"]
    assert {p["MODEL"] for p in after.values() if "MODEL" in p} == {"embedded:1"}
    summary = json.loads((tmp_path / "new" / "summary.json").read_text())
    assert summary["params"] == after and (tmp_path / "new" / "ship_report.html").exists()
    # every task of the old run is re-fitted, the reply task with its own small parameters
    assert {k: v["status"] for k, v in summary["notebooks"].items() if k.startswith("reply/")} == {
        f"reply/{s}": "ok" for s in ("02_curate_data", "03_train_qlora", "04_evaluate")}
    reply = json.loads((tmp_path / "new" / "reply" / "03_train_qlora.json").read_text())
    assert reply["task"] == "reply" and reply["base_model"]["requested"] == "embedded:1"
    assert json.loads((tmp_path / "new" / "reply" / "04_evaluate.json").read_text())["heldout"]["n"] == 24
