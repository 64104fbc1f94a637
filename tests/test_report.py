"""The ship report: every checklist item from recorded JSON, missing notebooks, the verdict, the HTML page.

04's records are built by hand (metrics and paired differences as numbers) and its decision by the
real gate (`gate.decide`), so each blocking rule is tested with the figures it must quote."""
import copy
import json

import pytest

from ftplay import gate, report, report_page, run_summary, tasks

CURVE = [{"escalated": 0.0, "kept": 100, "accuracy_kept": 0.7}, {"escalated": 0.3, "kept": 70, "accuracy_kept": 0.91},
         {"escalated": 0.5, "kept": 50, "accuracy_kept": 0.95}, {"escalated": 1.0, "kept": 0, "accuracy_kept": None}]
LABELS = ["a", "b"]


def metrics(f1, per_class):
    """evaluate.score's shape, by hand: macro-F1 `f1`, per-class {label: (f1, support)}."""
    return {"macro_f1": f1, "macro_f1_ci": [round(f1 - 0.1, 3), round(f1 + 0.1, 3)], "accuracy": round(f1 + 0.1, 3),
            "per_class": {lab: {"f1-score": v, "support": n} for lab, (v, n) in per_class.items()},
            "confusion": {"labels": LABELS, "matrix": [[0, 0], [0, 0]]}}


def diff(a, b, lo, hi, p=1e-9, n=160):
    """evaluate.paired_difference's shape, by hand: A (the fine-tune) minus B."""
    return {"n": n, "a_macro_f1": a, "b_macro_f1": b, "macro_f1_diff": round(a - b, 6), "macro_f1_diff_ci": [lo, hi],
            "mcnemar_p": p}


def evaluation(results, paired, cfg=gate.GateConfig(), leakage=None):
    """A 04_evaluate.json whose decision the real gate takes from these numbers."""
    leakage = {"exact": 0, "near": 0} if leakage is None else leakage
    return {split: {"n": 160 if split == "heldout" else 50, "systems": results[split], "paired": paired.get(split, {})}
            for split in results} | {
        "decision": tasks.get("classify").decide(results, paired, cfg, leakage=leakage), "selective_curve": CURVE,
        "leakage_recheck": leakage, "baselines": sorted(k[len("finetuned_vs_"):] for k in paired["heldout"])}


RESULTS = {"heldout": {"base": metrics(0.1, {"a": (0.2, 80), "b": (0.0, 80)}),
                       "finetuned": metrics(0.6, {"a": (0.6, 80), "b": (0.6, 80)})},
           "production": {"base": metrics(0.12, {"a": (0.2, 25), "b": (0.04, 25)}),
                          "finetuned": metrics(0.55, {"a": (0.5, 25), "b": (0.6, 25)}),
                          "tfidf_logreg": metrics(0.45, {"a": (0.4, 25), "b": (0.5, 25)})}}
PAIRED = {"heldout": {"finetuned_vs_base": diff(0.6, 0.1, 0.4, 0.6),
                      "finetuned_vs_few_shot_retrieved": diff(0.6, 0.35, 0.15, 0.35),
                      "finetuned_vs_tfidf_logreg": diff(0.6, 0.5, 0.02, 0.18, p=0.01),
                      "finetuned_vs_endpoint_structured": diff(0.6, 0.58, -0.05, 0.09, p=0.6)},
          "production": {"finetuned_vs_base": diff(0.55, 0.12, 0.3, 0.55, p=1e-6, n=50),
                         "finetuned_vs_tfidf_logreg": diff(0.55, 0.45, -0.02, 0.2, p=0.2, n=50)}}
