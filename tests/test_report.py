"""The ship report: every checklist item from recorded JSON, missing notebooks, the verdict, the HTML page."""
import copy
import json

import pytest

from ftplay import report, runner

CURVE = [{"escalated": 0.0, "kept": 100, "accuracy_kept": 0.7}, {"escalated": 0.3, "kept": 70, "accuracy_kept": 0.91},
         {"escalated": 0.5, "kept": 50, "accuracy_kept": 0.95}, {"escalated": 1.0, "kept": 0, "accuracy_kept": None}]
RUN = {
    "00_decide_approach": {"proceed": True, "reasons": ["the cheaper options were tried"]},
    "01_baseline_prompting": {
        "systems": {"zero_shot": {"macro_f1": 0.2}, "few_shot_fixed": {"macro_f1": 0.3},
                    "few_shot_retrieved": {"macro_f1": 0.35}, "tfidf_logreg": {"macro_f1": 0.5}},
        "best": {"name": "few_shot_retrieved", "macro_f1": 0.35}, "reference": {"name": "tfidf_logreg", "macro_f1": 0.5}},
    "02_curate_data": {
        "rows_in": 1000, "rows_out": 800, "exact_duplicate_rows_dropped": 50, "near_duplicate_rows_dropped": 40,
        "conflicts": 10, "conflict_rows": 20, "trivial": 5, "truncated": 3, "pii_rows": 0, "pii_redacted": False,
        "split": {"train": 640, "heldout": 160}, "labels": {"a": {"production": 30}, "b": {"production": 20}},
        "leakage": {"exact": 0, "near": 0}},
    "03_train_qlora": {
        "adapter_dir": "runs/x/train/adapter", "engine": "unsloth", "load_in_4bit": True, "steps": 240,
        "tokens_seen": 120000, "tokens_per_s": 800.0, "seconds": 150.0, "first_loss": 9.0, "train_loss": 1.2,
        "eval_loss": 1.3, "device": {"device": "cuda"},
        "base_model": {"requested": "embedded", "revision": "aaaa"},
        "config": {"lora_r": 16, "lora_alpha": 32, "learning_rate": 2e-4, "num_epochs": 3.0,
                   "target_modules": ["q_proj", "v_proj", "o_proj"], "optimizer": "adamw_8bit"}},
    "04_evaluate": {
        "heldout": {"n": 160, "systems": {
            "base": {"macro_f1": 0.1, "macro_f1_ci": [0.05, 0.15], "accuracy": 0.2},
            "finetuned": {"macro_f1": 0.6, "macro_f1_ci": [0.5, 0.7], "accuracy": 0.7}},
            "paired": {"finetuned_vs_base": {"macro_f1_diff": 0.5, "macro_f1_diff_ci": [0.4, 0.6], "mcnemar_p": 1e-9},
                       "finetuned_vs_few_shot_retrieved": {"macro_f1_diff": 0.25}}},
        "production": {"n": 50, "systems": {
            "base": {"macro_f1": 0.12, "macro_f1_ci": [0.02, 0.2]},
            "finetuned": {"macro_f1": 0.55, "macro_f1_ci": [0.4, 0.7]}}},
        "decision": {"ship": True, "reasons": ["held-out: fine-tuned beats base by +0.500 macro-F1"]},
        "selective_curve": CURVE, "baseline": {"name": "few_shot_retrieved"}},
    "05_compare_costs": {
        "options": [{"name": "hosted_frontier", "monthly_cost": 9000.0, "break_even_volume": None},
                    {"name": "self_hosted_vllm", "monthly_cost": 900.0, "savings_vs_hosted": 8100.0,
                     "training_cost": 0.55, "payback_months": 7e-05, "break_even_volume": 0.0}],
        "verdict": {"cheaper": True, "best_option": "self_hosted_vllm",
                    "headline": "fine-tuned, self-hosted vLLM: $900/month vs $9,000 hosted, saves $8,100/month",
                    "reasons": ["cost: saves $8,100/month"]},
        "assumed": {"training_gpu_hours": 0.25}, "config": {"target_accuracy": 0.9}},
    "06_serve_vllm": {
        "adapters_served": ["triage"], "server": {"backend": "cuda"},
        "preflight": [{"adapter": "triage", "check": c, "ok": True, "message": "ok"} for c in ("rank", "base")],
        "parity": {"ok": True, "models": {"base": {"prompts": 6, "exact": 6}, "triage": {"prompts": 6, "exact": 6}}},
        "structured_output": {"valid_rate": 1.0},
        "load_test": {"requests": 60, "errors": 0, "concurrency": 16, "requests_per_s": 12.5, "tokens_per_s": 100.0,
                      "p50_ms": 800.0, "p95_ms": 1200.0}},
}


