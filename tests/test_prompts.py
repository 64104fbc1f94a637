"""One prompt everywhere: per model family (the embedded model and the stand-ins of Llama 3.1,
Qwen 2.5 and Mistral v0.3, with their real tokenizers and original chat templates), the tokens a
model is trained on, scored with and served with are the same, the trained tokens are exactly the
answer and its end-of-turn token, and a double BOS is refused."""
import json
from datetime import datetime

import pytest

from ftplay import data, evaluate, masks, models, prompts
from ftplay.errors import FtplayError

FAMILIES = {  # MODEL -> (mask method, the end-of-turn token a trained answer ends with)
    "embedded": ("template markers", "<|im_end|>"),
    "tiny:Qwen/Qwen2.5-7B-Instruct": ("trl training template", "<|im_end|>"),
    "tiny:meta-llama/Llama-3.1-8B-Instruct": ("render difference", "<|eot_id|>"),
    "tiny:mistralai/Mistral-7B-Instruct-v0.3": ("render difference", "</s>"),
}
LABELS = ["billing", "card_arrival", "feature_request", "bug"]  # two multi-token labels in every family
TICKETS = ["my card was charged twice", " leading space and a\nnewline", "¿Dónde está mi pedido? 42 días"]


@pytest.fixture(scope="module", params=list(FAMILIES))
def fam(request):
    ref = models.resolve(request.param)
    return request.param, ref, models.load_tokenizer(ref)


def test_trained_tokens_are_exactly_the_answer_and_end_of_turn(fam):
    name, _, tok = fam
    method, eot = FAMILIES[name]
    assert prompts.plan(tok).method == method
    for label in LABELS:
        convs = [prompts.messages(t, LABELS, label) for t in TICKETS]
        rows, _ = masks.tokenize_chat(tok, convs, 512)
        for r in rows:
            trained = [t for t, label in zip(r["input_ids"], r["labels"]) if label != -100]
            assert tok.decode(trained) in (label + eot, " " + label + eot), (name, tok.decode(trained))
            assert trained[-1] == tok.convert_tokens_to_ids(eot)
            assert trained == prompts.answer_ids(tok, label)
        assert len(prompts.answer_ids(tok, label)) >= 2


def test_the_prompt_trained_on_is_the_prompt_scored_and_served(fam, tmp_path):
    """One row through every path: 02's curated file -> 03's training ids; 00/04's scorer and
    generator; 05's parity (prompt ids) -> the same prompt tokens."""
    name, _, tok = fam
    rows = [{"id": "r1", "text": TICKETS[1], "label": "card_arrival"}]
    cur = data.Curated(train=rows, heldout=[], production=[], labels=LABELS, report={}, tables={})
    data.write_curated(cur, tmp_path, system_prompt="Triage into one of: {labels}.")
    stored = data.load(tmp_path / "train.jsonl", "chat")
    msgs = json.loads((tmp_path / "train.jsonl").read_text().splitlines()[0])["messages"]
    trained = masks.tokenize_chat(tok, [msgs], 512)[0][0]
    first_trained = next(i for i, label in enumerate(trained["labels"]) if label != -100)
    at_training = trained["input_ids"][:first_trained]
    scorer = evaluate.LabelScorer(None, tok, LABELS, "Triage into one of: {labels}.")
    at_scoring = scorer._prompt_ids(stored[0]["text"])
    at_serving = prompts.prompt_ids(tok, prompts.messages(stored[0]["text"], LABELS,
                                                          system_prompt="Triage into one of: {labels}."))
    assert at_training == at_scoring == at_serving, name
    assert tok.decode(at_serving).count(TICKETS[1].strip()) == 1


def test_a_double_bos_is_refused(fam):
    name, _, tok = fam
    msgs = prompts.messages(TICKETS[0], LABELS)
    ids = prompts.prompt_ids(tok, msgs)
    if tok.bos_token_id is None:  # Qwen and the embedded model have no BOS at all
        assert tok.bos_token_id not in ids[:1]
        return
    assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id
    naive = tok(prompts.render(tok, msgs, add_generation_prompt=True))["input_ids"]  # add_special_tokens=True
    assert naive[:2] == [tok.bos_token_id] * 2, "the family's tokenizer adds BOS and its template writes one"
    with pytest.raises(FtplayError, match="two BOS"):
        prompts.check_bos(naive, tok)
    with pytest.raises(FtplayError, match="two BOS"):
        masks.check_mask(tok, [{"input_ids": naive, "labels": [-100] * (len(naive) - 1) + [naive[-1]]}])


def test_label_tokens_do_not_depend_on_the_ticket(fam):
    name, _, tok = fam
    for label in LABELS:
        seen = set()
        for t in TICKETS:
            full, mask = prompts.training_example(tok, prompts.messages(t, LABELS, label))
            prompt = prompts.prompt_ids(tok, prompts.messages(t, LABELS))
            assert full[: len(prompt)] == prompt and not any(mask[: len(prompt)])
            seen.add(tuple(t for t, m in zip(full, mask) if m))
        assert seen == {tuple(prompts.answer_ids(tok, label))}, (name, label, seen)