RUN = {
    "01_decide_approach": {"proceed": True, "recommendation": "fine-tune", "measured_baselines": True,
                           "reasons": ["the cheaper options were tried"]},
    "00_baseline_prompting": {
        "systems": {"zero_shot": {"macro_f1": 0.2}, "few_shot_fixed": {"macro_f1": 0.3},
                    "few_shot_retrieved": {"macro_f1": 0.35}, "tfidf_logreg": {"macro_f1": 0.5},
                    "endpoint_structured": {"macro_f1": 0.58}},
        "best": {"name": "endpoint_structured", "macro_f1": 0.58},
        "reference": {"name": "tfidf_logreg", "macro_f1": 0.5, "rows_per_s": 5000.0, "selective_curve": CURVE}},
    "02_curate_data": {
        "rows_in": 1000, "rows_out": 800, "exact_duplicate_rows_dropped": 50, "near_duplicate_rows_dropped": 40,
        "conflicts": 10, "conflict_rows": 20, "trivial": 5, "truncated": 3, "pii_rows": 0, "pii_redacted": False,
        "pii_accepted": "", "split": {"train": 640, "heldout": 160},
        "labels": {"a": {"production": 30}, "b": {"production": 20}}, "leakage": {"exact": 0, "near": 0}},
    "03_train_qlora": {
        "adapter_dir": "runs/x/train/adapter", "engine": "unsloth", "load_in_4bit": True, "steps": 240,
        "tokens_seen": 120000, "tokens_per_s": 800.0, "seconds": 150.0, "first_loss": 9.0, "train_loss": 1.2,
        "eval_loss": 1.3, "device": {"device": "cuda"},
        "base_model": {"requested": "embedded", "revision": "aaaa"},
        "config": {"lora_r": 16, "lora_alpha": 32, "learning_rate": 2e-4, "num_epochs": 3.0,
                   "target_modules": ["q_proj", "v_proj", "o_proj"], "optimizer": "adamw_8bit"}},
    "04_evaluate": evaluation(RESULTS, PAIRED),
    "06_compare_costs": {
        "options": [{"name": "hosted_frontier", "monthly_cost": 9000.0, "break_even_volume": None},
                    {"name": "self_hosted_vllm", "monthly_cost": 1577.0, "savings_vs_hosted": 7423.0,
                     "training_cost": 0.55, "payback_months": 7e-05, "break_even_volume": 525_667.0},
                    {"name": "classical_reference", "monthly_cost": 12.0}],
        "verdict": {"cheaper": True, "best_option": "self_hosted_vllm",
                    "headline": "fine-tuned, self-hosted vLLM: $1,577/month vs $9,000 hosted, saves $7,423/month",
                    "reasons": ["cost: saves $7,423/month"]},
        "assumed": {"training_gpu_hours": 0.25}, "config": {"target_accuracy": 0.9}},
    "05_serve_vllm": {
        "adapters_served": ["triage"], "server": {"backend": "cuda"},
        "preflight": [{"adapter": "triage", "check": c, "ok": True, "message": "ok"} for c in ("rank", "base")],
        "parity": {"ok": True, "models": {"base": {"prompts": 6, "exact": 6}, "triage": {"prompts": 6, "exact": 6}}},
        "structured_output": {"valid_rate": 1.0},
        "load_test": {"requests": 60, "errors": 0, "concurrency": 16, "requests_per_s": 12.5, "tokens_per_s": 100.0,
                      "p50_ms": 800.0, "p95_ms": 1200.0}},
}


def with_04(**change):
    """RUN with 04 re-decided after `change` (results=..., paired=..., cfg=..., leakage=...)."""
    recs = copy.deepcopy(RUN)
    args = {"results": copy.deepcopy(RESULTS), "paired": copy.deepcopy(PAIRED)} | change
    recs["04_evaluate"] = evaluation(**args)
    return recs


def texts(rep, effect=None):
    return [r["text"] for r in rep["ship"]["reasons"] if effect is None or r["effect"] == effect]


def write_run(path, records):
    path.mkdir(parents=True, exist_ok=True)
    for stem, rec in records.items():
        (path / f"{stem}.json").write_text(json.dumps(rec))
    return path


def items(rep):
    return {it["key"]: it for it in rep["items"]}


