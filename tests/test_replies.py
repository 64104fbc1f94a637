"""The reply task's evaluation on hand-built replies: validity, fields, chrF (against sacrebleu's own
scores), paired intervals and McNemar, the gate's rules one by one, and the generator on the tiny model."""
import numpy as np
import pytest
from sacrebleu.metrics import CHRF

from ftplay import evaluate, formats, gate, prompts, replies, tasks
from ftplay.config import ScoringConfig

REPLY = tasks.get("reply")   # the house format

H = formats.HOUSE
NAMES = ["Ann", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ida", "Jo"]


def row(i, label="billing"):
    ref = formats.render(H, name=NAMES[i % 10], topic=f"invoice {i}", details=f"order {100 + i}; charged twice",
                         next_step="we refund the second charge within 5 days")
    return {"id": f"r{i}", "text": f"Hi, {NAMES[i % 10]} here: invoice {i}, order {100 + i} charged twice.",
            "label": label, "output": ref}


def broken(r):
    """The reference without its sign-off: the fields all there, the format not."""
    return r["output"].rsplit("\nKind regards,", 1)[0]


def canned(r):
    """A well-formed reply about another ticket."""
    return formats.render(H, name="there", topic="your account", details="none", next_step="we look into it")


ROWS = [row(i, "billing" if i % 2 else "login") for i in range(40)]
GOOD = [r["output"] for r in ROWS]
BROKEN = [broken(r) for r in ROWS]
CANNED = [canned(r) for r in ROWS]


def mix(k):
    """The first k replies right, the rest without their sign-off."""
    return GOOD[:k] + BROKEN[k:]


# ---------------------------------------------------------------- metrics, exact
def test_score_exact_values():
    rows = [row(i) for i in range(4)]
    o2 = rows[1]["output"].replace("Hello Bo,", "Hello Bob,").replace("Details: order 101;", "Details:  order   101;")
    outs = [rows[0]["output"], o2, broken(rows[2]), "I cannot help with that."]
    m = replies.score(rows, outs, H, n_boot=200)
    assert m["n"] == 4 and m["valid_rate"] == 0.5                     # rows 1 and 2 parse; a lost sign-off does not
    assert m["distinct"] == 4 and replies.score(rows, [outs[0]] * 4, H, n_boot=10)["distinct"] == 1
    assert m["fields"] == {"name": 0.5, "topic": 0.75, "details": 0.75, "next_step": 0.75}   # spaces normalised
    assert m["field_accuracy"] == pytest.approx((1 + 0.75 + 1 + 0) / 4)
    assert {p: v["rate"] for p, v in m["parts"].items()} == {"greeting": 0.75, "topic": 0.75, "details": 0.75,
                                                             "next_step": 0.75, "sign_off": 0.5}
    chrf = CHRF()
    sent = [chrf.sentence_score(o, [r["output"]]).score for o, r in zip(outs, rows)]
    assert sent[0] == 100.0 and m["chrf"] == pytest.approx(np.mean(sent))
    assert m["corpus_chrf"] == pytest.approx(chrf.corpus_score(outs, [[r["output"] for r in rows]]).score)
    for k in ("valid_rate", "field_accuracy", "chrf"):
        lo, hi = m[f"{k}_ci"]
        assert lo <= m[k] <= hi


def test_an_empty_or_missing_reply_is_invalid_and_scores_zero_fields():
    rows = [row(0)]
    m = replies.score(rows, [""], H, n_boot=10)
    assert m["valid_rate"] == 0 and m["field_accuracy"] == 0 and m["chrf"] == 0.0


def test_as_reference_format_needs_the_references_parts_and_has_no_fields():
    B = formats.BITEXT
    rows = [{"id": "a", "text": "t", "label": "x",
             "output": "Sure.\n1. Open {{Account}}.\nContact us if you need help."},
            {"id": "b", "text": "t", "label": "x", "output": "Thanks. We can help."}]
    outs = ["1. Open {{Account}}.\nReach out if you need help.", "We can help."]
    m = replies.score(rows, outs, B, n_boot=10)
    assert m["valid_rate"] == 1.0 and m["field_accuracy"] is None and m["fields"] == {}
    assert m["parts"]["placeholder"] == {"n": 1, "rate": 1.0}      # only the first reference has one
    m = replies.score(rows, ["Open your account", "We can help."], B, n_boot=10)
    assert m["valid_rate"] == 0.5                                   # no placeholder, no steps, no full stop


def test_paired_intervals_and_mcnemar():
    d = replies.paired(ROWS, GOOD, GOOD, H, n_boot=200)
    assert d["valid_rate_diff"] == 0 and d["valid_rate_diff_ci"] == [0.0, 0.0] and d["mcnemar_p"] == 1.0
    assert d["chrf_diff_ci"] == [0.0, 0.0] and d["field_accuracy_diff_ci"] == [0.0, 0.0]
    d = replies.paired(ROWS[:12], mix(6)[:12], BROKEN[:12], H, n_boot=200)
    assert (d["only_a_valid"], d["only_b_valid"]) == (6, 0)
    assert d["mcnemar_p"] == pytest.approx(2 * 0.5 ** 6)            # exact two-sided binomial: 0.03125
    assert d["valid_rate_diff"] == 0.5 and 0 < d["valid_rate_diff_ci"][0] <= 0.5 <= d["valid_rate_diff_ci"][1]
    assert d["chrf_diff"] > 0 and d["chrf_diff_ci"][0] > 0          # the sign-off's characters
    assert d["field_accuracy_diff"] == 0                            # same fields in both
    assert d["mcnemar_p"] == evaluate.mcnemar([True] * 6 + [False] * 6, [False] * 12)[0]


def test_paired_on_baseline_rows_compares_only_the_rows_the_baseline_scored():
    base = {"ids": ["r3", "r1"], "preds": [BROKEN[3], BROKEN[1]]}
    d = tasks.get("reply", scoring=ScoringConfig(n_boot=50)).paired_on_rows(ROWS, GOOD, base)
    assert d["n"] == 2 and d["a_valid_rate"] == 1.0 and d["b_valid_rate"] == 0.0


def test_nearest_reply_answers_with_the_nearest_training_reply():
    nr = replies.NearestReply(ROWS[:10])
    assert nr.reply([ROWS[3]["text"], "Hi, Cy here: invoice 2, order 102 charged twice."]) == [GOOD[3], GOOD[2]]
    assert nr.reply([]) == []


def test_fixed_and_retrieved_shots_are_ticket_reply_pairs():
    fixed = replies.shots(ROWS, ["billing", "login"], "fixed", 4)(ROWS[0]["text"])
    assert len(fixed) == 2 and all(reply in GOOD for _, reply in fixed)
    near = replies.shots(ROWS, ["billing", "login"], "retrieved", 2)(ROWS[5]["text"])
    assert near[-1] == (ROWS[5]["text"], GOOD[5])                   # most similar last, nearest the ticket


def test_outputs_round_trip_and_baselines_read_them(tmp_path):
    from ftplay import rundir

    replies.save_outputs(tmp_path / "predictions" / "00_zero_shot.jsonl", ROWS[:3], BROKEN[:3])
    assert replies.load_outputs(tmp_path / "predictions" / "00_zero_shot.jsonl") == (["r0", "r1", "r2"], BROKEN[:3])
    rundir.record(tmp_path, "00_baseline_prompting", {"systems": {"zero_shot": {}}}, task="reply")
    got = tasks.get("reply").baselines(tmp_path, ROWS[1:5])
    assert got["zero_shot"]["ids"] == ["r1", "r2"] and got["zero_shot"]["preds"] == BROKEN[1:3]


def test_label_table_puts_the_worst_label_first_and_warns_when_small():
    outs = {"finetuned": [g if r["label"] == "login" else b for r, g, b in zip(ROWS, GOOD, BROKEN)], "base": BROKEN}
    t = replies.label_table(ROWS, outs, H, min_rows=25)
    assert [r["label"] for r in t] == ["billing", "login"]
    assert t[0]["finetuned_valid"] == 0 and t[1]["finetuned_valid"] == 1 and t[0]["n"] == 20
    assert "too few" in t[0]["warning"]
    assert t[0]["finetuned_fields"] == 1.0        # a lost sign-off keeps every field
    assert "billing" in REPLY.read_labels(t) and "100% of fields right" in REPLY.read_labels(t)


def test_tables_and_readings_name_the_best_system():
    results = {"heldout": {"good": replies.score(ROWS, GOOD, H, 50), "canned": replies.score(ROWS, CANNED, H, 50)}}
    table = REPLY.summary_table(results)
    assert list(table.index) == [("heldout", "good"), ("heldout", "canned")]
    assert table.iloc[0]["valid [95% CI]"] == "100% [100%, 100%]"
    assert "heldout (40 rows), among this table's systems: good restates the most fields right, 100%" in \
        REPLY.read_summary(results)
    assert "Well-formed but canned: canned (1) distinct replies for 40 tickets" in REPLY.read_summary(results)
    ex = replies.examples(ROWS, {"good": GOOD}, n=2)
    assert len(ex) == 2 and ex[0]["reference"].startswith("Hello ") and " | Support Team" in ex[0]["good"]
    paired = {"heldout": {"finetuned_vs_base": replies.paired(ROWS, GOOD, BROKEN, H, 100)}}
    assert REPLY.comparison_rows(paired)[0]["valid diff [95% CI]"].startswith("+1.000")
    assert "on format validity it beats base" in REPLY.read_comparisons(paired)


# ---------------------------------------------------------------- the gate
def run(ft, base, alts=None, prod=None, cfg=gate.GateConfig(), leakage=None):
    """Score fine-tune, base and alternatives on ROWS (and production `prod`: {name: replies}), then decide."""
    S = {"finetuned": ft, "base": base} | (alts or {})
    results = {"heldout": {k: replies.score(ROWS, o, H, 100) for k, o in S.items()}}
    paired = {"heldout": {f"finetuned_vs_{k}": replies.paired(ROWS, ft, o, H, 200) for k, o in S.items()
                          if k != "finetuned"}}
    if prod:
        results["production"] = {k: replies.score(ROWS, o, H, 100) for k, o in prod.items()}
        paired["production"] = {f"finetuned_vs_{k}": replies.paired(ROWS, prod["finetuned"], o, H, 200)
                                for k, o in prod.items() if k != "finetuned"}
    return REPLY.decide(results, paired, cfg, leakage={"exact": 0, "near": 0} if leakage is None else leakage)


def status(d, name):
    return next(c for c in d["checks"] if c["name"] == name)["status"]


ALTS = {"nearest_reply": CANNED, "endpoint_few_shot": CANNED, "constant_reply": CANNED}
PROD = {"finetuned": GOOD, "base": BROKEN, "nearest_reply": CANNED}


def test_gate_ships_when_every_rule_passes_in_the_classification_shape():
    d = run(GOOD, BROKEN, ALTS, PROD)
    assert d["verdict"] == "ship" and d["ship"] is True and d["better"] is None
    assert all(c["status"] == "pass" for c in d["checks"])
    assert set(d) >= {"ship", "verdict", "checks", "reasons", "better", "config"}
    assert {c["name"] for c in d["checks"]} == {
        "beats_base_heldout", "chrf_vs_base_heldout", "alternatives_heldout", "replaced_model", "beats_base_production",
        "chrf_vs_base_production", "alternatives_production", "production_drop", "part_floor", "leakage",
        "beats_constant_reply"}
    assert all(set(c) == {"name", "status", "text", "field"} for c in d["checks"])


def test_gate_blocks_a_fine_tune_that_does_not_beat_one_canned_reply():
    """The floor: the most common training reply sent to every ticket. Matching it (here: being it) blocks,
    however valid; not scoring it (00 not run) leaves the verdict not proven."""
    d = run(CANNED, BROKEN, {"constant_reply": CANNED}, PROD)
    assert status(d, "beats_constant_reply") == "block" and d["verdict"] == "stop"
    assert "learnt the format, not the ticket" in next(c["text"] for c in d["checks"]
                                                         if c["name"] == "beats_constant_reply")
    assert status(run(GOOD, BROKEN, {"nearest_reply": CANNED}, PROD), "beats_constant_reply") == "not proven"
    train = [{"output": o} for o in ("a", "b", "b", "c", "b", "a")]
    floor = replies.ConstantReply(train)
    assert floor.reply(["x", "y"]) == ["b", "b"] and floor.share == 0.5 and floor.name == "constant_reply"


def test_gate_blocks_when_the_fine_tune_does_not_beat_the_base_on_validity():
    d = run(mix(20), mix(20), ALTS, PROD)
    assert status(d, "beats_base_heldout") == "block" and d["verdict"] == "stop"
    assert "McNemar p=1" in next(c["text"] for c in d["checks"] if c["name"] == "beats_base_heldout")
    assert status(run(mix(21), mix(20), ALTS, PROD), "beats_base_heldout") == "block"   # a sign, not a difference


def test_gate_blocks_a_format_bought_with_the_content():
    d = run(CANNED, BROKEN, ALTS, PROD)                             # always valid, wrong ticket: chrF falls
    assert status(d, "beats_base_heldout") == "pass" and status(d, "chrf_vs_base_heldout") == "block"
    assert d["verdict"] == "stop"


def test_gate_blocks_on_a_better_alternative_and_names_it():
    wrong_quarter = GOOD[:30] + CANNED[30:]                          # valid, a quarter about another ticket
    d = run(wrong_quarter, BROKEN, {"nearest_reply": GOOD, "endpoint_few_shot": CANNED}, PROD)
    assert status(d, "alternatives_heldout") == "block" and d["verdict"] == "stop"
    b = d["better"]   # the house format's primary metric is field accuracy
    assert b["name"] == "nearest_reply" and b["metric"] == "field_accuracy"
    assert b["value"] == 1.0 and b["split"] == "heldout"
    assert b["field_accuracy_diff_ci"][1] < 0 and b["finetuned_value"] == b["finetuned_field_accuracy"] == 0.75
    assert status(run(wrong_quarter, BROKEN, ALTS, PROD), "alternatives_heldout") == "pass"


def test_the_primary_metric_is_fields_where_the_format_has_them_else_chrf():
    assert replies.primary(H) == "field_accuracy" and replies.primary(formats.BITEXT) == "chrf"
    results = {k: replies.score(ROWS, o, H, 20) for k, o in {"nearest_reply": CANNED, "zero_shot": BROKEN,
                                                             "few_shot_fixed": mix(10)}.items()}
    got, _ = tasks.get("reply").baseline_fields(results, {}, ROWS)
    assert got["primary"] == "field_accuracy" and got["best"]["name"] == "few_shot_fixed"   # fields tie at 100%: chrF
    assert got["reference"]["name"] == "nearest_reply" and got["reference"]["field_accuracy"] == 0.0


def test_the_gate_compares_alternatives_on_chrf_for_a_format_without_fields():
    B = formats.BITEXT
    rows = [{"id": f"b{i}", "text": "t", "label": "x", "output": f"Sure, order {i} is on its way. We can help."}
            for i in range(30)]
    good = [r["output"] for r in rows]
    other = ["Sure, it is on its way. We can help." for _ in rows]
    cut = [g[:-12] for g in good]                                    # no full stop at the end: invalid
    S = {"finetuned": other, "base": cut, "nearest_reply": good}
    results = {"heldout": {k: replies.score(rows, o, B, 50) for k, o in S.items()}}
    paired = {"heldout": {f"finetuned_vs_{k}": replies.paired(rows, other, o, B, 100) for k, o in S.items()
                          if k != "finetuned"}}
    d = tasks.get("reply", reply_format="bitext").decide(results, paired)
    assert status(d, "beats_base_heldout") == "pass" and d["better"]["metric"] == "chrf"
    assert d["better"]["name"] == "nearest_reply" and d["better"]["chrf"] == 100.0


def test_max_new_tokens_zero_reads_the_longest_curated_reply():
    from ftplay.errors import ConfigError

    assert replies.max_new_tokens(96, None) == (96, "MAX_NEW_TOKENS=96")
    n, why = replies.max_new_tokens(0, {"p50": 56, "p95": 68, "max": 86})
    assert n == 86 + replies.MARGIN_TOKENS == 102 and "86 tokens" in why
    with pytest.raises(ConfigError, match="MAX_NEW_TOKENS"):
        replies.max_new_tokens(0, None)


def test_gate_is_not_proven_without_the_replaced_model_or_without_alternatives():
    d = run(GOOD, BROKEN, {"nearest_reply": CANNED}, PROD)
    assert status(d, "replaced_model") == "not proven" and d["verdict"] == "not proven"
    d = run(GOOD, BROKEN, None, PROD)
    assert status(d, "alternatives_heldout") == "not proven"


def test_gate_is_not_proven_without_production_rows():
    d = run(GOOD, BROKEN, ALTS)
    assert status(d, "production") == "not proven" and d["verdict"] == "not proven"


def test_gate_blocks_a_validity_drop_on_production():
    d = run(GOOD, BROKEN, ALTS, {"finetuned": mix(20), "base": BROKEN})
    assert status(d, "production_drop") == "block" and any("+0.500" in r for r in d["reasons"])
    assert status(run(GOOD, BROKEN, ALTS, {"finetuned": mix(36), "base": BROKEN}), "production_drop") == "pass"


def test_gate_blocks_a_part_under_its_floor():
    d = run(mix(30), BROKEN, ALTS, PROD)                            # sign-off in 75% of held-out replies
    assert status(d, "part_floor") == "block" and "sign_off" in next(c["text"] for c in d["checks"]
                                                                     if c["name"] == "part_floor")
    assert d["parts"][0]["part"] == "sign_off" and d["parts"][0]["heldout_rate"] == 0.75
    assert "sign_off" in REPLY.read_units(d["parts"], gate.GateConfig())
    assert status(run(mix(30), BROKEN, ALTS, PROD, gate.GateConfig(min_part_rate=0.7)), "part_floor") == "pass"


def test_gate_blocks_leakage():
    assert status(run(GOOD, BROKEN, ALTS, PROD, leakage={"exact": 2, "near": 0}), "leakage") == "block"


def test_min_part_rate_is_validated():
    from ftplay.errors import ConfigError

    with pytest.raises(ConfigError, match="MIN_PART_RATE"):
        gate.GateConfig(min_part_rate=1.5)


# ---------------------------------------------------------------- the tiny real model
def test_generator_writes_text_and_stops_at_end_of_turn(tiny_ref, tiny_tok):
    """The embedded base never learnt to reply, so a model whose end-of-turn token is made certain stands in
    for a trained one: the generator must stop there (one token) and decode nothing of it."""
    import torch

    from ftplay import models

    model = models.load_model(tiny_ref)
    texts = ["My invoice shows a double charge.", "I cannot log in to my account since yesterday at all."]
    gen = replies.ReplyGenerator(model, tiny_tok, H, batch_size=2, max_new_tokens=12)
    outs = gen.reply(texts)
    assert len(outs) == 2 and all(isinstance(o, str) and o.strip() for o in outs)
    assert outs == replies.ReplyGenerator(model, tiny_tok, H, batch_size=1, max_new_tokens=12).reply(texts)  # batching
    ids = prompts.prompt_ids(tiny_tok, gen.messages(texts[0]))
    eot = sorted(prompts.end_of_turn_ids(tiny_tok))[0]
    with torch.no_grad():
        model.lm_head.bias = torch.nn.Parameter(torch.full((model.config.vocab_size,), -1e4))
        model.lm_head.bias[eot] = 1e4
    assert gen.reply(texts) == ["", ""]
    got = model.generate(**tiny_tok.pad({"input_ids": [ids]}, return_tensors="pt"),
                         generation_config=prompts.greedy_config(tiny_tok, 12))
    assert got.shape[1] == len(ids) + 1 and int(got[0, -1]) == eot


def test_a_small_model_decodes_on_one_thread_and_the_count_is_restored(tiny_ref):
    import os

    import torch

    from ftplay import models

    model, before = models.load_model(tiny_ref), torch.get_num_threads()
    with replies.decode_threads(model) as workers:
        assert torch.get_num_threads() == 1 and workers == min(replies.DECODE_WORKERS, os.cpu_count())
    assert torch.get_num_threads() == before


def test_batches_decoded_side_by_side_give_the_same_replies_in_order(tiny_ref, tiny_tok):
    """evaluate.generate's workers: every batch decodes on its own thread, as it would alone, and each reply
    lands on its own row; a worker's error reaches the caller."""
    import threading

    from ftplay import models

    model = models.load_model(tiny_ref)
    texts = [f"Order {i}: {'the parcel is late again and ' * (i % 4)}please help." for i in range(7)]
    ids = [prompts.prompt_ids(tiny_tok, replies.ReplyGenerator(model, tiny_tok, H).messages(t)) for t in texts]
    alone = [evaluate.generate(model, tiny_tok, [i], 10, batch_size=2) for i in ids]  # one prompt per call
    threads, real = set(), model.generate

    def spy(*a, **kw):
        threads.add(threading.current_thread().name)
        return real(*a, **kw)

    model.generate = spy
    one = evaluate.generate(model, tiny_tok, ids, 10, batch_size=2)
    assert threads == {threading.current_thread().name}
    two = evaluate.generate(model, tiny_tok, ids, 10, batch_size=2, workers=2)
    assert len(threads - {threading.current_thread().name}) == 2, threads  # 4 batches on 2 decode threads
    assert two == one and len(set(one)) > 1
    assert [o == a[0] for o, a in zip(one, alone)].count(True) >= 5  # padding may move a float, not the rows

    def broken(*a, **kw):
        raise RuntimeError("decode failed")

    model.generate = broken
    with pytest.raises(RuntimeError, match="decode failed"):
        evaluate.generate(model, tiny_tok, ids, 10, batch_size=2, workers=2)


def test_endpoint_replier_sends_the_reply_conversation_at_temperature_zero():
    from types import SimpleNamespace

    sent = []

    class Completions:
        def create(self, **kw):
            sent.append(kw)
            return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=GOOD[0]))])

    client = SimpleNamespace(chat=SimpleNamespace(completions=Completions()))
    ep = replies.EndpointReplier(client, "gpt-x", H, shots=replies.shots(ROWS, ["billing", "login"], "fixed"),
                                 max_tokens=102, extra_body={"repetition_penalty": 1.0})
    assert ep.reply([ROWS[0]["text"], ROWS[1]["text"]]) == [GOOD[0], GOOD[0]]
    kw = sent[0]
    assert kw["model"] == "gpt-x" and kw["temperature"] == 0 and kw["max_tokens"] == 102 and kw["extra_body"]
    assert kw["messages"][0] == {"role": "system", "content": prompts.reply_system_text(H)}
    assert [m["role"] for m in kw["messages"]] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert kw["messages"][-1]["content"] in (ROWS[0]["text"], ROWS[1]["text"]) and "response_format" not in kw


