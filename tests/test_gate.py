"""04's gate on real scores: predictions scored and compared by ftplay.evaluate, decided by ftplay.gate."""
import pytest

from ftplay import evaluate, gate, tasks
from ftplay.errors import ConfigError
from ftplay.evaluate import Prediction

LABELS = ["a", "b"]
Y = ["a"] * 20 + ["b"] * 20


def preds(labels):
    return [Prediction(label, 0.9) for label in labels]


def run(ft, base, alts=None, prod=None, cfg=gate.GateConfig()):
    """Score fine-tune, base and alternatives on Y (and production `prod`: {name: labels}), then decide."""
    P = {"finetuned": preds(ft), "base": preds(base)} | {k: preds(v) for k, v in (alts or {}).items()}
    results = {"heldout": {k: evaluate.score(Y, p, LABELS, n_boot=100) for k, p in P.items()}}
    paired = {"heldout": {f"finetuned_vs_{k}": evaluate.paired_difference(Y, P["finetuned"], p, LABELS, 200)
                          for k, p in P.items() if k != "finetuned"}}
    if prod:
        PP = {k: preds(v) for k, v in prod.items()}
        results["production"] = {k: evaluate.score(Y, p, LABELS, n_boot=100) for k, p in PP.items()}
        paired["production"] = {f"finetuned_vs_{k}": evaluate.paired_difference(Y, PP["finetuned"], p, LABELS, 200)
                                for k, p in PP.items() if k != "finetuned"}
    return tasks.get("classify").decide(results, paired, cfg, leakage={"exact": 0, "near": 0})


def status(d, name):
    return next(c for c in d["checks"] if c["name"] == name)["status"]


HALF = ["a"] * 20 + ["a"] * 10 + ["b"] * 10          # gets half the b's
GOOD = {"finetuned": Y, "base": ["a"] * 40, "tfidf_logreg": HALF}


def test_a_tie_with_the_base_stops_and_names_the_knobs():
    d = run(HALF, HALF)
    assert d["verdict"] == "stop" and status(d, "beats_base_heldout") == "block"
    assert "McNemar p=1" in d["reasons"][0] and "EPOCHS" in d["reasons"][0]


def test_a_sign_is_not_a_difference():
    one_more = HALF[:30] + ["b"] + HALF[31:]   # one more row right than the base
    d = run(one_more, HALF)
    assert status(d, "beats_base_heldout") == "block"


def test_beating_everything_everywhere_ships_only_with_the_replaced_model_scored():
    d = run(Y, ["a"] * 40, {"tfidf_logreg": HALF}, prod=GOOD)
    assert d["verdict"] == "not proven" and status(d, "replaced_model") == "not proven"
    d = run(Y, ["a"] * 40, {"tfidf_logreg": HALF, "endpoint_structured": HALF}, prod=GOOD)
    assert d["verdict"] == "ship" and d["ship"] is True and d["better"] is None
    assert all(c["status"] == "pass" for c in d["checks"])


def test_the_replaced_model_check_reads_the_comparison_not_only_its_presence():
    """Scored is not matched: the replaced model better beyond the interval blocks and says by how much; a
    difference whose interval reaches 0 matches; a fine-tune above it beats it."""
    def replaced(d):
        return next(c for c in d["checks"] if c["name"] == "replaced_model")

    worse = replaced(run(HALF, ["a"] * 40, {"endpoint_structured": Y}, prod=GOOD))
    assert worse["status"] == "block" and "does not match the model it would replace" in worse["text"]
    assert "endpoint_structured" in worse["text"] and "95% CI -" in worse["text"]
    assert worse["field"] == "heldout.paired.finetuned_vs_endpoint_structured"
    tie = replaced(run(HALF, ["a"] * 40, {"endpoint_structured": HALF}, prod=GOOD))
    assert tie["status"] == "pass" and "matches (the interval reaches 0)" in tie["text"]
    above = replaced(run(Y, ["a"] * 40, {"endpoint_structured": HALF}, prod=GOOD))
    assert above["status"] == "pass" and above["text"].startswith("it beats the model it would replace")


def test_a_better_classifier_blocks_and_is_named():
    d = run(HALF, ["a"] * 40, {"tfidf_logreg": Y, "endpoint_structured": HALF}, prod=GOOD)
    assert d["verdict"] == "stop" and status(d, "alternatives_heldout") == "block"
    assert d["better"]["name"] == "tfidf_logreg" and d["better"]["macro_f1"] == 1.0
    assert any("tfidf_logreg is better: macro-F1 1.000" in r for r in d["reasons"])