def test_a_fine_tune_that_beats_every_alternative_ships(tmp_path):
    rep = report.build(write_run(tmp_path, RUN))
    it = items(rep)
    assert {k: v["status"] for k, v in it.items()} == {
        k: "done" for k in ("tried_cheaper", "curated", "trained", "evaluated", "served", "cost")}
    assert rep["ship"]["ship"] is True and rep["ship"]["verdict"] == "YES"
    assert it["tried_cheaper"]["figures"]["routing"] == CURVE[1]  # first share reaching 0.9
    assert "routing: tfidf_logreg first: escalating 30% keeps accuracy 0.910" in it["tried_cheaper"]["summary"]
    assert it["tried_cheaper"]["evidence"] == ["00_baseline_prompting"]
    cur = it["curated"]["figures"]
    assert (cur["rows_in"], cur["rows_out"], cur["train"], cur["heldout"], cur["production"]) == \
        (1000, 800, 640, 160, 50)
    assert "50 exact and 40 near duplicates dropped, 10 conflicting labels (20 rows)" in it["curated"]["summary"]
    assert it["trained"]["figures"]["base"] == "embedded@aaaa"
    assert "unsloth, QLoRA (4-bit base), r 16 alpha 32" in it["trained"]["summary"]
    ev = it["evaluated"]["summary"]
    assert "heldout n=160: base 0.100 [0.000, 0.200] vs fine-tuned 0.600 [0.500, 0.700]" in ev
    assert "McNemar p=1e-09" in ev and "tfidf_logreg +0.100" in ev and "endpoint_structured +0.020" in ev
    assert it["served"]["figures"]["parity_exact"] == 12 and it["served"]["figures"]["preflight_ok"] == 2
    assert it["cost"]["figures"]["savings_vs_hosted"] == 7423.0 and "break-even at 525,667" in it["cost"]["summary"]
    assert rep["route"] is None  # 06 recorded no route comparison
    # a YES lists what supports it, each with its record and field
    why = rep["ship"]["reasons"]
    assert why and {r["effect"] for r in why} == {"supports"}
    assert any(r["record"] == "04_evaluate.json" and r["field"] == "heldout.paired.finetuned_vs_base" and
               "beats base by +0.500 (95% CI +0.400 to +0.600)" in r["text"] for r in why)
    assert any(r["field"] == "heldout.paired.finetuned_vs_endpoint_structured" and "endpoint_structured (0.580)" in
               r["text"] for r in why)
    assert any(r["record"] == "06_compare_costs.json" and r["field"] == "verdict.cheaper" for r in why)


def test_no_significant_difference_from_base_blocks_and_names_the_knobs(tmp_path):
    paired = copy.deepcopy(PAIRED)
    paired["heldout"]["finetuned_vs_base"] = diff(0.101, 0.1, 0.0, 0.005, p=0.12)   # the 151-intent run's numbers
    rep = report.build(write_run(tmp_path, with_04(paired=paired)))
    assert rep["ship"]["verdict"] == "NO" and items(rep)["evaluated"]["status"] == "no"
    r = next(r for r in rep["ship"]["reasons"] if r["field"] == "heldout.paired.finetuned_vs_base")
    assert r["effect"] == "blocks" and r["record"] == "04_evaluate.json"
    assert "+0.001 (95% CI +0.000 to +0.005), McNemar p=0.12" in r["text"] and "tune training" in r["text"]
    assert "EPOCHS" in r["text"] and "LEARNING_RATE" in r["text"] and "LORA_R" in r["text"]
    # significant p but an interval touching zero is not a difference either
    paired["heldout"]["finetuned_vs_base"] = diff(0.2, 0.1, -0.01, 0.2, p=0.001)
    assert report.build(write_run(tmp_path, with_04(paired=paired)))["ship"]["verdict"] == "NO"


