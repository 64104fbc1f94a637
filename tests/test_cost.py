"""Cost stage: exact prices, break-even and payback edge cases, the seed's worked example, notebook 06."""
from dataclasses import replace
from pathlib import Path

import pytest

from ftplay import cost, cost_run, cost_tables, rundir
from ftplay.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
# a small case priced by hand below: 1M requests x (1,000 in + 10 out) tokens
CASE = cost.CostConfig(monthly_requests=1_000_000, input_tokens_per_request=1_000, output_tokens_per_request=10,
                       hosted_price_in_per_m=3.0, hosted_price_out_per_m=15.0, gpu_price_per_hour=2.0,
                       serving_tokens_per_s=4_000.0, serving_utilisation=0.5, min_gpus_always_on=0,
                       training_gpu_hours=2.0, hosted_ft_price_per_m_train_tokens=0.5,
                       hosted_ft_price_in_per_m=0.2, hosted_ft_price_out_per_m=0.2, train_examples=1_000,
                       tokens_per_example=400, epochs=3.0, escalation_share=0.1, use_measured=False,
                       modal_gpu_price_per_s=0.001, modal_serving_utilisation=0.8)
LLAMA = "tiny:meta-llama/Llama-3.1-8B-Instruct"   # a stand-in: its tokenizer is Llama 3.1's own
MEASURED = replace(CASE, use_measured=True, model=LLAMA)   # the same case, taking this run's measurements


def by_name(result):
    return {r["name"]: r for r in result["options"]}


# ---------------------------------------------------------------- formulas
def test_training_estimate_exact():
    # 6 x 1e9 x 1e6 x 1 = 6e15 FLOPs at 100e12 x 0.5 = 5e13 FLOP/s -> 120 s = 1/30 h
    assert cost.training_estimate(1, 1e6, 1, 100, 0.5) == pytest.approx(1 / 30)
    # 6 x 8e9 x 400,000 x 3 = 5.76e16 at 312e12 x 0.2 = 6.24e13 -> 923.08 s
    assert cost.training_estimate(8, 400_000, 3, 312, 0.2) * 3600 == pytest.approx(923.0769, rel=1e-6)


def test_self_hosted_per_m_exact():
    assert cost.self_hosted_per_m(3.6, 1_000, 1.0) == pytest.approx(1.0)        # 3.6e6 / 3.6e6
    assert cost.self_hosted_per_m(2.16, 4_000, 0.5) == pytest.approx(0.30)      # 2.16e6 / 7.2e6
    assert cost.self_hosted_per_m(2.16, 4_000, 0.25) == pytest.approx(0.60)     # half as busy, twice the price


def test_monthly_each_option_exact():
    # hosted: 1e9 in x $3/M + 1e7 out x $15/M = 3,000 + 150
    assert cost.monthly(CASE, "hosted_frontier") == pytest.approx(3_150)
    # self-hosted: 1.01e9 tokens x 2e6/7.2e6 $/M = 280.56
    assert cost.monthly(CASE, "self_hosted_vllm") == pytest.approx(1_010 * 2 / 7.2)
    # Modal: 1.01e9 tokens / 4,000 tokens/s = 252,500 busy s / 0.8 billed-busy = 315,625 s x $0.001 = 315.625
    assert cost.monthly(CASE, "modal") == pytest.approx(315.625)
    # hosted fine-tune: 1.01e9 x $0.2/M = 202
    assert cost.monthly(CASE, "hosted_fine_tune") == pytest.approx(202)
    # routed: self-hosted on all + 10% at the hosted price = 280.56 + 315
    assert cost.monthly(CASE, "routed", escalation=0.1) == pytest.approx(1_010 * 2 / 7.2 + 315)
    assert cost.monthly(CASE, "hosted_frontier", requests=0) == 0


def test_compare_table_exact():
    r = cost.compare(CASE)
    t = by_name(r)
    assert list(t) == ["hosted_frontier", "self_hosted_vllm", "modal", "hosted_fine_tune", "routed"]
    assert t["hosted_frontier"]["per_m_tokens"] == pytest.approx(3_150 / 1_010, abs=1e-4)
    assert t["self_hosted_vllm"]["training_cost"] == 4.0                          # 2 h x $2
    assert t["hosted_fine_tune"]["training_cost"] == 0.6                          # 1.2M tokens x $0.5/M
    assert t["modal"]["training_cost"] == 7.2                                     # 7,200 GPU-s x $0.001/s
    assert t["modal"]["break_even_volume"] == 0                                   # no floor: scales to zero
    assert t["self_hosted_vllm"]["savings_vs_hosted"] == pytest.approx(3_150 - 280.56, abs=0.01)
    assert t["self_hosted_vllm"]["payback_months"] == pytest.approx(4 / (3_150 - 1_010 * 2 / 7.2))
    assert t["self_hosted_vllm"]["break_even_volume"] == 0                        # no floor: cheaper at any volume
    assert r["verdict"]["cheaper"] is True
    assert r["verdict"]["best_option"] == "hosted_fine_tune"                     # $202 < $280.56
    assert all(x.startswith("cost:") for x in r["verdict"]["reasons"])


