"""Tokens a request costs, counted with a real tokenizer (tokencount), and the cost stage pricing each side
with its own count: the hosted model its best prompt from 00, the fine-tune its prompt as served (04)."""
from dataclasses import replace

import pytest

from ftplay import cost, cost_run, prompts, rundir, tasks, tokencount
from ftplay.evaluate import ShotPicker
from ftplay.scoring import Prediction

LABELS = ["billing", "bug", "refund"]
TRAIN = [{"id": f"t{i}", "text": f"my {w} problem number {i}", "label": w} for i, w in enumerate(LABELS * 4)]
TICKET = "I was charged twice for my order, please refund the second payment."


@pytest.fixture(scope="module")
def embedded():
    return tokencount.counter("embedded")


def test_the_embedded_model_is_counted_with_llama_3_1s_tokenizer(embedded):
    """The embedded model's own BPE says nothing about an 8B's: its requests are counted with the priced
    family's real tokenizer and chat template, and the count is exactly that tokenizer's."""
    assert embedded.name == tokencount.PRICED_FAMILY and not embedded.exact
    assert "Llama-3.1-8B-Instruct's tokenizer and chat template" in embedded.why
    msgs = prompts.messages(TICKET, LABELS, system_prompt="Pick one of: {labels}.")
    c = embedded.count([msgs], ["refund"])
    ids = prompts.prompt_ids(embedded.tokenizer, msgs)
    assert c["prompt_tokens"] == len(ids) and ids[0] == 128000             # <|begin_of_text|>, as the hub's
    assert "<|start_header_id|>assistant<|end_header_id|>" in embedded.tokenizer.decode(ids)
    assert c["answer_tokens"] == len(embedded.tokenizer("refund", add_special_tokens=False)["input_ids"]) + 1
    with pytest.raises(ValueError, match="one answer per conversation"):
        embedded.count([msgs], [])


def test_a_stand_in_is_counted_with_its_own_family(embedded):
    """MODEL tiny:<hub id> counts with that family's tokenizer (exact for the model served): Qwen2.5's template
    and tokenizer give another count for the same conversation than Llama 3.1's."""
    qwen = tokencount.counter("tiny:Qwen/Qwen2.5-7B-Instruct")
    assert qwen.exact and qwen.name == "Qwen/Qwen2.5-7B-Instruct"
    msgs = prompts.messages(TICKET, LABELS, system_prompt="Pick one of: {labels}.")
    assert qwen.count([msgs], ["refund"])["prompt_tokens"] != embedded.count([msgs], ["refund"])["prompt_tokens"]


def test_examples_in_the_prompt_are_paid_for(embedded):
    """Few-shot prompts cost their examples on every request: retrieved shots make the prompt several times
    the zero-shot one, and the count says so; a training example counts prompt and answer."""
    picker = ShotPicker(TRAIN, LABELS, "retrieved", k=4)
    zero = prompts.messages(TICKET, LABELS, system_prompt="Pick one of: {labels}.")
    shots = prompts.messages(TICKET, LABELS, system_prompt="Pick one of: {labels}.", shots=picker(TICKET))
    z, s = embedded.count([zero], ["refund"]), embedded.count([shots], ["refund"])
    assert s["prompt_tokens"] > z["prompt_tokens"] + 4 * 5
    ex = embedded.count_examples([zero + [{"role": "assistant", "content": "refund"}]])
    assert ex["p50"] > z["prompt_tokens"] and ex["n"] == 1