def test_a_better_alternative_blocks_and_is_named_with_its_cost(tmp_path):
    paired = copy.deepcopy(PAIRED)
    paired["heldout"]["finetuned_vs_tfidf_logreg"] = diff(0.472, 0.818, -0.41, -0.28, p=1e-12, n=237)
    rep = report.build(write_run(tmp_path, with_04(paired=paired)))
    assert rep["ship"]["verdict"] == "NO"
    r = next(r for r in texts(rep, "blocks") if "tfidf_logreg is better" in r)
    assert "macro-F1 0.818 against the fine-tune's 0.472 on the same 237 rows" in r
    assert "-0.346 (95% CI -0.410 to -0.280)" in r and "ship tfidf_logreg instead" in r
    assert "tfidf_logreg would cost $12 a month (06_compare_costs.json: options.classical_reference)" in r
    assert "better system: tfidf_logreg (0.818 vs 0.472 on heldout)" in items(rep)["evaluated"]["summary"]
    # within its interval the alternative only matches: no block
    paired["heldout"]["finetuned_vs_tfidf_logreg"] = diff(0.58, 0.6, -0.08, 0.04, p=0.5)
    assert report.build(write_run(tmp_path, with_04(paired=paired)))["ship"]["verdict"] == "YES"


def test_a_better_alternative_on_production_blocks(tmp_path):
    paired = copy.deepcopy(PAIRED)
    paired["production"]["finetuned_vs_tfidf_logreg"] = diff(0.431, 0.79, -0.45, -0.25, p=1e-9, n=200)
    rep = report.build(write_run(tmp_path, with_04(paired=paired)))
    assert rep["ship"]["verdict"] == "NO"
    assert any("production: tfidf_logreg is better: macro-F1 0.790 against the fine-tune's 0.431 on the same 200 rows"
               in t for t in texts(rep, "blocks"))


def test_an_unscored_replaced_model_is_not_proven_never_yes(tmp_path):
    paired = copy.deepcopy(PAIRED)
    del paired["heldout"]["finetuned_vs_endpoint_structured"]
    rep = report.build(write_run(tmp_path, with_04(paired=paired)))
    assert rep["ship"]["ship"] is False and rep["ship"]["verdict"] == "NOT PROVEN"
    assert items(rep)["evaluated"]["status"] == "not proven"
    (r,) = [r for r in rep["ship"]["reasons"] if r["effect"] == "not proven"]
    assert "model the fine-tune would replace: not measured" in r["text"] and "ENDPOINT_URL" in r["text"]
    assert "ship: NOT PROVEN" in report_page.format_text(rep)
    assert "Ship: <b>NOT PROVEN</b>" in report_page.html_page(rep)
    # a block still wins over a missing piece
    paired["heldout"]["finetuned_vs_base"] = diff(0.1, 0.1, -0.02, 0.02, p=1.0)
    assert report.build(write_run(tmp_path, with_04(paired=paired)))["ship"]["verdict"] == "NO"


def test_the_replaced_model_is_named_beside_the_prompts_it_is_read_with(tmp_path):
    """00's `replaced` record names what endpoint_structured was (the stand-in for the hosted model, or your
    endpoint): the report's prompting line and 01's reading of the best prompt say so; without it, the name alone."""
    recs = with_04()
    recs["00_baseline_prompting"] = {**recs["00_baseline_prompting"], "replaced": {
        "kind": "standin", "name": "the stand-in for the hosted model", "model": "hosted-standin",
        "set_by": "HOSTED_STANDIN"}}
    line = items(report.build(write_run(tmp_path, recs)))["tried_cheaper"]["summary"]
    assert "endpoint_structured (the stand-in for the hosted model) 0.580 (best prompt: endpoint_structured)" in line
    from ftplay import decide

    said = decide.assess(decide.Checklist(), recs["00_baseline_prompting"])["reasons"]
    assert any("00's best prompt 'endpoint_structured' (the stand-in for the hosted model)" in r for r in said)
    plain = items(report.build(write_run(tmp_path / "plain", with_04())))["tried_cheaper"]["summary"]
    assert "endpoint_structured 0.580 (best prompt" in plain