def test_readings_say_no_part_is_missed_and_rank_labels_by_the_primary_metric():
    """Issue 28: with every part in every reply, 04 named one "the part the fine-tune misses most"; and its
    weakest label was ranked by chrF where the task's primary metric is field accuracy."""
    top = {"part": "details", "heldout_rate": 1.0, "production_rate": 1.0, "heldout_base_rate": 0.0,
           "production_base_rate": 0.0}
    assert REPLY.read_worst(top).startswith("The fine-tune writes every part of the format in every reply")
    assert "misses most is details: in 90%" in REPLY.read_worst({**top, "production_rate": 0.9, "heldout_rate": 0.9})

def test_label_table_ranks_the_weakest_label_by_field_accuracy_before_chrf(monkeypatch):
    rows = [{"label": "a"}, {"label": "a"}, {"label": "b"}, {"label": "b"}]
    # label a: every field wrong but close words (chrF 90); label b: every field right, chrF 50
    scores = {"valid": np.array([1.0, 1.0, 1.0, 1.0]), "fields": np.array([0.0, 0.0, 1.0, 1.0]),
              "chrf": np.array([90.0, 90.0, 50.0, 50.0])}
    monkeypatch.setattr(replies, "row_scores", lambda rows, outputs, fmt: scores)
    t = replies.label_table(rows, {"finetuned": ["x"] * 4}, H, min_rows=1)
    assert [r["label"] for r in t] == ["a", "b"]


