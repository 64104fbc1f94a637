"""Decide stage: the seed's checklist, with and without 00's measured baselines, and notebook 01."""
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
CURVE = [{"escalated": 0.0, "kept": 100, "accuracy_kept": 0.8}, {"escalated": 0.3, "kept": 70, "accuracy_kept": 0.93},
         {"escalated": 1.0, "kept": 0, "accuracy_kept": None}]
# what 00 records on the embedded default (rounded): every prompting system, the reference, the counts
MEASURED = {"n": 237, "rows_in": 1381, "rows_out": 1180,
            "systems": {"tfidf_logreg": {"macro_f1": 0.818}, "zero_shot": {"macro_f1": 0.047},
                        "few_shot_fixed": {"macro_f1": 0.059}, "few_shot_retrieved": {"macro_f1": 0.042},
                        "free_text_zero_shot": {"macro_f1": 0.0, "valid_rate": 0.0}},
            "best": {"name": "few_shot_fixed", "macro_f1": 0.059},
            "reference": {"name": "tfidf_logreg", "macro_f1": 0.818, "selective_curve": CURVE}}


def test_ready_checklist_proceeds():
    v = decide.assess(READY)
    assert v["proceed"] is True
    assert any("run 00 and re-run 01" in r for r in v["reasons"])
    assert any("cost AND quality" in t for t in v["todo"]) and v["recommendation"] == "fine-tune"


def test_untried_cheaper_options_block_and_are_listed():
    v = decide.assess(replace(READY, tried_retrieval=False, tried_routing=False))
    assert v["proceed"] is False
    assert any(t.startswith("try retrieval (RAG)") and "TRIED_RETRIEVAL" in t for t in v["todo"])
    assert any("routing" in t for t in v["todo"]) and v["recommendation"] == "try the cheaper options first"


def test_unknown_is_not_tried():
    v = decide.assess(decide.Checklist(labeled_examples=1_000))
    assert v["proceed"] is False and v["tried"]["tried_retrieval"]["tried"] is None
    assert any("retrieval (RAG): unknown (unknown: not measured, not answered)" in r for r in v["reasons"])
    v = decide.assess(decide.Checklist())   # nothing counted either
    assert v["labeled_examples"] is None and any("labelled examples: unknown" in r for r in v["reasons"])


def test_01s_measurements_answer_the_checklist():
    v = decide.assess(decide.Checklist(), MEASURED)
    assert v["proceed"] is True and v["recommendation"] == "fine-tune"
    assert all(t["tried"] is True for t in v["tried"].values())
    assert "escalating 30% keeps accuracy 0.930" in v["tried"]["tried_routing"]["source"]
    assert v["labeled_examples"] == 1180 and any("1,180 labelled examples (counted: 00's curated rows" in r
                                                 for r in v["reasons"])
    assert any("prompting falls short: best prompt macro-F1 0.059 < target 0.850" in r for r in v["reasons"])
    assert any("the cheap classifier falls short too: tfidf_logreg macro-F1 0.818 < target 0.850" in r
               for r in v["reasons"])


def test_a_classifier_that_reaches_the_target_ends_it():
    good = dict(MEASURED, reference=dict(MEASURED["reference"], macro_f1=0.91))
    v = decide.assess(decide.Checklist(), good)
    assert v["proceed"] is False and v["recommendation"] == "ship the classifier"
    assert any("tfidf_logreg macro-F1 0.910 >= target 0.850 on 237 held-out rows" in r for r in v["reasons"])
    assert decide.report(v).startswith("DO NOT fine-tune: ship the classifier")


def test_a_threshold_is_read_against_the_interval_not_the_point():
    """0.818 [0.756, 0.870] against 0.85 is neither "falls short" nor "reaches": the interval contains the target.
    Only an interval wholly above the target ends it with "ship the classifier"."""
    unclear = dict(MEASURED, reference=dict(MEASURED["reference"], macro_f1_ci=[0.756, 0.870]))
    v = decide.assess(decide.Checklist(), unclear)
    assert v["recommendation"] == "fine-tune"
    assert not any("falls short too" in r for r in v["reasons"])
    assert any("may already reach the target: tfidf_logreg macro-F1 0.818 [0.756, 0.870] contains the target 0.850"
               in r for r in v["reasons"])
    point_above = dict(MEASURED, reference=dict(MEASURED["reference"], macro_f1=0.86, macro_f1_ci=[0.80, 0.91]))
    assert decide.assess(decide.Checklist(), point_above)["recommendation"] != "ship the classifier"
    above = dict(MEASURED, reference=dict(MEASURED["reference"], macro_f1=0.93, macro_f1_ci=[0.88, 0.96]))
    assert decide.assess(decide.Checklist(), above)["recommendation"] == "ship the classifier"
    below = dict(MEASURED, reference=dict(MEASURED["reference"], macro_f1_ci=[0.76, 0.84]))
    assert any("falls short too: tfidf_logreg macro-F1 0.818 [0.760, 0.840] < target 0.850" in r
               for r in decide.assess(decide.Checklist(), below)["reasons"])
    prompt = dict(MEASURED, best=dict(MEASURED["best"], macro_f1=0.83, macro_f1_ci=[0.78, 0.88]))
    said = decide.assess(decide.Checklist(), prompt)["reasons"]
    assert any("prompting may or may not reach the target" in r for r in said)