def test_no_production_samples_is_not_proven(tmp_path):
    paired = {"heldout": copy.deepcopy(PAIRED["heldout"])}
    results = {"heldout": copy.deepcopy(RESULTS["heldout"])}
    rep = report.build(write_run(tmp_path, with_04(results=results, paired=paired)))
    assert rep["ship"]["verdict"] == "NOT PROVEN"
    assert any("no production samples scored" in t and "PRODUCTION_PATH" in t for t in texts(rep, "not proven"))


def test_a_label_under_the_floor_blocks(tmp_path):
    results = copy.deepcopy(RESULTS)
    results["heldout"]["finetuned"]["per_class"]["b"] = {"f1-score": 0.0, "support": 12}
    results["production"]["finetuned"]["per_class"]["b"] = {"f1-score": 0.0, "support": 30}
    rep = report.build(write_run(tmp_path, with_04(results=results)))
    assert rep["ship"]["verdict"] == "NO"
    r = next(r for r in rep["ship"]["reasons"] if "F1 floor" in r["text"])
    assert "b (held-out 0.00 on 12 rows, production 0.00 on 30 rows; floor 0.2)" in r["text"]
    assert "MIN_CLASS_F1=0.2" in r["text"] and "per_class" in r["field"]
    table = rep["items"][3]["figures"]  # the per-class table itself is in 04's record, worst label first
    assert RUN["04_evaluate"]["decision"]["classes"][0]["label"] in LABELS and table
    classes = with_04(results=results)["04_evaluate"]["decision"]["classes"]
    assert classes[0] == {"label": "b", "heldout_n": 12, "heldout_f1": 0.0, "heldout_base_f1": 0.0,
                          "production_n": 30, "production_f1": 0.0, "production_base_f1": 0.04}


def test_a_critical_label_needs_its_own_floor(tmp_path):
    rep = report.build(write_run(tmp_path, with_04(cfg=gate.GateConfig(critical_labels=("a",), critical_f1=0.8))))
    assert rep["ship"]["verdict"] == "NO"
    assert any("a (held-out 0.60 on 80 rows, production 0.50 on 25 rows; floor 0.8, critical)" in t
               for t in texts(rep, "blocks"))


def test_unredacted_pii_blocks_unless_accepted(tmp_path):
    recs = copy.deepcopy(RUN)
    recs["02_curate_data"].update(pii_rows=98, pii_kinds={"email": 60, "phone": 38})
    rep = report.build(write_run(tmp_path, recs))
    assert rep["ship"]["verdict"] == "NO" and items(rep)["curated"]["status"] == "no"
    r = next(r for r in rep["ship"]["reasons"] if "PII" in r["text"])
    assert "PII in 98 training rows, not redacted (email 60, phone 38)" in r["text"] and "REDACT_PII" in r["text"]
    assert r["record"] == "02_curate_data.json" and r["field"] == "pii_rows, pii_redacted, pii_accepted"
    recs["02_curate_data"]["pii_accepted"] = "synthetic rows written by the project"
    rep = report.build(write_run(tmp_path, recs))
    assert rep["ship"]["verdict"] == "YES"
    assert any("accepted in 02 (PII_ACCEPTED): synthetic rows written by the project" in n
               for n in rep["ship"]["notes"])
    recs["02_curate_data"].update(pii_accepted="", pii_redacted=True)
    assert report.build(write_run(tmp_path, recs))["ship"]["verdict"] == "YES"


def test_01_measured_do_not_fine_tune_blocks(tmp_path):
    recs = copy.deepcopy(RUN)
    recs["01_decide_approach"] = {"proceed": False, "recommendation": "ship the classifier", "measured_baselines": True,
                                  "reasons": ["a cheap classifier already reaches the target: tfidf_logreg macro-F1 "
                                              "0.910 >= 0.850"]}
    rep = report.build(write_run(tmp_path, recs))
    assert rep["ship"]["verdict"] == "NO"
    assert any("01 said do not fine-tune (ship the classifier)" in t and "0.910 >= 0.850" in t
               for t in texts(rep, "blocks"))


