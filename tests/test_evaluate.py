"""Evaluation harness: shared-prefix scoring equals naive scoring; metrics, paired test, gate."""
import os.path

import numpy as np
import pytest

from ftplay import evaluate, prompts, tasks
from ftplay.config import ScoringConfig
from ftplay.evaluate import Prediction

LABELS = ["billing", "bug", "shipping", "card_arrival"]
SYS = "Answer with one of: {labels}."


FAMILIES = ["embedded", "tiny:Qwen/Qwen2.5-7B-Instruct", "tiny:mistralai/Mistral-7B-Instruct-v0.3",
            "tiny:meta-llama/Llama-3.1-8B-Instruct"]
TRIE_LABELS = ["billing", "bill", "billing_dispute", "bug", "card_arrival"]  # labels sharing first tokens
TEXTS = ["my card was charged twice", "the app crashes when I open settings and I lost my order",
         "where is my parcel?", "x", "¿Dónde está mi pedido? 42 días"]


@pytest.fixture(scope="module", params=FAMILIES)
def fam(request):
    from ftplay import models

    ref = models.resolve(request.param)
    model = models.load_model(ref)
    model.eval()
    return request.param, model, models.load_tokenizer(ref)


def _naive_logprobs(model, tok, text, labels, shots=(), method="joint"):
    """Each candidate scored by its own full forward pass over prompt + answer: slow, obviously right. "joint":
    the sum of its tokens' log-probs; "constrained": each token's log-prob renormalised over the tokens that
    continue some label at that point (zero where it is the only one)."""
    import torch

    prompt = prompts.prompt_ids(tok, prompts.messages(text, labels, system_prompt=SYS, shots=shots))
    cands = [prompts.answer_ids(tok, lab) for lab in labels]
    out = []
    for cand in cands:
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([prompt + cand])).logits[0].float(), -1)
        total = 0.0
        for i, c in enumerate(cand):
            row = lp[len(prompt) - 1 + i]
            if method == "joint":
                total += row[c].item()
            else:
                allowed = sorted({d[i] for d in cands if len(d) > i and d[:i] == cand[:i]})
                total += (row[c] - torch.logsumexp(row[allowed], 0)).item()
        out.append(total)
    return np.array(out)


@pytest.mark.parametrize("method", evaluate.LabelScorer.METHODS)
def test_shared_prefix_scoring_matches_naive(fam, method):
    """The prefix's cache, the left-padded tickets and the label trie give each label's exact log-probability
    under either method, on the embedded model and on Qwen's, Mistral's and Llama's stand-ins (Mistral writes
    the system prompt into the user turn, so its shared prefix ends inside that turn)."""
    name, model, tok = fam
    scorer = evaluate.LabelScorer(model, tok, TRIE_LABELS, SYS, batch_size=2, method=method)
    got = scorer.logprobs(TEXTS)
    first = [prompts.prompt_ids(tok, prompts.messages(t, TRIE_LABELS, system_prompt=SYS)) for t in TEXTS]
    assert 0 < scorer.prefix_tokens < min(map(len, first)), name
    assert first[0][: scorer.prefix_tokens] == first[-1][: scorer.prefix_tokens]
    assert first[0][scorer.prefix_tokens] != first[1][scorer.prefix_tokens]  # the longest shared prefix
    # float32 sums in another order: log-probs near -80 differ by up to 2e-6 of their size (seen on CI)
    for i, t in enumerate(TEXTS):
        np.testing.assert_allclose(got[i], _naive_logprobs(model, tok, t, TRIE_LABELS, method=method), rtol=1e-5,
                                   atol=1e-4, err_msg=name)
    one = scorer.logprobs(TEXTS[1:2])  # one prompt: all of it shared but its last token
    assert scorer.prefix_tokens == len(first[1]) - 1
    np.testing.assert_allclose(one[0], got[1], rtol=1e-5, atol=1e-4)
    preds = scorer.predict(TEXTS)
    assert [p.label for p in preds] == [TRIE_LABELS[j] for j in got.argmax(1)]
    assert all(0 < p.confidence <= 1 for p in preds)
    if method == "constrained":  # a distribution over the labels by itself, before predict() renormalises
        np.testing.assert_allclose(np.exp(got).sum(1), 1.0, rtol=1e-4, err_msg=name)