def test_floor_break_even_exact():
    cfg = replace(CASE, min_gpus_always_on=1)
    # floor = 1 x $2 x 730 h = 1,460 > 280.56 per-token: the GPU is not yet full
    assert cost.monthly(cfg, "self_hosted_vllm") == pytest.approx(1_460)
    # hosted costs 3.15e-3 $/request: it reaches the floor at 1,460 / 3.15e-3 requests
    assert cost.break_even_volume(cfg, "self_hosted_vllm") == pytest.approx(463_492.06, abs=0.01)
    # routed pays 10% of hosted on top: 1,460 / (3.15e-3 x 0.9)
    assert cost.break_even_volume(cfg, "routed", 0.1) == pytest.approx(1_460 / 2.835e-3)
    assert cost.monthly(cfg, "self_hosted_vllm", requests=100_000_000) == pytest.approx(28_055.56, abs=0.01)


def test_never_cheaper_and_zero_savings():
    dear = replace(CASE, gpu_price_per_hour=1_000.0, hosted_ft_price_in_per_m=100.0, hosted_ft_price_out_per_m=100.0,
                   modal_gpu_price_per_s=1.0)
    assert cost.break_even_volume(dear, "self_hosted_vllm") is None
    r = cost.compare(dear, None)
    assert r["verdict"]["cheaper"] is False and r["verdict"]["best_option"] == "hosted_frontier"
    assert by_name(r)["self_hosted_vllm"]["payback_months"] is None
    assert cost.payback_months(100.0, 0.0) is None
    assert cost.payback_months(100.0, -5.0) is None
    assert cost.payback_months(100.0, 50.0) == 2.0
    assert cost.payback_months(0.0, 50.0) == 0.0
    # equal cost: self-hosted $/M made exactly the hosted $/M -> zero savings, no payback, not cheaper
    equal = replace(CASE, output_tokens_per_request=0, gpu_price_per_hour=21.6, hosted_ft_price_in_per_m=9.0,
                    modal_gpu_price_per_s=1.0)
    t = by_name(cost.compare(equal))                                             # 21.6e6 / 7.2e6 = $3.00/M
    assert t["self_hosted_vllm"]["savings_vs_hosted"] == pytest.approx(0, abs=1e-6)
    assert cost.compare(equal)["verdict"]["cheaper"] is False


def test_zero_volume_does_not_crash():
    r = cost.compare(replace(CASE, monthly_requests=0))
    assert by_name(r)["self_hosted_vllm"]["per_m_tokens"] is None
    assert r["verdict"]["cheaper"] is False


def test_payback_horizon_decides_cheaper():
    slow = replace(CASE, training_gpu_hours=20_000.0, hosted_ft_price_per_m_train_tokens=100_000.0)   # Modal: $72,000
    r = cost.compare(slow)                                   # $40,000 of training, ~$2,870/month saved
    assert r["verdict"]["cheaper"] is False
    assert by_name(r)["self_hosted_vllm"]["payback_months"] > slow.max_payback_months


def test_choose_escalation():
    curve = [{"escalated": 0.0, "accuracy_kept": 0.80}, {"escalated": 0.1, "accuracy_kept": 0.88},
             {"escalated": 0.2, "accuracy_kept": 0.93}, {"escalated": 0.3, "accuracy_kept": 0.97},
             {"escalated": 1.0, "accuracy_kept": None}]
    assert cost.choose_escalation(curve, 0.9) == 0.2
    assert cost.choose_escalation(curve, 0.8) == 0.0
    assert cost.choose_escalation(curve, 0.99) is None
    assert cost.choose_escalation([], 0.9) is None


def test_validation_names_every_parameter():
    with pytest.raises(ConfigError) as e:
        cost.CostConfig(gpu_price_per_hour=-1, serving_utilisation=0, mfu_assumed=1.5, escalation_share=1.0,
                        serving_tokens_per_s=0, modal_gpu_price_per_s=-0.1, modal_serving_utilisation=0)
    msg = str(e.value)
    assert len(e.value.problems) == 7
    for name in ("GPU_PRICE_PER_HOUR", "SERVING_UTILISATION", "MFU_ASSUMED", "ESCALATION_SHARE", "SERVING_TOKENS_PER_S",
                 "MODAL_GPU_PRICE_PER_S", "MODAL_SERVING_UTILISATION"):
        assert name in msg
    with pytest.raises(ConfigError, match="INPUT_TOKENS_PER_REQUEST"):
        cost.CostConfig(input_tokens_per_request=0, output_tokens_per_request=0)


# ---------------------------------------------------------------- the seed's worked example
def test_seed_case_reproduces_the_seed():
    r = cost.compare(cost.seed_case())
    t = by_name(r)
    assert t["hosted_frontier"]["per_m_tokens"] == pytest.approx(3.00)
    assert t["self_hosted_vllm"]["per_m_tokens"] == pytest.approx(0.30)
    assert t["self_hosted_vllm"]["savings_vs_hosted"] == pytest.approx(8_000, rel=0.15)   # $8,100
    minutes = 60 * r["training"]["gpu_hours"]
    assert 10 <= minutes <= 90                                                             # "about 30 min"
    assert minutes == pytest.approx(923.0769 / 60, rel=1e-6)
    assert r["training"]["estimated"] and "6 x params x tokens x epochs" in r["training"]["assumption"]
    assert r["measured"] == {}
    assert t["self_hosted_vllm"]["per_token_equivalent_at_full_volume"] == pytest.approx(0.30)