def test_production_drop_and_class_floor_block():
    prod = {"finetuned": ["a"] * 40, "base": ["b"] * 40, "tfidf_logreg": ["a"] * 40}   # never says b in production
    d = run(Y, ["a"] * 40, {"tfidf_logreg": HALF, "endpoint_structured": HALF}, prod=prod)
    assert status(d, "production_drop") == "block" and status(d, "class_floor") == "block"
    assert d["classes"][0]["label"] == "b" and d["classes"][0]["production_f1"] == 0.0
    assert "b (production 0.00 on 20 rows; floor 0.2)" in next(r for r in d["reasons"] if "F1 floor" in r)


def test_read_classes_says_which_labels_fall_under_the_floor():
    table = [{"label": "security", "heldout_n": 12, "heldout_f1": 0.0, "heldout_base_f1": 0.0, "production_n": 30,
              "production_f1": 0.0, "production_base_f1": 0.1},
             {"label": "billing", "heldout_n": 40, "heldout_f1": 0.7, "heldout_base_f1": 0.1, "production_n": 30,
              "production_f1": 0.69, "production_base_f1": 0.1}]
    text = tasks.get("classify").read_units(table, gate.GateConfig())
    assert text.startswith("The worst label is security: F1 0.00 held-out, 0.00 production")
    assert "1 of 2 labels fall under their floor (security)" in text


def test_gate_parameters_are_checked_together():
    with pytest.raises(ConfigError) as e:
        gate.GateConfig(alpha=2, min_class_f1=-1, critical_labels="security")
    assert len(e.value.problems) == 3 and "ALPHA=2" in str(e.value) and "CRITICAL_LABELS" in str(e.value)


def test_read_comparisons_says_what_wins_ties_and_loses():
    def d(diff, lo, hi):
        return {"macro_f1_diff": diff, "macro_f1_diff_ci": [lo, hi]}

    text = tasks.get("classify").read_comparisons({"heldout": {"finetuned_vs_base": d(0.458, 0.383, 0.52),
                                              "finetuned_vs_endpoint": d(0.01, -0.05, 0.07),
                                              "finetuned_vs_tfidf_logreg": d(-0.313, -0.393, -0.237)}})
    assert text == ("On held-out rows the fine-tune beats base (+0.458); it cannot be told apart from endpoint "
                    "(+0.010); tfidf_logreg (-0.313) beats it.")


def test_a_request_log_run_reads_the_replaced_model_from_the_teacher_check():
    """Trained on a hosted model's answers: without an endpoint scored in 00, the gate reads 04's teacher_check
    (both scored against people's labels); an endpoint, when scored, still comes first."""
    def replaced(teacher_right, ft_right, alts=None):
        people = Y
        rows = [{"label": t, "human_label": h} for t, h in zip(teacher_right, people)]
        check = evaluate.teacher_check(rows, {"finetuned": preds(ft_right)}, LABELS, n_boot=200)
        P = {"finetuned": preds(ft_right), "base": preds(["a"] * 40)} | {k: preds(v) for k, v in (alts or {}).items()}
        results = {"heldout": {k: evaluate.score(Y, p, LABELS, n_boot=100) for k, p in P.items()}}
        paired = {"heldout": {f"finetuned_vs_{k}": evaluate.paired_difference(Y, P["finetuned"], p, LABELS, 200)
                              for k, p in P.items() if k != "finetuned"}}
        d = tasks.get("classify").decide(results, paired, gate.GateConfig(), teacher=check)
        return next(c for c in d["checks"] if c["name"] == "replaced_model"), check

    worse, check = replaced(Y, HALF)
    assert worse["status"] == "block" and worse["field"] == "teacher_check.finetuned_minus_teacher"
    assert "people's labels on the 40 held-out rows" in worse["text"] and "95% CI -" in worse["text"]
    assert [s["system"] for s in check["systems"]] == ["teacher", "finetuned"]
    assert check["systems"][0]["accuracy_vs_people"] == 1.0 and check["systems"][1]["agreement_with_teacher"] == 0.75
    tie, _ = replaced(HALF, HALF)
    assert tie["status"] == "pass" and "matches (the interval reaches 0)" in tie["text"]
    scored, _ = replaced(Y, HALF, {"endpoint_structured": HALF})
    assert scored["field"] == "heldout.paired.finetuned_vs_endpoint_structured"
    assert "On the 40 held-out tickets people labelled, the teacher" in evaluate.teacher_reading(check)
    assert "worse than the teacher beyond the interval" in evaluate.teacher_reading(check)