def test_reply_figure_puts_each_part_beside_the_canned_references():
    """04's reply figure: per part, fine-tune and base held-out, and 00's constant and nearest replies scored on
    the same rows (only the rows 00 scored)."""
    import matplotlib
    matplotlib.use("Agg")
    task = tasks.get("reply", scoring=ScoringConfig(n_boot=20))
    results = {"heldout": {"finetuned": task.score(ROWS, GOOD), "base": task.score(ROWS, CANNED)}}
    others = {"constant_reply": {"ids": [r["id"] for r in ROWS[:10]], "preds": CANNED[:10]},
              "nearest_reply": {"ids": [r["id"] for r in ROWS], "preds": GOOD}}
    figs = task.figures(results, others, ROWS)
    ax = figs["04_reply_parts"].axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "fine-tuned", "base", "constant_reply (00)", "nearest_reply (00)"]
    heights = [round(b.get_height(), 2) for b in ax.patches]
    assert heights[:4] == [1.0] * 4 and heights[12:] == [1.0] * 4     # fine-tune and nearest: every part right
    assert heights[4:8] == heights[8:12] and max(heights[4:8]) < 1     # the canned reply, on 40 rows and on 10
    assert task.figures(results)["04_reply_parts"].axes[0].get_legend().get_texts()[-1].get_text() == "base"