def write_run(path, records):
    path.mkdir(parents=True, exist_ok=True)
    for stem, rec in records.items():
        (path / f"{stem}.json").write_text(json.dumps(rec))
    return path


def items(rep):
    return {it["key"]: it for it in rep["items"]}


def test_a_complete_run_answers_every_item_and_ships(tmp_path):
    rep = report.build(write_run(tmp_path, RUN))
    it = items(rep)
    assert {k: v["status"] for k, v in it.items()} == {k: "done" for k in
                                                       ("tried_cheaper", "curated", "trained", "evaluated", "served", "cost")}
    assert rep["ship"]["ship"] is True
    assert it["tried_cheaper"]["figures"]["routing"] == CURVE[1]  # first share reaching 0.9
    assert "routing: escalating 30% keeps accuracy 0.910" in it["tried_cheaper"]["summary"]
    assert it["tried_cheaper"]["evidence"] == ["01_baseline_prompting", "04_evaluate"]
    cur = it["curated"]["figures"]
    assert (cur["rows_in"], cur["rows_out"], cur["train"], cur["heldout"], cur["production"]) == (1000, 800, 640, 160, 50)
    assert "50 exact and 40 near duplicates dropped, 10 conflicting labels (20 rows)" in it["curated"]["summary"]
    assert it["trained"]["figures"]["base"] == "embedded@aaaa"
    assert "unsloth, QLoRA (4-bit base), r 16 alpha 32" in it["trained"]["summary"]
    assert "heldout n=160: base 0.100 [0.050, 0.150] vs fine-tuned 0.600 [0.500, 0.700]" in it["evaluated"]["summary"]
    assert "McNemar p=1e-09" in it["evaluated"]["summary"] and "vs best prompt few_shot_retrieved +0.250" in it["evaluated"]["summary"]
    assert it["served"]["figures"]["parity_exact"] == 12 and it["served"]["figures"]["preflight_ok"] == 2
    assert it["cost"]["figures"]["savings_vs_hosted"] == 8100.0 and "cheaper at every volume" in it["cost"]["summary"]
    assert rep["route"] is None  # 05 recorded no route comparison
    assert rep["ship"]["notes"] == []  # the reference (0.5) does not beat the fine-tune (0.6)


def test_an_empty_run_directory_is_not_run_item_by_item(tmp_path):
    rep = report.build(tmp_path)
    assert {it["status"] for it in rep["items"]} == {"not run"}
    assert rep["ship"]["ship"] is False
    assert any("04_evaluate.json is missing" in r for r in rep["ship"]["reasons"])
    assert "ship: NO" in report.format_text(rep)


def test_missing_serving_stops_the_ship_and_says_which(tmp_path):
    recs = {k: v for k, v in RUN.items() if k != "06_serve_vllm"}
    rep = report.build(write_run(tmp_path, recs))
    assert items(rep)["served"]["status"] == "not run" and items(rep)["evaluated"]["status"] == "done"
    assert rep["ship"]["ship"] is False
    assert rep["ship"]["reasons"][0].startswith("Served with vLLM: not run (06_serve_vllm.json is missing")


def test_gate_stop_means_no(tmp_path):
    recs = copy.deepcopy(RUN)
    recs["04_evaluate"]["decision"] = {"ship": False, "reasons": [
        "STOP: fine-tuned does not beat base on held-out (macro-F1 -0.010, 95% CI -0.05 to +0.03 includes zero or less)"]}
    rep = report.build(write_run(tmp_path, recs))
    assert items(rep)["evaluated"]["status"] == "no" and "gate: stop" in items(rep)["evaluated"]["summary"]
    assert rep["ship"]["ship"] is False and any(r.startswith("STOP: fine-tuned") for r in rep["ship"]["reasons"])