def test_answers_are_counted_with_their_end_of_turn(embedded):
    answers = ["refund", "Hello Ana,\nThank you."]
    a = embedded.count_answers(answers)
    sizes = [len(embedded.tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in answers]
    assert a["answer_tokens"] == sum(sizes) / 2 and a["n"] == 2
    with pytest.raises(ValueError):
        embedded.count_answers([])


def test_answer_text_reads_labels_and_replies():
    assert tokencount.answer_text(Prediction("bug", 0.9, "bug")) == "bug"
    assert tokencount.answer_text(Prediction(None, 0.0, '{"label": "bug"}')) == '{"label": "bug"}'
    assert tokencount.answer_text("Hello Ana,\nThanks.") == "Hello Ana,\nThanks."


# ---------------------------------------------------------------- priced with its own prompt
def test_the_hosted_model_is_priced_with_its_own_prompt():
    """Each side pays for what it is sent: the hosted model its few-shot prompt, the fine-tune its short one.
    Without the hosted model's own count, the seed's view (one figure for both) holds and the verdict says so."""
    cfg = replace(cost.CostConfig(), monthly_requests=1_000_000, input_tokens_per_request=100,
                  output_tokens_per_request=2, hosted_input_tokens_per_request=400,
                  hosted_output_tokens_per_request=3, use_measured=False)
    r = cost.compare(cfg)
    by = {o["name"]: o for o in r["options"]}
    assert by["hosted_frontier"]["monthly_cost"] == 1_000_000 * (400 * 3.0 + 3 * 15.0) / 1e6 == 1_245.0
    assert by["hosted_fine_tune"]["monthly_cost"] == 1_000_000 * (100 + 2) * 0.18 / 1e6
    assert by["hosted_frontier"]["tokens_per_request"] == 403 and by["hosted_fine_tune"]["tokens_per_request"] == 102
    assert by["hosted_frontier"]["per_m_tokens"] == round(1_245.0 / 403, 4)
    seed_view = cost.compare(replace(cfg, hosted_input_tokens_per_request=None, hosted_output_tokens_per_request=None))
    assert {o["name"]: o for o in seed_view["options"]}["hosted_frontier"]["monthly_cost"] == 330.0
    assumed = seed_view["assumed"]["hosted_input_tokens_per_request"]
    assert assumed["source"] == "the fine-tune's input_tokens_per_request" and assumed["value"] == 100
    assert any("hosted_input_tokens_per_request, hosted_output_tokens_per_request not counted" in x
               for x in seed_view["verdict"]["reasons"])
    with pytest.raises(Exception, match="hosted_input_tokens_per_request=-1"):
        replace(cfg, hosted_input_tokens_per_request=-1)


def _run(d, endpoint=False):
    c = {"prompt_tokens": 250.0, "answer_tokens": 2.0, "n": 10, "tokenizer": tokencount.PRICED_FAMILY,
         "exact": False, "why": "counted with Llama 3.1's tokenizer"}
    priced = {"zero_shot": {**c, "prompt_tokens": 90.0}, "few_shot_retrieved": c,
              "heldout_answers": {"answer_tokens": 3.0, "n": 10, "tokenizer": tokencount.PRICED_FAMILY,
                                  "exact": False, "why": "counted with Llama 3.1's tokenizer"}}
    if endpoint:
        priced["endpoint_structured"] = {**c, "prompt_tokens": 260.0, "answer_tokens": 7.0}
    rundir.write_json(d / "00_baseline_prompting.json", {
        "best": {"name": "few_shot_retrieved"}, "priced_tokens": priced,
        "hosted_request": tasks.get("classify").hosted_request(priced, "few_shot_retrieved")})
    rundir.write_json(d / "04_evaluate.json", {"heldout": {}, "priced_tokens": {
        "finetuned": {**c, "prompt_tokens": 95.0, "answer_tokens": 2.0},
        "train_example": {"p50": 97, "mean": 98.0, "n": 800, "tokenizer": tokencount.PRICED_FAMILY, "exact": False,
                          "why": "counted with Llama 3.1's tokenizer"}}})


@pytest.mark.parametrize("endpoint", [False, True])
def test_the_run_prices_counted_tokens_for_the_embedded_model(tmp_path, endpoint):
    """On the embedded default nothing about tokens is assumed: 04's counts price the fine-tune, 00's best prompt
    (or the endpoint's, when ENDPOINT_URL was scored) the hosted model, with the held-out rows' own answer length
    when no hosted model answered, and the verdict says the hosted count is a proxy."""
    _run(tmp_path, endpoint)
    cfg = replace(cost.CostConfig(), model="embedded")
    r = cost.compare(cfg, cost_run.read_measured(tmp_path, cfg, "classify"))
    assert not {"input_tokens_per_request", "output_tokens_per_request", "hosted_input_tokens_per_request",
                "hosted_output_tokens_per_request", "tokens_per_example"} & set(r["assumed"])
    assert (r["config"].input_tokens_per_request, r["config"].tokens_per_example) == (95.0, 97)
    # the hosted model's answers: the endpoint's own when scored, else the held-out rows' (not the prompted base's)
    assert r["config"].hosted_tokens == ((260.0, 7.0) if endpoint else (250.0, 3.0))
    assert ("endpoint_structured" if endpoint else "few_shot_retrieved (00's best prompting system") in \
        r["measured"]["hosted_input_tokens_per_request"]["why"]
    assert any("hosted model's own tokenizer is not public" in x for x in r["verdict"]["reasons"])


def test_00_says_which_prompt_06_prices_the_hosted_model_with():
    task = tasks.get("classify")

    def c(prompt, answer):
        return {"prompt_tokens": prompt, "answer_tokens": answer, "n": 10, "tokenizer": "L", "exact": False, "why": ""}

    priced = {"zero_shot": c(90.0, 2.0), "few_shot_retrieved": c(250.0, 2.0),
              "heldout_answers": {"answer_tokens": 2.5, "n": 10, "tokenizer": "L", "exact": False, "why": ""}}
    results = {"zero_shot": {"macro_f1": 0.1}, "few_shot_retrieved": {"macro_f1": 0.2}}
    rows, reading = task.priced_table(priced, results, task.hosted_request(priced, "few_shot_retrieved"))
    assert [r["system"] for r in rows] == ["zero_shot", "few_shot_retrieved"]
    assert ("few_shot_retrieved's prompt (00's best prompting system): 250 prompt tokens a request (2.8x zero_shot's "
            "90), and 2.5 answer tokens, the held-out rows' own answers") in reading
    priced["endpoint_structured"], results["endpoint_structured"] = c(260.0, 7.0), {"macro_f1": 0.9}
    # the endpoint is also 00's best here: its own answers still price it (not the held-out rows')
    _, reading = task.priced_table(priced, results, task.hosted_request(priced, "endpoint_structured"))
    assert "endpoint_structured's prompt (the endpoint ENDPOINT_URL scored): 260 prompt tokens" in reading
    assert reading.endswith("and its 7.0 answer tokens.")