def test_leakage_in_04s_recheck_blocks(tmp_path):
    rep = report.build(write_run(tmp_path, with_04(leakage={"exact": 2, "near": 0})))
    assert rep["ship"]["verdict"] == "NO"
    assert any(r["field"] == "leakage_recheck" and "{'exact': 2}" in r["text"] for r in rep["ship"]["reasons"])


def test_an_empty_run_directory_is_not_run_item_by_item(tmp_path):
    rep = report.build(tmp_path)
    assert {it["status"] for it in rep["items"]} == {"not run"}
    assert rep["ship"]["ship"] is False and rep["ship"]["verdict"] == "NOT PROVEN"
    assert any("04_evaluate.json is missing" in t for t in texts(rep))
    assert "ship: NOT PROVEN" in report_page.format_text(rep)


def test_missing_serving_stops_the_ship_and_says_which(tmp_path):
    recs = {k: v for k, v in RUN.items() if k != "05_serve_vllm"}
    rep = report.build(write_run(tmp_path, recs))
    assert items(rep)["served"]["status"] == "not run" and items(rep)["evaluated"]["status"] == "done"
    assert rep["ship"]["ship"] is False
    assert rep["ship"]["reasons"][0]["text"].startswith("Served with vLLM: 05_serve_vllm.json is missing")


def test_a_record_from_before_the_checks_still_reads(tmp_path):
    recs = copy.deepcopy(RUN)
    recs["04_evaluate"]["decision"] = {"ship": False, "reasons": [
        "STOP: fine-tuned does not beat base on held-out (macro-F1 -0.010, 95% CI -0.05 to +0.03 includes zero or "
        "less)"]}
    rep = report.build(write_run(tmp_path, recs))
    assert items(rep)["evaluated"]["status"] == "no" and "gate: stop" in items(rep)["evaluated"]["summary"]
    assert rep["ship"]["ship"] is False and any(t.startswith("Held-out and production evaluated against the base: "
                                                             "STOP: fine-tuned") for t in texts(rep))


def test_leakage_loss_preflight_and_cost_failures_are_each_a_no(tmp_path):
    recs = copy.deepcopy(RUN)
    recs["02_curate_data"]["leakage"]["exact"] = 3
    recs["03_train_qlora"]["train_loss"] = 9.5
    recs["05_serve_vllm"]["preflight"][1] = {"adapter": "triage", "check": "base", "ok": False,
                                             "message": "revision differs"}
    recs["06_compare_costs"]["verdict"]["cheaper"] = False
    it = items(report.build(write_run(tmp_path, recs)))
    assert {k: v["status"] for k, v in it.items() if v["status"] != "done"} == \
        {"curated": "no", "trained": "no", "served": "no", "cost": "no"}
    assert "held-out leaks into train {'exact': 3}" in it["curated"]["problems"][0]["text"]
    assert "training loss did not fall (9.000 -> 9.500)" in it["trained"]["problems"][0]["text"]
    assert [p["text"] for p in it["served"]["problems"]] == ["pre-flight triage: base: revision differs"]
    assert it["served"]["problems"][0]["field"] == "preflight"


def test_a_failed_notebook_marks_its_items_failed(tmp_path):
    status = {"04_evaluate": {"status": "failed", "cell": 7, "error": "RuntimeError: boom"}}
    rep = report.build(write_run(tmp_path, RUN), status)
    # tried_cheaper reads 00 only (routing is 00's cheap classifier first, as 01 reads it): 04 failing leaves it done
    assert items(rep)["evaluated"]["status"] == "failed" and items(rep)["tried_cheaper"]["status"] == "done"
    assert rep["ship"]["ship"] is False and rep["ship"]["verdict"] == "NO"
    assert rep["ship"]["reasons"][0] == {"text": "notebook 04_evaluate failed at cell 7: RuntimeError: boom",
                                         "record": "summary.json", "field": "notebooks.04_evaluate", "effect": "blocks"}
    # 01 is evidence for no item, yet a failed notebook still means no ship
    rep = report.build(tmp_path, {"01_decide_approach": {"status": "failed", "cell": 2, "error": "x"}})
    assert all(it["status"] == "done" for it in rep["items"]) and rep["ship"]["verdict"] == "NO"