@pytest.mark.slow
def test_label_scoring_equals_naive_in_context_scoring(fam):
    import torch

    name, ref, tok = fam
    model = models.load_model(ref)
    scorer = evaluate.LabelScorer(model, tok, LABELS, "Answer with one of: {labels}.", batch_size=2, method="joint")
    got = scorer.logprobs(TICKETS)
    for i, t in enumerate(TICKETS):
        prompt = prompts.prompt_ids(tok, prompts.messages(t, LABELS, system_prompt="Answer with one of: {labels}."))
        for j, label in enumerate(LABELS):
            full, _ = prompts.training_example(tok, prompts.messages(
                t, LABELS, label, system_prompt="Answer with one of: {labels}."))
            cand = prompts.answer_ids(tok, label)
            assert full[len(prompt): len(prompt) + len(cand)] == cand
            with torch.no_grad():
                lp = torch.log_softmax(model(torch.tensor([prompt + cand])).logits[0].float(), -1)
            naive = sum(lp[len(prompt) - 1 + k, c].item() for k, c in enumerate(cand))
            assert got[i, j] == pytest.approx(naive, abs=2e-3), (name, t, label)


def test_mistral_drops_the_system_prompt_from_a_training_conversation_and_ftplay_keeps_it():
    """Mistral v0.3's original template writes the system prompt into the last user turn only, so
    the rendered training conversation (system, user, assistant) has no system prompt at all,
    while the serving prompt (system, user) has it. ftplay trains on the serving prompt + answer."""
    for name in FAMILIES:
        tok = models.load_tokenizer(models.resolve(name))
        assert prompts.prefix_preserving(tok) == (name != "tiny:mistralai/Mistral-7B-Instruct-v0.3"), name
    tok = models.load_tokenizer(models.resolve("tiny:mistralai/Mistral-7B-Instruct-v0.3"))
    msgs = prompts.messages("x", ["billing"], "billing", system_prompt="SYSTEM RULES")
    assert "SYSTEM RULES" not in prompts.render(tok, msgs)
    assert "SYSTEM RULES" in prompts.render(tok, msgs[:-1], True)
    ids, mask = prompts.training_example(tok, msgs)
    assert tok.decode(ids) == "<s>[INST] SYSTEM RULES\n\nx[/INST] billing</s>"
    assert tok.convert_ids_to_tokens([t for t, m in zip(ids, mask) if m]) == ["▁bill", "ing", "</s>"]
    assert prompts.describe(tok)["prefix_preserving"] is False


def test_a_template_that_writes_the_date_renders_the_same_prompt_on_another_day(monkeypatch):
    """Llama 3.2's template prints strftime_now() unless date_string is given; 3.1's has a fixed
    default. prompts passes one fixed date_string, so the prompt does not move with the calendar."""
    from pathlib import Path

    import transformers.utils.chat_template_utils as ctu
    import trl

    tok = models.load_tokenizer(models.resolve("tiny:meta-llama/Llama-3.1-8B-Instruct"))
    llama32 = (Path(trl.__file__).parent / "chat_templates" / "llama3_2.jinja").read_text()
    msgs = prompts.messages(TICKETS[0], LABELS)

    class Day:
        def __init__(self, d):
            self.d = d

        def now(self):
            return self.d

    seen = []
    for day in (datetime(2026, 1, 2), datetime(2027, 6, 30)):
        monkeypatch.setattr(ctu, "datetime", Day(day))
        seen.append(prompts.render(tok, msgs, True, chat_template=llama32))
        unfixed = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, chat_template=llama32)
        assert day.strftime("%d %b %Y") in unfixed  # without the fixed date the prompt follows the calendar
    assert seen[0] == seen[1] and "Today Date: 26 Jul 2024" in seen[0]
    assert prompts.render(tok, msgs, True) == tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def test_a_template_without_generation_markers_trains_the_same_tokens(tiny_ref):
    tok = models.load_tokenizer(tiny_ref)
    conv = prompts.messages("my card was charged twice", ["billing", "bug"], "bug")
    with_markers = masks.tokenize_chat(tok, [conv], 512)[0]
    tok.chat_template = tok.chat_template.replace("{%- generation %}", "").replace("{%- endgeneration %}", "")
    assert prompts.plan(tok).method == "render difference"
    assert masks.tokenize_chat(tok, [conv], 512)[0] == with_markers


def test_a_template_that_is_not_prefix_preserving_is_refused(tiny_ref):
    tok = models.load_tokenizer(tiny_ref)
    tok.chat_template = ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
                         "{% if add_generation_prompt %}assistant (reply):{% endif %}")
    with pytest.raises(FtplayError, match="renders the prompt differently"):
        masks.tokenize_chat(tok, [prompts.messages("x", ["bug"], "bug")], 512)
    with pytest.raises(FtplayError, match="must end with the assistant"):
        prompts.training_example(tok, prompts.messages("x", ["bug"]))


def test_messages_label_schema_and_system_text():
    m = prompts.messages("t", ["a", "b"], "a", system_prompt='Reply as {"label": ...}; one of {labels}.')
    assert m[0]["content"] == 'Reply as {"label": ...}; one of a, b.' and m[-1] == {"role": "assistant",
                                                                                     "content": "a"}
    shots = prompts.messages("t", ["a"], shots=[("s1", "a")])
    assert [x["role"] for x in shots] == ["system", "user", "assistant", "user"]
    schema = prompts.label_schema(["a", "b"])["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == ["a", "b"] and schema["required"] == ["label"]
    assert prompts.parse_structured('{"label": "b"}', ["a", "b"]) == "b"
    assert prompts.parse_structured('{"label": "c"}', ["a", "b"]) is None
    assert prompts.parse_structured("b", ["a", "b"]) is None
    assert prompts.instruction({"text": "t", "label": "a"}, ["a", "b"]) == {
        "instruction": prompts.DEFAULT_SYSTEM_PROMPT.replace("{labels}", "a, b"), "input": "t", "output": "a"}