def test_the_methods_differ_where_a_label_could_go_on(fam):
    """On random stand-in weights end-of-turn after a label is far from certain, so the joint likelihood (which
    pays for it) and constrained decoding (where it is forced unless another label goes on) must differ: the
    methods are not one computation under two names."""
    name, model, tok = fam
    joint = evaluate.LabelScorer(model, tok, TRIE_LABELS, SYS, method="joint").logprobs(TEXTS)
    constrained = evaluate.LabelScorer(model, tok, TRIE_LABELS, SYS).logprobs(TEXTS)
    assert (constrained >= joint - 1e-4).all(), name  # renormalising over fewer tokens never lowers a log-prob
    assert np.abs(constrained - joint).max() > 1.0, name


# shared first tokens, 2 to 10 tokens each; labels parting after their third token, so that constrained decoding
# (which runs a node only where labels below it differ) has later nodes to prune too
SEARCH_LABELS = TRIE_LABELS + ["bug_report", "refund_request", "billing_dispute_open", "billing_dispute_closed",
                               "bug_report_ios", "bug_report_android"]


@pytest.mark.parametrize("method", evaluate.LabelScorer.METHODS)
@pytest.mark.parametrize("margin", [15.0, 2.0, 0.0])
def test_pruned_search_keeps_the_exact_argmax_and_confidence_within_its_bound(fam, margin, method):
    """predict()'s best-first search: the same label as exact scoring on every row, exact log-probs for the labels
    it completes, only labels more than `margin` below the best left out, and confidence within the docstring's
    (n_labels - 1) * e^-margin of the exact one."""
    name, model, tok = fam
    exact = evaluate.LabelScorer(model, tok, SEARCH_LABELS, SYS, batch_size=2, margin=None, method=method)
    pruned = evaluate.LabelScorer(model, tok, SEARCH_LABELS, SYS, batch_size=2, margin=margin, method=method)
    full, got = exact.logprobs(TEXTS), pruned.search(TEXTS)
    kept = np.isfinite(got)
    assert (got.argmax(1) == full.argmax(1)).all(), name
    np.testing.assert_allclose(got[kept], full[kept], rtol=1e-5, atol=1e-4, err_msg=name)
    best = full.max(1, keepdims=True)
    assert (full[~kept] < (best - margin + 1e-4).repeat(len(SEARCH_LABELS), 1)[~kept]).all(), name
    if margin <= (2 if method == "joint" else 0):
        assert not kept.all(), name  # something was left out: the bound is tested, not vacuous
    bound = (len(SEARCH_LABELS) - 1) * np.exp(-margin) + 1e-6
    for p, q in zip(pruned.predict(TEXTS), exact.predict(TEXTS)):
        assert p.label == q.label and abs(p.confidence - q.confidence) <= bound, name
    assert pruned.expanded < len(TEXTS) * len(exact._tree()[0]) or margin > 2


def test_constrained_predict_stops_at_the_best_label_with_its_exact_confidence(fam):
    """Constrained probabilities sum to one over the labels, so predict() needs no other label completed: the
    same label as exact scoring, the confidence exp(its log-prob) = its share of every label's, and fewer
    trie nodes run than exact scoring runs."""
    name, model, tok = fam
    exact = evaluate.LabelScorer(model, tok, SEARCH_LABELS, SYS, batch_size=2, margin=None)
    full = exact.logprobs(TEXTS)
    ran = exact.expanded
    scorer = evaluate.LabelScorer(model, tok, SEARCH_LABELS, SYS, batch_size=2)
    preds = scorer.predict(TEXTS)
    probs = np.exp(full) / np.exp(full).sum(1, keepdims=True)
    for i, p in enumerate(preds):
        assert p.label == SEARCH_LABELS[full[i].argmax()], name
        assert p.confidence == pytest.approx(probs[i].max(), abs=1e-5), name
    assert scorer.expanded < ran, name