def test_routing_is_read_with_the_kept_rows_interval():
    curve = [{"escalated": 0.0, "kept": 100, "accuracy_kept": 0.8, "accuracy_kept_ci": [0.71, 0.87]},
             {"escalated": 0.3, "kept": 70, "accuracy_kept": 0.914, "accuracy_kept_ci": [0.82, 0.96]},
             {"escalated": 1.0, "kept": 0, "accuracy_kept": None}]
    point, said = decide.routing_reading(curve, 0.9, "tfidf_logreg")
    assert point is curve[1]
    assert said == ("tfidf_logreg first: escalating 30% keeps accuracy 0.914 [0.820, 0.960] on the 70 kept rows (the "
                    "target 0.9 is inside that interval, so these rows do not show it is reached)")
    curve[1]["accuracy_kept_ci"] = [0.905, 0.96]
    assert decide.routing_reading(curve, 0.9, "t")[1].endswith("[0.905, 0.960] on the 70 kept rows (target 0.9)")
    assert decide.routing_reading(curve, 0.95, "x") == (None,
                                                        "x first: no escalated share keeps accuracy 0.95 on the rest")


def test_measured_shortfall_counts_as_tried():
    v = decide.assess(replace(READY, tried_retrieval=False, tried_routing=False), MEASURED)
    assert v["proceed"] is True   # 00 measured retrieval and routing: the answers were stale
    v = decide.assess(READY, SHORT)
    assert v["quality"] == 0.74 and "few_shot" in v["quality_source"]
    assert any("0.740 < target 0.850" in r for r in v["reasons"])


def test_prompting_already_good_enough():
    good = {"best": {"name": "few_shot", "macro_f1": 0.9}}
    assert decide.assess(READY, good)["proceed"] is False                     # format reason, target met
    assert decide.assess(replace(READY, reason="narrow_high_volume"), good)["proceed"] is True   # cost reason
    assert decide.assess(replace(READY, current_quality=0.9))["proceed"] is False


def test_baselines_without_best_use_systems():
    assert decide.best_baseline({"systems": SHORT["systems"]}) == ("few_shot", 0.74)
    assert decide.best_baseline({"systems": {"tfidf_logreg": {"macro_f1": 0.9}, "zero_shot": {"macro_f1": 0.1}}}) == \
        ("zero_shot", 0.1)   # the classifier is not a prompt
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
    assert text.startswith("DO NOT fine-tune: keep improving the prompt") and "next:" in text


# ---------------------------------------------------------------- notebook 01
@pytest.mark.notebook
def test_notebook_01_before_and_after_00(tmp_path, run_notebook):
    out = run_notebook("01_decide_approach", tmp_path)
    assert out["proceed"] is False and out["measured_baselines"] is False
    assert any("run 00 and re-run 01" in r for r in out["reasons"])
    assert out["config"]["tried_retrieval"] is None and out["labeled_examples"] is None
    rundir.write_json(tmp_path / "00_baseline_prompting.json", MEASURED)
    out = run_notebook("01_decide_approach", tmp_path, CURRENT_QUALITY=0.5)
    assert out["proceed"] is True and out["measured_baselines"] is True
    assert out["quality"] == 0.059 and out["labeled_examples"] == 1180


def test_the_reply_task_is_decided_on_the_share_of_replies_in_format():
    """00's reply record: quality is the best prompt's format validity; structured output and routing
    are not applicable to a generated reply (neither tried nor a reason to stop); a canned reply is
    quoted, never 'ship the classifier'."""
    reply = {"task": "reply", "n": 228, "rows_out": 1150,
             "systems": {"zero_shot": {"valid_rate": 0.0, "chrf": 20.0}, "few_shot_fixed": {"valid_rate": 0.1},
                         "few_shot_retrieved": {"valid_rate": 0.2}, "nearest_reply": {"valid_rate": 1.0}},
             "best": {"name": "few_shot_retrieved", "metric": "chrf", "valid_rate": 0.2, "chrf": 30.0},
             "reference": {"name": "nearest_reply", "valid_rate": 1.0, "field_accuracy": 0.31, "chrf": 84.5}}
    assert decide.best_baseline(reply) == ("few_shot_retrieved", 0.2)
    v = decide.assess(decide.Checklist(reason="format_or_style"), reply)
    assert v["proceed"] is True, v["reasons"]
    assert v["tried"]["tried_routing"]["applicable"] is False and v["tried"]["tried_routing"]["tried"] is None
    text = "\n".join(v["reasons"])
    assert "replies in format 0.200 < target 0.850" in text and "field accuracy 0.310, chrF 84.5" in text
    assert "routing (a cheap model first, escalate the rest): not applicable" in text
    assert "ship the classifier" not in text