def test_seed_case_with_its_gpu_kept_on_all_month():
    """The seed's $0.30/M is a per-token equivalent at full volume: 3e9 tokens at 4,000 tokens/s and
    50% busy need 416.7 GPU-hours, but a GPU that serves all month is paid 730 (1 x $2.16 x 730)."""
    on = cost.compare(replace(cost.seed_case(), min_gpus_always_on=1))
    t = by_name(on)
    assert t["self_hosted_vllm"]["monthly_cost"] == pytest.approx(1_576.80)
    assert t["self_hosted_vllm"]["floor_monthly"] == pytest.approx(1_576.80)
    assert t["self_hosted_vllm"]["per_m_tokens"] == pytest.approx(0.5256)                # $1,576.80 / 3,000M tokens
    assert t["self_hosted_vllm"]["per_token_equivalent_at_full_volume"] == pytest.approx(0.30)
    assert t["self_hosted_vllm"]["savings_vs_hosted"] == pytest.approx(7_423.20)
    assert t["self_hosted_vllm"]["break_even_volume"] == pytest.approx(525_600)          # $1,576.80 / $0.003
    rows = {r["figure"]: r for r in cost_tables.beside_seed(on, cost.compare(cost.seed_case()))}
    assert rows["self-hosted vLLM $/month"] == {"figure": "self-hosted vLLM $/month", "seed": "900",
                                                "seed_gpu_always_on": "1,577", "run": "1,577"}
    assert rows["per-token equivalent at full volume, $/M"]["seed"] == "0.30"
    assert rows["self-hosted break-even, requests/month"]["seed"] == "0"
    assert rows["input tokens per request"]["run"] == "1,000 (assumed)"
    text = cost_tables.format_options(on["options"])
    assert "per-token equivalent at full volume: $0.300/M" in text and "not its price below break-even" in text


def test_prices_are_all_labelled_assumed_with_their_source():
    p = cost.prices(cost.CostConfig())
    assert set(p) == set(cost.PRICE_SOURCES) and all(v["source"].startswith("assumed: ") for v in p.values())
    assert "Sonnet" in p["hosted_price_in_per_m"]["source"] and p["cpu_price_per_hour"]["value"] == 0.05
    mine = cost.prices(cost.CostConfig(gpu_price_per_hour=1.1))["gpu_price_per_hour"]
    assert mine == {"value": 1.1, "source": "assumed: GPU_PRICE_PER_HOUR as set in the parameters cell"}


# ---------------------------------------------------------------- an always-on GPU in the verdict
# only self-hosting can save here: the hosted fine-tune and Modal are priced out
ONLY_OWN = replace(CASE, min_gpus_always_on=1, hosted_ft_price_in_per_m=100.0, hosted_ft_price_out_per_m=100.0,
                   modal_gpu_price_per_s=1.0)


def test_below_break_even_the_verdict_is_not_cheaper():
    be = cost.break_even_volume(ONLY_OWN, "self_hosted_vllm")
    assert be == pytest.approx(1_460 / 3.15e-3)                                     # 463,492 requests/month
    below = cost.compare(replace(ONLY_OWN, monthly_requests=400_000))
    t = by_name(below)
    assert t["self_hosted_vllm"]["monthly_cost"] == 1_460.0 and t["hosted_frontier"]["monthly_cost"] == 1_260.0
    assert below["verdict"]["cheaper"] is False and below["verdict"]["best_option"] == "hosted_frontier"
    assert below["verdict"]["break_even"]["self_hosted_vllm"] == pytest.approx(be)
    assert ("cost: self-hosted vLLM pays 1 GPU(s) kept on all month ($1,460) whatever the traffic: cheaper than "
            "the hosted model only above 463,492 requests/month; 400,000 is below that") in below["verdict"]["reasons"]
    above = cost.compare(replace(ONLY_OWN, monthly_requests=500_000))
    assert above["verdict"]["cheaper"] is True and above["verdict"]["best_option"] == "self_hosted_vllm"
    assert by_name(above)["self_hosted_vllm"]["savings_vs_hosted"] == pytest.approx(1_575 - 1_460)
    assert "500,000 is above that" in " ".join(above["verdict"]["reasons"])
    assert "self-hosted vLLM: $1,460/month" in above["verdict"]["headline"]       # the floor, not $/M x tokens


def test_per_token_view_is_named_in_the_verdict():
    r = cost.compare(CASE)                                                       # MIN_GPUS_ALWAYS_ON=0
    assert any("MIN_GPUS_ALWAYS_ON=0 prices self-hosting per token" in x for x in r["verdict"]["reasons"])
    assert cost.CostConfig().min_gpus_always_on == 1                              # the default is a GPU kept on