def test_route_line_when_06_compares_routes():
    assert report.route_line({"routes": {"favoured": "modal", "headline": "Modal: $120/month"}}) == \
        "modal: Modal: $120/month"
    assert report.route_line({"routes": {"favoured": "hosted_fine_tune"}}) == "hosted_fine_tune"
    assert report.route_line({"routes": {"headline": "no favourite"}}) is None
    assert report.route_line({"routes": [1, 2]}) is None and report.route_line(None) is None


def test_html_is_self_contained_and_escaped(tmp_path):
    recs = copy.deepcopy(RUN)
    recs["04_evaluate"]["decision"]["checks"][0].update(status="block", text="<script>alert(1)</script> & more")
    run = write_run(tmp_path, recs)
    page = report_page.write_html(run, report.build(run)).read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "<script" not in page and "http" not in page and "src=" not in page
    assert page.count("<tr>") == 7  # header + six items


def test_html_embeds_the_run_plots_as_data_uris(tmp_path):
    """The plots the notebooks saved under <run>/plots/ are in the page itself (base64 PNG), nothing linked."""
    import base64
    import re

    import matplotlib

    matplotlib.use("Agg")
    from ftplay import plots

    run = write_run(tmp_path, RUN)
    fig = plots.label_balance({"billing": {"train": 3, "heldout": 1}, "bug": {"train": 5, "heldout": 2}})
    saved = plots.save(fig, run, "02_label_balance")
    rep = report.build(run)
    assert rep["plots"] == ["plots/02_label_balance.png"] and saved == run / "plots" / "02_label_balance.png"
    page = report_page.write_html(run, rep).read_text()
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 1 and srcs[0].startswith("data:image/png;base64,")
    assert base64.b64decode(srcs[0].split(",", 1)[1]) == saved.read_bytes()
    assert not re.search(r"https?://", page) and 'alt="02_label_balance"' in page
    plots.save(fig, run / "reply", "04_reply_parts")          # a second task's plots are in its own folder
    assert report.plots_of(run, [run, run / "reply"]) == ["plots/02_label_balance.png",
                                                          "reply/plots/04_reply_parts.png"]


def test_summary_json_carries_the_report_and_its_verdict(tmp_path):
    run = write_run(tmp_path, {k: v for k, v in RUN.items() if k != "06_compare_costs"})
    s = run_summary.summarise(run, {"04_evaluate": {"status": "ok", "seconds": 1.0}})
    assert s["decision"] is s["ship_report"]["ship"] and s["decision"]["ship"] is False
    assert s["decision"]["verdict"] == "NOT PROVEN"
    assert all({"text", "record", "field", "effect"} <= set(r) for r in s["decision"]["reasons"])
    assert items(s["ship_report"])["cost"]["status"] == "not run"
    text = run_summary.format_summary(s)
    assert "[ ] Cost compared: not run" in text and "[x] Examples curated: done" in text and "ship: NOT PROVEN" in text
    assert "[06_compare_costs.json: (whole record)]" in text


@pytest.mark.parametrize("stem", sorted(RUN))
def test_any_single_missing_record_still_builds(tmp_path, stem):
    rep = report.build(write_run(tmp_path, {k: v for k, v in RUN.items() if k != stem}))
    assert rep["ship"]["ship"] is (stem == "01_decide_approach")
    report_page.html_page(rep)


