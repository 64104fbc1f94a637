"""Decide stage: the seed's checklist, with and without 01's measured baselines, and notebook 00."""
from dataclasses import replace
from pathlib import Path

import pytest

from ftplay import decide, rundir
from ftplay.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
READY = decide.Checklist(tried_prompting=True, tried_few_shot=True, tried_structured_output=True,
                         tried_retrieval=True, tried_routing=True, reason="format_or_style",
                         target_quality=0.85, labeled_examples=1_000)
SHORT = {"systems": {"zero_shot": {"accuracy": 0.7, "macro_f1": 0.62}, "few_shot": {"accuracy": 0.8, "macro_f1": 0.74}},
         "best": {"name": "few_shot", "macro_f1": 0.74}}


def test_ready_checklist_proceeds():
    v = decide.assess(READY)
    assert v["proceed"] is True
    assert any("re-run 00 after 01" in r for r in v["reasons"])
    assert any("cost AND quality" in t for t in v["todo"])


def test_untried_cheaper_options_block_and_are_listed():
    v = decide.assess(replace(READY, tried_retrieval=False, tried_routing=False))
    assert v["proceed"] is False
    assert "try retrieval (RAG)" in v["todo"] and any("routing" in t for t in v["todo"])


def test_measured_shortfall_counts_as_tried():
    v = decide.assess(replace(READY, tried_retrieval=False, tried_routing=False), SHORT)
    assert v["proceed"] is True
    assert v["quality"] == 0.74 and "few_shot" in v["quality_source"]
    assert any("0.740 < target 0.850" in r for r in v["reasons"])


def test_prompting_already_good_enough():
    good = {"best": {"name": "few_shot", "macro_f1": 0.9}}
    assert decide.assess(READY, good)["proceed"] is False                     # format reason, target met
    assert decide.assess(replace(READY, reason="narrow_high_volume"), good)["proceed"] is True   # cost reason
    assert decide.assess(replace(READY, current_quality=0.9))["proceed"] is False


def test_baselines_without_best_use_systems():
    assert decide.best_baseline({"systems": SHORT["systems"]}) == ("few_shot", 0.74)
    assert decide.best_baseline(None) is None and decide.best_baseline({}) is None


def test_no_reason_blocks():
    v = decide.assess(replace(READY, reason="none"))
    assert v["proceed"] is False and any("no fine-tuning reason" in r for r in v["reasons"])


@pytest.mark.parametrize("n, proceed, word", [(150, False, "collect"), (300, True, "grow"), (2_000, True, None)])
def test_example_counts(n, proceed, word):
    v = decide.assess(replace(READY, labeled_examples=n))
    assert v["proceed"] is proceed
    if word:
        assert any(word in t for t in v["todo"])


def test_validation_names_every_parameter():
    with pytest.raises(ConfigError) as e:
        decide.Checklist(reason="vibes", target_quality=1.5, labeled_examples=-1, current_quality=2.0)
    assert len(e.value.problems) == 4
    for name in ("REASON", "TARGET_QUALITY", "LABELED_EXAMPLES", "CURRENT_QUALITY"):
        assert name in str(e.value)


def test_report_text():
    text = decide.report(decide.assess(replace(READY, reason="none")))
    assert text.startswith("DO NOT fine-tune yet") and "next:" in text


# ---------------------------------------------------------------- notebook 00
@pytest.mark.notebook
def test_notebook_00_before_and_after_01(tmp_path, run_notebook):
    out = run_notebook("00_decide_approach", tmp_path, TRIED_RETRIEVAL=False)
    assert out["proceed"] is False and out["measured_baselines"] is False
    assert any("re-run 00 after 01" in r for r in out["reasons"])
    assert out["config"]["tried_retrieval"] is False
    rundir.write_json(tmp_path / "01_baseline_prompting.json", SHORT)
    out = run_notebook("00_decide_approach", tmp_path, TRIED_RETRIEVAL=False, CURRENT_QUALITY=0.5)
    assert out["proceed"] is True and out["measured_baselines"] is True
    assert out["quality"] == 0.74