def test_leakage_loss_preflight_and_cost_failures_are_each_a_no(tmp_path):
    recs = copy.deepcopy(RUN)
    recs["02_curate_data"]["leakage"]["exact"] = 3
    recs["03_train_qlora"]["train_loss"] = 9.5
    recs["06_serve_vllm"]["preflight"][1] = {"adapter": "triage", "check": "base", "ok": False, "message": "revision differs"}
    recs["05_compare_costs"]["verdict"]["cheaper"] = False
    it = items(report.build(write_run(tmp_path, recs)))
    assert {k: v["status"] for k, v in it.items() if v["status"] != "done"} == \
        {"curated": "no", "trained": "no", "served": "no", "cost": "no"}
    assert "held-out leaks into train {'exact': 3}" in it["curated"]["problems"][0]
    assert "training loss did not fall (9.000 -> 9.500)" in it["trained"]["problems"][0]
    assert it["served"]["problems"] == ["pre-flight triage: base: revision differs"]


def test_a_failed_notebook_marks_its_items_failed(tmp_path):
    status = {"04_evaluate": {"status": "failed", "cell": 7, "error": "RuntimeError: boom"}}
    rep = report.build(write_run(tmp_path, RUN), status)
    assert items(rep)["evaluated"]["status"] == "failed" and items(rep)["tried_cheaper"]["status"] == "failed"
    assert rep["ship"]["ship"] is False
    assert rep["ship"]["reasons"][0] == "notebook 04_evaluate failed at cell 7: RuntimeError: boom"
    # 00 is evidence for no item, yet a failed notebook still means no ship
    rep = report.build(tmp_path, {"00_decide_approach": {"status": "failed", "cell": 2, "error": "x"}})
    assert all(it["status"] == "done" for it in rep["items"]) and rep["ship"]["ship"] is False


def test_reference_beating_the_fine_tune_is_noted(tmp_path):
    recs = copy.deepcopy(RUN)
    recs["01_baseline_prompting"]["reference"]["macro_f1"] = 0.8
    rep = report.build(write_run(tmp_path, recs))
    assert rep["ship"]["ship"] is True  # a note, not a blocker
    assert rep["ship"]["notes"] == ["the tfidf_logreg reference (0.800 macro-F1) beats the fine-tune (0.600) on "
                                    "held-out: a simple classifier may be the cheaper thing to ship"]


def test_route_line_when_05_compares_routes():
    assert report.route_line({"routes": {"favoured": "modal", "headline": "Modal: $120/month"}}) == "modal: Modal: $120/month"
    assert report.route_line({"routes": {"favoured": "hosted_fine_tune"}}) == "hosted_fine_tune"
    assert report.route_line({"routes": {"headline": "no favourite"}}) is None
    assert report.route_line({"routes": [1, 2]}) is None and report.route_line(None) is None


def test_html_is_self_contained_and_escaped(tmp_path):
    recs = copy.deepcopy(RUN)
    recs["04_evaluate"]["decision"]["reasons"] = ["<script>alert(1)</script> & more"]
    run = write_run(tmp_path, recs)
    page = report.write_html(run, report.build(run)).read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "<script" not in page and "http" not in page and "src=" not in page
    assert page.count("<tr>") == 7  # header + six items


def test_summary_json_carries_the_report_and_its_verdict(tmp_path):
    run = write_run(tmp_path, {k: v for k, v in RUN.items() if k != "05_compare_costs"})
    s = runner.summarise(run, {"04_evaluate": {"status": "ok", "seconds": 1.0}})
    assert s["decision"] is s["ship_report"]["ship"] and s["decision"]["ship"] is False
    assert items(s["ship_report"])["cost"]["status"] == "not run"
    text = runner.format_summary(s)
    assert "[ ] Cost compared: not run" in text and "[x] Examples curated: done" in text and "ship: NO" in text


@pytest.mark.parametrize("stem", sorted(RUN))
def test_any_single_missing_record_still_builds(tmp_path, stem):
    rep = report.build(write_run(tmp_path, {k: v for k, v in RUN.items() if k != stem}))
    assert rep["ship"]["ship"] is (stem == "00_decide_approach")
    report.html_page(rep)


def test_cli_report_prints_the_checklist_and_writes_the_page(tmp_path, capsys):
    from ftplay import cli

    run = write_run(tmp_path / "run", RUN)
    assert cli.main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "[x] Served with vLLM: done" in out and "ship: YES" in out
    assert "Ship: <b>YES</b>" in (run / "ship_report.html").read_text()
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