# ---------------------------------------------------------------- each task priced with its own tokens
def two_task_run(d, served=LLAMA):
    """Triage in the run directory, the reply task in <run>/reply; 05 served both adapters from one base:
    triage 40 requests of 110 prompt tokens answering 3, reply 40 of 150 answering 58 (39 stopped)."""
    fake_run(d, served=served)
    rundir.record(d, "02_curate_data", {"rows_out": 1_100, "tokens": {"p50": 90},
                                        "labels": {"a": {"train": 500}, "b": {"train": 380}}}, task="classify")
    rundir.record(d / "reply", "02_curate_data", {"rows_out": 1_000, "tokens": {"p50": 210},
                                                  "labels": {"a": {"train": 600}, "b": {"train": 300}}}, task="reply")
    rundir.record(d / "reply", "03_train_qlora", {"seconds": 70.0, "device": {"device": "cpu"},
                                                  "base_model": {"requested": served}}, task="reply")
    per = {"base": {"requests": 80, "errors": 0, "prompt_tokens": 10_400, "completion_tokens": 5_440, "stopped": 0},
           "triage": {"requests": 40, "errors": 0, "prompt_tokens": 4_400, "completion_tokens": 120, "stopped": 40},
           "reply": {"requests": 40, "errors": 0, "prompt_tokens": 6_000, "completion_tokens": 2_320, "stopped": 39}}
    rundir.write_json(d / "05_serve_vllm.json", {
        "model": {"requested": served, "kind": "standin"}, "adapters_served": ["triage", "reply"],
        "adapter_tasks": {"triage": "classify", "reply": "reply"},
        "load_test": {"tokens_per_s": 500.0, "total_tokens_per_s": 1_000.0, "completion_tokens": 7_880,
                      "prompt_tokens": 20_800, "requests": 160, "errors": 0, "max_tokens": 128, "ignore_eos": False,
                      "per_model": per}})
    return d


def test_each_task_is_priced_with_its_own_tokens(tmp_path):
    priced = cost_run.by_task(two_task_run(tmp_path), MEASURED, {"reply": 60})
    assert list(priced) == ["classify", "reply"]
    triage, reply = priced["classify"], priced["reply"]
    assert (triage["config"].input_tokens_per_request, triage["config"].output_tokens_per_request) == (110, 3)
    assert (reply["config"].input_tokens_per_request, reply["config"].output_tokens_per_request) == (150, 58)
    why_in = reply["measured"]["input_tokens_per_request"]["why"]
    why_out = reply["measured"]["output_tokens_per_request"]["why"]
    assert "mean prompt of reply's requests in 05's load test (40 requests" in why_in
    assert "reply in 05's load test, stopped at end of turn (39/40 stopped" in why_out
    assert reply["adapters"] == ["reply"] and triage["adapters"] == ["triage"]
    # each task's own 02: training examples and tokens per example
    assert (reply["config"].train_examples, reply["config"].tokens_per_example) == (900, 210)
    assert (triage["config"].train_examples, triage["config"].tokens_per_example) == (880, 90)
    # hosted: 1e6 x (110 x 3 + 3 x 15) / 1e6 = 375; reply: 1e6 x (150 x 3 + 58 x 15) / 1e6 = 1,320
    assert by_name(triage)["hosted_frontier"]["monthly_cost"] == 375.0
    assert by_name(reply)["hosted_frontier"]["monthly_cost"] == 1_320.0
    # hosted fine-tune: 1e6 x (150 + 58) x 0.2 / 1e6 = 41.6 for the reply
    assert by_name(reply)["hosted_fine_tune"]["monthly_cost"] == 41.6
    # the reply has no confidence to route on: no routed option, and the verdict says why
    assert "routed" not in by_name(reply) and "routed" in by_name(triage) and reply["escalation_share"] is None
    assert "a generated reply has no confidence score to escalate on" in " ".join(reply["verdict"]["reasons"])
    assert cost_tables.read_task(reply).startswith(
        "reply (reply): the fine-tune is sent 150 input (measured) and answers 58 output tokens (measured) per "
        "request; the hosted model 150 input and 58 output (the fine-tune's prompt, not its own) and costs "
        "$1,320/month at 1,000,000 requests, 66% of it for output tokens. Cost verdict: ")
    rec = cost_tables.tasks_record(priced)
    assert rec["reply"]["tokens_measured"] == ["input_tokens_per_request", "output_tokens_per_request"]
    assert rec["reply"]["verdict"] == reply["verdict"] and rec["classify"]["output_tokens_per_request"] == 3
    assert "== classify ==" in cost_tables.format_tasks(priced) and "== reply ==" in cost_tables.format_tasks(priced)
    once = cost_tables.format_tasks(priced, shown_above="classify")   # 06 has just shown the first task's table
    assert cost_tables.format_tasks(priced).count("hosted frontier model") == 2
    assert once.count("hosted frontier model") == 1 and "== classify ==\n" in once
    assert "(its options table is the one above)" in once.split("== reply ==")[0]


def test_embedded_counts_price_each_task_with_its_assumed_answer(tmp_path):
    """The embedded tokenizer's counts are not used: the triage answer is the parameters cell's 10 tokens,
    the reply's REPLY_OUTPUT_TOKENS_PER_REQUEST."""
    cfg = replace(MEASURED, model="embedded")
    priced = cost_run.by_task(two_task_run(tmp_path, served="embedded"), cfg, {"reply": 60})
    triage, reply = priced["classify"], priced["reply"]
    assert (triage["config"].output_tokens_per_request, reply["config"].output_tokens_per_request) == (10, 60)
    assert reply["config"].input_tokens_per_request == 1_000 and "output_tokens_per_request" in reply["assumed"]
    # 1e6 x (1,000 x 3 + 60 x 15) / 1e6 = 3,900 against triage's 3,150
    assert (by_name(triage)["hosted_frontier"]["monthly_cost"], by_name(reply)["hosted_frontier"]["monthly_cost"]) == \
        (3_150.0, 3_900.0)
    assert "60 output tokens (assumed)" in cost_tables.read_task(reply)