def test_cli_report_prints_the_checklist_and_writes_the_page(tmp_path, capsys):
    from ftplay import cli

    run = write_run(tmp_path / "run", RUN)
    assert cli.main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "[x] Served with vLLM: done" in out and "ship: YES" in out
    assert "[supports]" in out and "[04_evaluate.json: heldout.paired.finetuned_vs_base]" in out
    assert "Ship: <b>YES</b>" in (run / "ship_report.html").read_text()
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_a_valid_but_wrong_structured_adapter_is_named(tmp_path):
    recs = copy.deepcopy(RUN)
    recs["05_serve_vllm"]["structured_output"] = {"valid_rate": 1.0, "models": {
        "base": {"valid_rate": 1.0, "accuracy": 0.1}, "triage": {"valid_rate": 1.0, "accuracy": 0.12,
                                                                 "valid_but_wrong": True}}}
    rep = report.build(write_run(tmp_path, recs))
    assert "(base valid 100%, accuracy 0.100; triage valid 100%, accuracy 0.120)" in items(rep)["served"]["summary"]
    assert any(n.startswith("structured output: triage answers valid JSON but wrong labels (accuracy 0.120")
               for n in rep["ship"]["notes"])


def test_a_given_splits_own_leak_is_a_note_and_04s_recheck_decides(tmp_path):
    recs = copy.deepcopy(RUN)
    recs["02_curate_data"].update(leakage={"exact": 25, "near": 699}, leakage_curated={"exact": 6, "near": 253},
                                  split={"train": 3069, "heldout": 3080, "made_here": False})
    rep = report.build(write_run(tmp_path, recs))
    assert items(rep)["curated"]["status"] == "done" and rep["ship"]["verdict"] == "YES"
    assert any("the given held-out split (HELDOUT_PATH) shares rows with its train file: {'exact': 25, 'near': 699} "
               "as given, {'exact': 6, 'near': 253} after curation" in n for n in rep["ship"]["notes"])
    recs["04_evaluate"] = with_04(leakage={"exact": 1, "near": 44})["04_evaluate"]
    rep = report.build(write_run(tmp_path, recs))
    assert rep["ship"]["verdict"] == "NO"
    assert any("drop their twins from the training file" in t for t in texts(rep, "blocks"))


def test_each_task_of_a_run_gets_its_own_answers_and_verdict(tmp_path):
    """A two-task run: triage in the run directory, the reply task in reply/. Each task is answered on
    its own records (a reply reason names reply/<record>), 06 and 05 are shared, and a failed reply
    notebook fails the reply task's items only."""
    run = write_run(tmp_path, RUN)
    reply = {stem: dict(copy.deepcopy(rec), task="reply") for stem, rec in RUN.items()
             if stem[:2] in ("00", "02", "03", "04")}
    reply["02_curate_data"]["pii_rows"], reply["02_curate_data"]["pii_kinds"] = 4, {"phone": 4}
    write_run(tmp_path / "reply", reply)
    rep = report.build(run)
    assert list(rep["tasks"]) == ["classify", "reply"] and rep["tasks"]["reply"]["dir"] == "reply"
    assert rep["ship"] == rep["tasks"]["classify"]["ship"] and rep["ship"]["verdict"] == "YES"
    r = rep["tasks"]["reply"]["ship"]
    assert r["verdict"] == "NO" and r["reasons"][0]["record"] == "reply/02_curate_data.json", r["reasons"][0]
    assert "PII in 4 training rows" in r["reasons"][0]["text"]
    text = report_page.format_text(rep)
    assert "ship classify: YES" in text and "ship reply: NO" in text and "adapter 'reply', records in reply" in text
    failed = report.build(run, {"reply/04_evaluate": {"status": "failed", "cell": 7, "error": "boom"}})
    items = {i["key"]: i["status"] for i in failed["tasks"]["reply"]["items"]}
    assert items["evaluated"] == "failed" and failed["tasks"]["classify"]["ship"]["verdict"] == "YES"
    assert any(x["field"] == "notebooks.reply/04_evaluate" for x in failed["tasks"]["reply"]["ship"]["reasons"])
    assert "ship reply" in report_page.html_page(rep) or "Ship reply" in report_page.html_page(rep)