def test_search_expands_further_when_the_best_partial_label_ends_badly():
    """Joint likelihood on Qwen's stand-in: 'billing_dispute' leads after its first two tokens (above 'billing',
    already complete with its end-of-turn), but its later tokens are unlikely: even with no margin the search must
    run its next node, see it fall below 'billing' and only then stop; stopping at the first complete label would
    not."""
    import torch

    from ftplay import models

    ref = models.resolve("tiny:Qwen/Qwen2.5-7B-Instruct")
    model, tok = models.load_model(ref), models.load_tokenizer(ref)
    model.eval()
    labels = ["billing", "billing_dispute", "bug"]
    scorer = evaluate.LabelScorer(model, tok, labels, SYS, batch_size=2, margin=0.0, method="joint")
    text = TEXTS[0]
    prompt = prompts.prompt_ids(tok, prompts.messages(text, labels, system_prompt=SYS))
    cand = [prompts.answer_ids(tok, label) for label in labels]
    per = []
    for c in cand:
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([prompt + c])).logits[0].float(), -1)
        per.append([lp[len(prompt) - 1 + i, t].item() for i, t in enumerate(c)])
    assert len(cand[0]) == 2 and len(cand[1]) > 3 and cand[1][0] == cand[0][0]
    assert sum(per[1][:2]) > sum(per[0]) > sum(per[1][:3])  # leads after two tokens, behind after three
    got = scorer.search([text])
    assert labels[int(got.argmax())] == "billing" and np.isinf(got[0, 1])
    assert scorer.expanded == len({c[0] for c in cand}) + 1  # the first level (with the ticket), then its node


def test_the_last_layer_runs_only_the_positions_whose_logits_are_kept(fam):
    """Exact joint scoring runs tickets + trie in one pass but needs logits only at the last ticket position and the
    trie: the last decoder layer's MLP sees only those (its keys and values still cover every position)."""
    name, model, tok = fam
    scorer = evaluate.LabelScorer(model, tok, TRIE_LABELS, SYS, batch_size=8, margin=None, method="joint")
    layers = next(m for n, m in model.named_modules() if n.endswith("layers"))
    seen = {0: [], len(layers) - 1: []}
    hooks = [layers[i].mlp.register_forward_pre_hook(lambda mod, a, i=i: seen[i].append(a[0].shape[1])) for i in seen]
    try:
        scorer.logprobs(TEXTS)
    finally:
        for h in hooks:
            h.remove()
    Q = len(scorer._tree()[0])
    n = max(len(scorer._prompt_ids(t)) for t in TEXTS) - scorer.prefix_tokens
    assert seen[0] == [scorer.prefix_tokens, n + Q], name
    assert seen[len(layers) - 1] == [scorer.prefix_tokens, Q + 1], name


def test_labels_sharing_first_tokens_share_trie_nodes(tiny_tok):
    scorer = evaluate.LabelScorer(None, tiny_tok, TRIE_LABELS, SYS)
    tok, depth, see, at, target, owner = scorer._tree()
    assert len(tok) < sum(len(c) - 1 for c in scorer.cand)  # 'billing' and 'billing_dispute' share 'billing'
    assert len(at) == sum(len(c) - 1 for c in scorer.cand)  # every label token after the first is still scored
    assert see.diagonal().all() and not see.triu(1).any()  # each node sees its ancestors and itself only
    assert sorted(set(owner.tolist())) == list(range(len(TRIE_LABELS)))


def test_the_shared_prefix_runs_once_and_batches_run_only_their_own_tokens(tiny_ref, tiny_tok):
    """Counting the tokens the model runs: the shared prefix once, then each batch its tickets (left-padded)
    and the label trie; with fixed shots the shared prefix grows by the shots."""
    from ftplay import models

    model = models.load_model(tiny_ref)
    model.eval()
    calls = []
    forward = model.forward
    model.forward = lambda *a, **k: calls.append(tuple(k["input_ids"].shape)) or forward(*a, **k)
    shots = evaluate.ShotPicker([{"text": "refund my order", "label": "billing"},
                                 {"text": "app crashes", "label": "bug"}], TRIE_LABELS, "fixed")
    for picker in (None, shots):
        calls.clear()
        scorer = evaluate.LabelScorer(model, tiny_tok, TRIE_LABELS, SYS, shots=picker, batch_size=2, method="joint")
        scorer.logprobs(TEXTS)
        ids = sorted((scorer._prompt_ids(t) for t in TEXTS), key=len)
        P, Q = scorer.prefix_tokens, len(scorer._tree()[0])
        assert calls[0] == (1, P) and P == len(os.path.commonprefix(ids))
        assert calls[1:] == [(len(b), max(len(i) for i in b) - P + Q) for b in (ids[0:2], ids[2:4], ids[4:])]
        if picker is None:
            no_shots = P
    assert P > no_shots + 10  # the fixed shots are in the shared prefix