def test_a_one_task_run_prices_that_task(tmp_path):
    fake_run(tmp_path)
    priced = cost_run.by_task(tmp_path, MEASURED)
    assert list(priced) == ["classify"] and priced["classify"]["config"].input_tokens_per_request == 120


# ---------------------------------------------------------------- measurements
def fake_run(d, device="cpu", params=4_800_000, served=LLAMA, stop=True, rows_per_s=None, stopped=50,
             ref_curve=None):
    rundir.write_json(d / "02_curate_data.json", {"rows_out": 1_100, "tokens": {"p50": 90},
                                                  "labels": {"a": {"train": 500}, "b": {"train": 380}}})
    rundir.write_json(d / "03_train_qlora.json", {"seconds": 1_800.0, "tokens_seen": 300_000, "tokens_per_s": 166.7,
                                                  "device": {"device": device}, "total_params": params,
                                                  "base_model": {"requested": served}})
    rundir.write_json(d / "04_evaluate.json", {
        "heldout": {},   # a record 04 writes has its held-out scores (records.read refuses one without)
        "selective_curve": [{"escalated": 0.0, "kept": 100, "accuracy_kept": 0.85},
                            {"escalated": 0.2, "kept": 80, "accuracy_kept": 0.95},
                            {"escalated": 1.0, "kept": 0, "accuracy_kept": None}],
        "decision": {"ship": True, "reasons": ["fine-tuned beats base"]}})
    # 100 requests: 50 to the base (answers run to max_tokens 8), 50 to the adapter (label + end of turn: 3)
    per = {"base": {"requests": 50, "errors": 0, "completion_tokens": 400, "stopped": 0},
           "triage": {"requests": 50, "errors": 0, "completion_tokens": 150, "stopped": stopped}}
    rundir.write_json(d / "05_serve_vllm.json", {
        "model": {"requested": served, "kind": "standin"}, "adapters_served": ["triage"],
        "load_test": {"tokens_per_s": 550.0, "total_tokens_per_s": 800.0, "completion_tokens": 550,
                      "prompt_tokens": 12_000, "requests": 100, "errors": 0, "max_tokens": 8, "ignore_eos": not stop,
                      "per_model": per}})
    if rows_per_s:
        rundir.write_json(d / "00_baseline_prompting.json", {"reference": {
            "name": "tfidf_logreg", "macro_f1": 0.818, "rows_per_s": rows_per_s, "seconds": 0.5,
            **({"selective_curve": ref_curve} if ref_curve else {})}})


def test_measured_on_cpu_uses_tokens_not_throughput(tmp_path):
    fake_run(tmp_path)
    r = cost.compare(MEASURED, cost_run.read_measured(tmp_path, MEASURED))
    m = r["measured"]
    # 12,000 prompt tokens / 100 requests; the adapter's answers only: 150 tokens / 50 (the base's ran to 8)
    assert m["input_tokens_per_request"]["value"] == 120 and m["output_tokens_per_request"]["value"] == 3
    assert "meta-llama/Llama-3.1-8B-Instruct's own tokenizer" in m["input_tokens_per_request"]["why"]
    assert "triage in 05's load test, stopped at end of turn (50/50 stopped" in m["output_tokens_per_request"]["why"]
    assert m["train_examples"]["value"] == 880 and m["tokens_per_example"]["value"] == 90
    assert m["escalation_share"]["value"] == 0.2
    assert set(r["not_used"]) == {"serving_tokens_per_s", "training_gpu_hours"}
    assert "cpu" in r["not_used"]["serving_tokens_per_s"]["why"]
    assert r["assumed"]["serving_tokens_per_s"] == {
        "value": 4_000.0, "source": "parameters cell (SERVING_TOKENS_PER_S)",
        "why": "serving measured on cpu, not the GPU priced here"}
    assert r["config"].input_tokens_per_request == 120
    # hosted: 1e6 x (120 x 3 + 3 x 15) / 1e6 = 405
    assert by_name(r)["hosted_frontier"]["monthly_cost"] == 405.0


def test_embedded_tokenizer_counts_are_assumptions(tmp_path):
    """The embedded model's 4k-token BPE, trained on the tickets, says nothing about an 8B's
    tokenizer: its counts are shown as not used and the parameters cell's are priced, saying why."""
    fake_run(tmp_path, served="embedded")
    cfg = replace(MEASURED, model="embedded")
    r = cost.compare(cfg, cost_run.read_measured(tmp_path, cfg))
    assert set(r["not_used"]) == {"serving_tokens_per_s", "training_gpu_hours", "input_tokens_per_request",
                                  "output_tokens_per_request", "tokens_per_example"}
    assert r["not_used"]["input_tokens_per_request"]["value"] == 120
    assert "embedded model's tokenizer" in r["not_used"]["tokens_per_example"]["why"]
    assert r["assumed"]["input_tokens_per_request"]["value"] == 1_000
    assert r["assumed"]["input_tokens_per_request"]["source"] == "parameters cell (INPUT_TOKENS_PER_REQUEST)"
    assert "embedded model's tokenizer" in r["assumed"]["input_tokens_per_request"]["why"]
    assert r["config"].input_tokens_per_request == 1_000 and r["config"].tokens_per_example == 400
    assert "train_examples" in r["measured"]                                         # a row count is a count
    assert any(x.startswith("cost: input_tokens_per_request, output_tokens_per_request assumed (parameters cell): ")
               and "counted by the embedded model's tokenizer" in x for x in r["verdict"]["reasons"])


@pytest.mark.parametrize("model, usable, says", [
    ("embedded", False, "embedded model's tokenizer"), ("embedded:1", False, "embedded model's tokenizer"),
    (LLAMA, True, "counted by meta-llama/Llama-3.1-8B-Instruct's own tokenizer (the stand-in"),
    ("Qwen/Qwen2.5-7B-Instruct", True, "counted by Qwen/Qwen2.5-7B-Instruct's own tokenizer"),
    ("/models/my-8b", True, "counted by /models/my-8b's own tokenizer")])
def test_tokenizer_source(model, usable, says):
    ok, why = cost_run.tokenizer_source(model)
    assert ok is usable and says in why


def test_answers_run_to_max_tokens_or_another_model_are_not_used(tmp_path):
    fake_run(tmp_path, stop=False)                 # ignore_eos: every answer 8 tokens long
    r = cost.compare(MEASURED, cost_run.read_measured(tmp_path, MEASURED))
    assert "output_tokens_per_request" in r["not_used"] and "input_tokens_per_request" in r["measured"]
    assert r["not_used"]["output_tokens_per_request"]["value"] == 5.5              # 550 / 100
    assert "ran every answer to MAX_TOKENS=8 (ignore_eos)" in r["not_used"]["output_tokens_per_request"]["why"]
    fake_run(tmp_path, stopped=44)                 # 44 of the adapter's 50 answers ended their turn: 88% < 90%
    r = cost.compare(MEASURED, cost_run.read_measured(tmp_path, MEASURED))
    assert "output_tokens_per_request" in r["not_used"] and r["config"].output_tokens_per_request == 10
    assert "(44/50 stopped, the rest cut at MAX_TOKENS=8): fewer than 90% stopped by themselves" in \
        r["not_used"]["output_tokens_per_request"]["why"]
    fake_run(tmp_path, stopped=45)
    assert cost_run.read_measured(tmp_path, MEASURED)["output_tokens_per_request"]["usable"] is True
    fake_run(tmp_path, served="tiny:Qwen/Qwen2.5-7B-Instruct")
    r = cost.compare(MEASURED, cost_run.read_measured(tmp_path, MEASURED))
    assert {"input_tokens_per_request", "output_tokens_per_request", "tokens_per_example"} <= set(r["not_used"])
    assert "03 trained on MODEL='tiny:Qwen/Qwen2.5-7B-Instruct'" in r["not_used"]["tokens_per_example"]["why"]
    assert "05 served MODEL='tiny:Qwen/Qwen2.5-7B-Instruct', 06 prices MODEL=" in \
        r["not_used"]["input_tokens_per_request"]["why"]


def test_classical_reference_priced_from_its_measured_speed(tmp_path):
    fake_run(tmp_path, rows_per_s=1.0)
    cfg = replace(MEASURED, monthly_requests=10_000_000)
    r = cost.compare(cfg, cost_run.read_measured(tmp_path, cfg))
    row = by_name(r)["classical_reference"]
    # 1e7 requests / (1 row/s x 3,600 x 50% busy) = 5,555.6 vCPU-hours x $0.05 = $277.78 (> 1 vCPU x 730 h x $0.05)
    assert row["monthly_cost"] == pytest.approx(277.78) and row["floor_monthly"] == 36.5
    assert row["kind"] == "reference" and row["training_cost"] == 0.0
    assert r["measured"]["classical_rows_per_s"]["value"] == 1.0
    assert r["verdict"]["best_option"] != "classical_reference"                  # the verdict picks a fine-tune
    c = r["classical_reference"]
    assert c["priced"] and c["name"] == "tfidf_logreg" and c["macro_f1"] == 0.818
    assert c["monthly_cost"] == row["monthly_cost"]
    small = cost.compare(replace(cfg, monthly_requests=1_000_000), cost_run.read_measured(tmp_path, cfg))
    assert by_name(small)["classical_reference"]["monthly_cost"] == 36.5         # one vCPU kept on all month
    bare = tmp_path / "no_speed"
    bare.mkdir()
    fake_run(bare)                                                               # 00 recorded no rows_per_s
    none = cost.compare(cfg, cost_run.read_measured(bare, cfg))
    assert "classical_reference" not in by_name(none)
    assert none["classical_reference"] == {"priced": False, "why": "00 recorded no reference.rows_per_s (its "
                                           "classifier's speed): not measured, so not priced"}