def test_constrained_scoring_runs_only_the_nodes_where_labels_still_differ(tiny_ref, tiny_tok):
    """Constrained decoding forces a token that is the only continuation, so the search runs a trie node only
    where labels below it still differ. Labels of one token each: the tickets' pass is all (one call per batch,
    no label token in it). Labels sharing first tokens: exactly the keys with two or more labels below run."""
    from ftplay import models

    model = models.load_model(tiny_ref)
    model.eval()
    calls = []
    forward = model.forward
    model.forward = lambda *a, **k: calls.append(tuple(k["input_ids"].shape)) or forward(*a, **k)
    single = [label for label in LABELS + ["account", "feature", "refund", "other"]
              if len(prompts.answer_ids(tiny_tok, label)) == 2]
    assert len(single) >= 3, single
    scorer = evaluate.LabelScorer(model, tiny_tok, single, SYS, batch_size=2)
    scorer.predict(TEXTS)
    ids = sorted((scorer._prompt_ids(t) for t in TEXTS), key=len)
    P = scorer.prefix_tokens
    assert calls == [(1, P)] + [(len(b), max(map(len, b)) - P) for b in (ids[0:2], ids[2:4], ids[4:])]
    assert scorer.expanded == 0

    scorer = evaluate.LabelScorer(model, tiny_tok, TRIE_LABELS, SYS, batch_size=2)
    scorer.logprobs(TEXTS)
    cands = [tuple(c) for c in scorer.cand]
    branching = {c[:k] for c in cands for k in range(1, len(c)) if sum(d[:k] == c[:k] for d in cands) > 1}
    assert branching and scorer.expanded == len(TEXTS) * len(branching)
    joint = evaluate.LabelScorer(model, tiny_tok, TRIE_LABELS, SYS, batch_size=2, method="joint")
    joint.logprobs(TEXTS)
    assert joint.expanded > scorer.expanded


def test_a_scorer_refuses_labels_it_cannot_tell_apart_and_unknown_methods(tiny_tok, monkeypatch):
    with pytest.raises(ValueError, match="method='likelihood'"):
        evaluate.LabelScorer(None, tiny_tok, LABELS, SYS, method="likelihood")
    with pytest.raises(ValueError, match="'bug' and 'bug'"):
        evaluate.LabelScorer(None, tiny_tok, ["bug", "billing", "bug"], SYS)
    real = prompts.answer_ids  # two spellings one tokenizer renders alike (here: made alike)
    with monkeypatch.context() as m:
        m.setattr(prompts, "answer_ids", lambda tok, label, how=None: real(tok, label.strip(), how))
        with pytest.raises(ValueError, match="'bug' and 'bug '"):
            evaluate.LabelScorer(None, tiny_tok, ["bug", "billing", "bug "], SYS)


@pytest.mark.parametrize("raw,expected", [
    ("billing", "billing"), (" Billing.", "billing"), ('{"label": "bug"}', "bug"),
    ("I think this is a shipping issue", "shipping"), ("billing or bug", None), ("no idea", None), ("", None)])
def test_parse_label(raw, expected):
    assert evaluate.parse_label(raw, LABELS) == expected


def _preds(labels, conf=None):
    return [Prediction(label, c) for label, c in zip(labels, conf or [0.9] * len(labels))]


def test_score_exact_values():
    y = ["a", "a", "b", "b"]
    m = evaluate.score(y, _preds(["a", "b", "b", None]), ["a", "b"], n_boot=50)
    assert m["accuracy"] == 0.5
    # a: P=1 R=.5 F1=.667; b: P=.5 R=.5 F1=.5 -> macro .5833
    assert m["macro_f1"] == pytest.approx(0.58333, abs=1e-4)
    assert m["valid_rate"] == 0.75
    assert m["confusion"]["matrix"] == [[1, 1], [0, 1]]
    assert m["accuracy_ci"][0] <= m["accuracy"] <= m["accuracy_ci"][1]


def test_paired_difference_and_mcnemar():
    y = ["a"] * 30 + ["b"] * 30
    better = _preds(y)                                  # all right
    worse = _preds(["b"] * 30 + ["b"] * 30)             # gets every "a" wrong
    d = evaluate.paired_difference(y, better, worse, ["a", "b"], n_boot=200)
    assert d["only_a_right"] == 30 and d["only_b_right"] == 0
    assert d["mcnemar_p"] < 1e-8
    assert d["macro_f1_diff_ci"][0] > 0
    same = evaluate.paired_difference(y, better, better, ["a", "b"], n_boot=50)
    assert same["mcnemar_p"] == 1.0 and same["macro_f1_diff"] == 0