def test_the_cheap_classifier_routed_is_priced_from_01s_curve(tmp_path):
    """TF-IDF first, its least confident share escalated to the hosted model: the share comes from 00's curve of
    the classifier at TARGET_ACCURACY, the cost is the CPU plus that share of the hosted model's, and it is a
    reference, never the verdict's pick."""
    curve = [{"escalated": e, "kept": k, "accuracy_kept": a}
             for e, k, a in ((0.0, 100, 0.84), (0.2, 80, 0.88), (0.3, 70, 0.92), (1.0, 0, None))]
    fake_run(tmp_path, rows_per_s=1000.0, ref_curve=curve)
    r = cost.compare(MEASURED, cost_run.read_measured(tmp_path, MEASURED))
    assert r["measured"]["classical_escalation_share"]["value"] == 0.3
    row, hosted, cpu = by_name(r)["classical_routed"], by_name(r)["hosted_frontier"], by_name(r)["classical_reference"]
    assert row["kind"] == "reference" and row["label"] == "TF-IDF + escalation to hosted"
    assert row["monthly_cost"] == pytest.approx(cpu["monthly_cost"] + 0.3 * hosted["monthly_cost"], abs=0.01)
    assert r["verdict"]["best_option"] not in ("classical_routed", "classical_reference")
    none = cost.compare(replace(MEASURED, target_accuracy=0.95), cost_run.read_measured(tmp_path, MEASURED))
    assert "classical_routed" not in by_name(none)
    assert "not priced" in none["measured"]["classical_escalation_share"]["why"]
    (tmp_path / "x").mkdir()
    fake_run(tmp_path / "x", rows_per_s=1000.0)   # 00 recorded no curve: not priced
    assert "classical_routed" not in by_name(cost.compare(MEASURED, cost_run.read_measured(tmp_path / "x", MEASURED)))


def test_measured_on_gpu_with_the_priced_model_size(tmp_path):
    fake_run(tmp_path, device="cuda", params=8_030_000_000)
    r = cost.compare(MEASURED, cost_run.read_measured(tmp_path, MEASURED))
    assert r["measured"]["serving_tokens_per_s"]["value"] == 800.0              # prompt + completion tokens/s
    assert r["measured"]["training_gpu_hours"]["value"] == 0.5
    assert by_name(r)["self_hosted_vllm"]["training_cost"] == 1.0               # 0.5 h x $2
    big = replace(MEASURED, model_params_b=70.0)
    priced_70b = cost.compare(big, cost_run.read_measured(tmp_path, big))
    assert "serving_tokens_per_s" in priced_70b["not_used"]                           # 8B measured, 70B priced
    off = cost.compare(CASE, cost_run.read_measured(tmp_path, CASE))
    assert off["measured"] == {}


def test_no_share_reaches_target_prices_routing_out(tmp_path):
    fake_run(tmp_path)
    r = cost.compare(replace(MEASURED, target_accuracy=0.99), cost_run.read_measured(tmp_path, MEASURED))
    assert "routed" not in by_name(r) and r["escalation_share"] is None
    assert any("TARGET_ACCURACY" in x for x in r["verdict"]["reasons"])


def test_routes_table_exact():
    r = cost_tables.routes(CASE)
    assert [x["name"] for x in r["rows"]] == ["self_hosted_vllm", "modal", "hosted_fine_tune", "hosted_frontier"]
    t = {x["name"]: x for x in r["rows"]}
    # horizon = MAX_PAYBACK_MONTHS (6): training + 6 x monthly
    assert t["self_hosted_vllm"]["horizon_cost"] == pytest.approx(4 + 6 * 1_010 * 2 / 7.2, abs=0.01)
    assert t["modal"]["horizon_cost"] == pytest.approx(7.2 + 6 * 315.625, abs=0.01)
    assert t["hosted_fine_tune"]["horizon_cost"] == pytest.approx(0.6 + 6 * 202)
    assert t["hosted_frontier"]["horizon_cost"] == pytest.approx(6 * 3_150)
    assert r["favoured"] == "hosted_fine_tune" and "next cheapest (fine-tuned, self-hosted vLLM)" in r["headline"]
    assert "7,200 GPU-s x $0.001/s" in t["modal"]["pricing"] and "252,500 busy GPU-s" in t["modal"]["pricing"]
    text = cost_tables.format_routes(r)
    assert "fine-tuned, hosted (per token) *" in text and "6 months $" in text


def test_routes_favour_follows_the_prices_and_the_volume():
    # a cheap hosted fine-tune loses when its serving price is ten times Modal's per-token cost
    dear_ft = replace(CASE, hosted_ft_price_in_per_m=3.0, hosted_ft_price_out_per_m=3.0)
    assert cost_tables.routes(dear_ft)["favoured"] == "self_hosted_vllm"   # 280.56/month < 315.63 on Modal
    # an always-on GPU at a tiny volume: Modal scales to zero, the own GPU pays its 730 h floor
    floor = replace(dear_ft, min_gpus_always_on=1)
    small = cost_tables.routes(floor, requests=1_000)
    t = {x["name"]: x for x in small["rows"]}
    assert small["requests"] == 1_000 and t["self_hosted_vllm"]["monthly_cost"] == 1_460.0
    # Modal: $7.20 training + 6 x $0.32 beats 6 x $3.15 hosted: scaling to zero pays for training at this volume
    assert small["favoured"] == "modal" and t["modal"]["horizon_cost"] == pytest.approx(7.2 + 6 * 0.315625, abs=0.01)
    tiny = cost_tables.routes(floor, requests=100)                     # 6 x $0.315 hosted < $7.20 of training anywhere
    assert tiny["favoured"] == "hosted_frontier"
    # hosted frontier never wins at volume when any fine-tune is cheaper per token
    assert cost_tables.routes(floor, requests=100_000_000)["favoured"] == "self_hosted_vllm"


def test_curves_and_plot():
    import matplotlib
    matplotlib.use("Agg")
    from ftplay import plots

    rows, marks = cost.curves(CASE, [1e4, 1e6, 1e8], 0.1)
    assert len(rows) == 6 * 3                                                   # 5 options + the 1-GPU floor line
    assert [m["option"] for m in marks] == ["fine-tuned, self-hosted vLLM, 1 GPU always on"]
    assert marks[0]["requests"] == pytest.approx(463_492.06, abs=0.01)
    fig = plots.cost_vs_volume(rows, marks, at=1e6)
    ax = fig.axes[0]
    assert "$" in ax.get_ylabel() and "month" in ax.get_xlabel() and ax.get_xscale() == "log"


# ---------------------------------------------------------------- notebook 06
@pytest.mark.notebook
def test_notebook_06_without_measurements(tmp_path, run_notebook):
    out = run_notebook("06_compare_costs", tmp_path)
    assert out["measured"] == {} and out["assumed"]["serving_tokens_per_s"]["value"] == 4_000.0
    assert {"cheaper", "best_option", "headline", "reasons", "break_even"} <= set(out["verdict"])
    assert out["verdict"]["cheaper"] is True and out["config"]["min_gpus_always_on"] == 1
    own = next(r for r in out["options"] if r["name"] == "self_hosted_vllm")
    assert own["monthly_cost"] == 1_576.8 and own["break_even_volume"] == pytest.approx(1_576.8 / 3.075e-3)
    assert out["classical_reference"]["priced"] is False and out["prices"]["gpu_price_per_hour"]["value"] == 2.16
    assert {r["figure"] for r in out["seed_vs_run"]} >= {"self-hosted vLLM $/month", "GPUs kept on all month"}
    seed = out["seed_case"]
    assert seed["hosted_per_m"] == 3.0 and seed["self_hosted_per_m"] == 0.3
    assert seed["saved_per_month"] == pytest.approx(8_000, rel=0.15) and 10 <= seed["training_minutes"] <= 90
    assert {r["name"] for r in out["options"]} == {"hosted_frontier", "self_hosted_vllm", "modal", "hosted_fine_tune",
                                                   "routed"}
    assert [r["name"] for r in out["routes"]["rows"]] == ["self_hosted_vllm", "modal", "hosted_fine_tune",
                                                          "hosted_frontier"]
    assert out["routes"]["favoured"] == "hosted_fine_tune" and out["routes"]["requests"] == 3_000_000


@pytest.mark.notebook
def test_notebook_06_prices_each_task_with_its_own_tokens(tmp_path, run_notebook):
    import nbformat

    out = run_notebook("06_compare_costs", two_task_run(tmp_path), MONTHLY_REQUESTS=1_000_000, MODEL=LLAMA)
    tasks = out["tasks"]
    assert list(tasks) == ["classify", "reply"]
    assert (tasks["classify"]["input_tokens_per_request"], tasks["classify"]["output_tokens_per_request"]) == (110, 3)
    assert (tasks["reply"]["input_tokens_per_request"], tasks["reply"]["output_tokens_per_request"]) == (150, 58)
    assert tasks["reply"]["escalation_share"] is None and tasks["reply"]["verdict"]["headline"]
    hosted = {t: next(r for r in v["options"] if r["name"] == "hosted_frontier")["monthly_cost"]
              for t, v in tasks.items()}
    assert hosted == {"classify": 375.0, "reply": 1_320.0}
    shown = "".join(o.get("text", "") for c in nbformat.read(str(tmp_path / "06_compare_costs.ipynb"), 4).cells
                    for o in c.get("outputs", []))
    assert "== reply ==" in shown and tasks["reply"]["reading"] in shown and "reply: " in shown


@pytest.mark.notebook
def test_notebook_06_reads_measurements(tmp_path, run_notebook):
    fake_run(tmp_path, rows_per_s=2_000.0)
    out = run_notebook("06_compare_costs", tmp_path, MONTHLY_REQUESTS=1_000_000, MODEL=LLAMA)
    m = out["measured"]["input_tokens_per_request"]
    assert (m["value"], m["source"], m["usable"]) == (120.0, "05_serve_vllm.json", True)
    assert out["measured"]["output_tokens_per_request"]["value"] == 3.0
    assert out["measured"]["escalation_share"]["value"] == 0.2
    assert "serving_tokens_per_s" in out["not_used"] and "serving_tokens_per_s" in out["assumed"]
    assert out["config"]["monthly_requests"] == 1_000_000
    options = {r["name"]: r for r in out["options"]}
    assert options["hosted_frontier"]["monthly_cost"] == 405.0                  # 1e6 x (120 x $3 + 3 x $15) / 1e6
    assert options["classical_reference"]["monthly_cost"] == 36.5 and out["classical_reference"]["macro_f1"] == 0.818


def test_the_routing_sentence_reads_both_routes():
    from ftplay import cost_tables

    both = {"escalation_share": 0.3, "measured": {"classical_escalation_share": {"value": 0.2}}}
    assert cost_tables.escalation_sentence(both, 0.9) == (
        "the fine-tune escalates 30% of tickets to the hosted model to keep accuracy 0.9 on the rest; TF-IDF first "
        "escalates 20% of tickets to the hosted model to keep accuracy 0.9 on the rest.")
    none = {"escalation_share": None, "measured": {"classical_escalation_share": {"value": None}}}
    assert cost_tables.escalation_sentence(none, 0.95).count("priced out") == 2
    assert "TF-IDF" not in cost_tables.escalation_sentence({"escalation_share": 0.1, "measured": {}}, 0.9)