def test_selective_curve_accuracy_rises_as_doubtful_rows_are_escalated():
    y = ["a"] * 10
    preds = [Prediction("a" if i < 7 else "b", c) for i, c in enumerate([.99, .98, .97, .96, .95, .9, .85, .3, .2, .1])]
    curve = evaluate.selective_curve(y, preds, steps=11)
    ci = curve[0].pop("accuracy_kept_ci")
    assert curve[0] == {"escalated": 0.0, "kept": 10, "accuracy_kept": 0.7, "threshold": 0.1}
    assert ci == pytest.approx([0.3968, 0.8922], abs=1e-4)   # Wilson 7/10
    at30 = next(c for c in curve if c["escalated"] == 0.3)
    assert at30["accuracy_kept"] == 1.0 and at30["kept"] == 7
    assert at30["accuracy_kept_ci"][1] == 1.0 and at30["accuracy_kept_ci"][0] == pytest.approx(0.6457, abs=1e-4)
    assert curve[-1]["kept"] == 0 and curve[-1]["accuracy_kept"] is None


def test_slices_warn_when_small():
    rows = [{"id": str(i), "text": "short text here" if i % 2 else "a much longer ticket " * 10,
             "label": "a" if i < 15 else "b"}
            for i in range(18)]
    preds = _preds([r["label"] for r in rows])
    s = evaluate.slices(rows, preds, preds, ["a", "b"], evaluate.vocabulary(rows), min_rows=20)
    assert s["long_tickets"]["n"] > 0 and "too few" in s["long_tickets"]["warning"]
    assert s["small_labels"]["labels"] == ["a", "b"]


def test_macro_f1_counts_only_labels_in_the_rows_or_answers():
    """A 2-label slice of a 4-label task: perfect answers score 1.0, not 0.5 for two absent labels."""
    truth = ["billing", "bug", "billing", "bug"]
    perfect = [Prediction(label, 1.0) for label in truth]
    assert evaluate.score(truth, perfect, LABELS, n_boot=20)["macro_f1"] == 1.0
    one_wrong = perfect[:3] + [Prediction("shipping", 1.0)]  # a false positive on an absent label counts
    assert abs(evaluate.score(truth, one_wrong, LABELS, n_boot=20)["macro_f1"] - (1 + 2 / 3 + 0) / 3) < 1e-9
    invalid = perfect[:3] + [Prediction(None, 0.0)]
    assert abs(evaluate.score(truth, invalid, LABELS, n_boot=20)["macro_f1"] - (1 + 2 / 3) / 2) < 1e-9


def test_baseline_comparison_uses_the_rows_the_baseline_scored():
    rows = [{"id": f"r{i}", "label": lab} for i, lab in enumerate(["a"] * 6 + ["b"] * 6)]
    ft = _preds([r["label"] for r in rows])                          # right on every row
    baseline = {"ids": ["r11", "r0", "r7"], "preds": _preds(["b", "b", "b"])}  # scored 3 rows, in its own order
    task = tasks.get("classify", scoring=ScoringConfig(n_boot=50)).bind(["a", "b"], None)
    d = task.paired_on_rows(rows, ft, baseline)
    assert d == evaluate.paired_difference(["b", "a", "b"], _preds(["b", "a", "b"]), baseline["preds"], ["a", "b"], 50)
    assert d["only_a_right"] == 1 and d["only_b_right"] == 0


def test_score_systems_scores_each_model_on_each_split_and_saves_predictions(tiny_ref, tiny_tok, tmp_path):
    from ftplay import models

    rows = [{"id": "1", "text": "my card was charged twice", "label": "billing"},
            {"id": "2", "text": "the app crashes on start", "label": "bug"}]
    model = models.load_model(tiny_ref)
    task = tasks.get("classify", scoring=ScoringConfig(batch_size=2, n_boot=20)).bind(LABELS, SYS, tiny_tok)
    systems = {name: task.system(model, name) for name in ("base", "same")}
    results, preds = task.score_systems(systems, {"heldout": rows, "production": []}, out_dir=tmp_path)
    assert list(results) == ["heldout"] and list(results["heldout"]) == ["base", "same"]
    assert list(preds) == [("heldout", "base"), ("heldout", "same")] and len(preds[("heldout", "base")]) == 2
    assert [p.label for p in preds[("heldout", "base")]] == [p.label for p in preds[("heldout", "same")]]
    ids, saved = evaluate.load_predictions(tmp_path / "04_heldout_base.jsonl")
    assert ids == ["1", "2"] and [p.label for p in saved] == [p.label for p in preds[("heldout", "base")]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["04_heldout_base.jsonl", "04_heldout_same.jsonl"]
    for method in evaluate.LabelScorer.METHODS:  # the notebooks' SCORING_METHOD reaches the scorer
        task = tasks.get("classify", scoring=ScoringConfig(method, 2, 20)).bind(LABELS, SYS, tiny_tok)
        _, got = task.score_systems({"base": task.system(model, "base")}, {"heldout": rows})
        want = evaluate.LabelScorer(model, tiny_tok, LABELS, SYS, method=method).predict([r["text"] for r in rows])
        assert [(p.label, p.confidence) for p in got[("heldout", "base")]] == [(p.label, p.confidence) for p in want]
    texts = [r["text"] for r in rows]
    assert [p.confidence for p in evaluate.LabelScorer(model, tiny_tok, LABELS, SYS, method="joint").predict(texts)] \
        != [p.confidence for p in evaluate.LabelScorer(model, tiny_tok, LABELS, SYS).predict(texts)]  # told apart


def test_vectorised_macro_f1_equals_sklearn_on_every_resample():
    """The bootstrap counts F1 with one bincount per matrix of resamples: it must give sklearn's
    f1_score over the labels present (truths or answers), with invalid and unknown answers wrong."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    labels = ["a", "b", "c", "d", "e"]
    truth = list(rng.choice(labels[:4], 60))                     # "e" never true
    answers = [None if x < 0.1 else "zzz" if x < 0.15 else str(rng.choice(labels)) for x in rng.random(60)]
    def sk(t, p):
        p = ["<invalid>" if x is None else x for x in p]
        seen = set(t) | set(p)
        return f1_score(t, p, labels=[label for label in labels if label in seen], average="macro", zero_division=0)
    t, p = evaluate._codes(labels, truth, answers)
    idx = rng.integers(0, 60, size=(50, 12))                       # small resamples: labels go missing
    fast = evaluate._f1_codes(t[0][idx], p[0][idx], len(labels))
    slow = [sk([truth[i] for i in row], [answers[i] for i in row]) for row in idx]
    assert np.allclose(fast, slow)
    assert evaluate._f1(labels)(truth, answers) == pytest.approx(sk(truth, answers))


def test_answer_examples_show_raw_answers_and_scored_labels():
    rows = [{"text": "my card was charged twice " * 5, "label": "billing"}, {"text": "app crashes", "label": "bug"}]
    preds = {"zero_shot": [Prediction("billing", 0.41, "billing"), Prediction("bug", 0.9, "bug")],
             "free_text": [Prediction(None, 0.0, "I am sorry to hear that, let me"), Prediction("bug", 1.0, "bug")]}
    ex = evaluate.answer_examples(rows, preds, n=2, width=30)
    assert ex[0]["ticket"] == "my card was charged twice m..." and ex[0]["label"] == "billing"
    assert ex[0]["zero_shot"] == "billing (0.41)" and ex[1]["free_text"] == "bug (1.00)"
    assert ex[0]["free_text"] == "'I am sorry to hear that, let me' (not a label)"


def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_rows():
    p, only_a, only_b = evaluate.mcnemar([1, 1, 1, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0, 1])
    assert (only_a, only_b) == (5, 0) and p == 2 * 0.5 ** 5
    assert evaluate.mcnemar([1, 0], [1, 0]) == (1.0, 0, 0)


def test_shot_picker_answers_with_the_field_it_is_given():
    rows = [{"text": "refund my order", "label": "billing", "output": "Hello there, ... refund"},
            {"text": "app crashes", "label": "bug", "output": "Hello there, ... crash"}]
    assert evaluate.ShotPicker(rows, ["billing", "bug"], "fixed")("x") == [("refund my order", "billing"),
                                                                          ("app crashes", "bug")]
    near = evaluate.ShotPicker(rows, ["billing", "bug"], "retrieved", k=1, answer="output")("the app crashes")
    assert near == [("app crashes", "Hello there, ... crash")]
