"""The stand-in for the hosted model (ftplay/hosted_standin.py): what it is trained on, how, and when 00 scores it.

Its build and a real vLLM server scoring it through ENDPOINT_URL's code path run in the default playbook's smoke
test (tests/test_notebooks.py), which reads what 00 and 06 recorded of it."""
import csv
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ftplay import hosted_standin, prompts, tasks

DATA = Path(__file__).resolve().parents[1] / "data"
EVALUATED = ("tickets_raw.csv", "production_samples.csv", "replies_raw.csv", "replies_production.csv")


def _word_sets(texts):
    return [set(re.sub(r"[^\w\s]", "", t.lower()).split()) for t in texts]


def _max_jaccard(a, b):
    """For each word set of `a`, its largest Jaccard similarity to any of `b` (sparse 0/1 products)."""
    from scipy import sparse

    vocab = {w: i for i, w in enumerate(sorted(set().union(*a, *b)))}

    def matrix(sets):
        rows = [i for i, s in enumerate(sets) for _ in s]
        cols = [vocab[w] for s in sets for w in s]
        return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sets), len(vocab)))

    shared = (matrix(a) @ matrix(b).T).toarray()
    size_a, size_b = np.array([len(s) for s in a])[:, None], np.array([len(s) for s in b])[None, :]
    return (shared / (size_a + size_b - shared)).max(axis=1)


def _texts(name):
    with open(DATA / name, newline="", encoding="utf-8") as f:
        return [r["text"] for r in csv.DictReader(f)]


@pytest.mark.parametrize("trained_on", ["hosted_sample.csv", "pretrain_corpus.txt"])
def test_what_the_embedded_models_train_on_shares_no_ticket_the_playbook_evaluates(trained_on):
    """The "beat the base" and "match the hosted model" comparisons stay fair: no text the base or the stand-in
    was trained on is within Jaccard 0.5 of a ticket in the export, the production samples or the reply files."""
    texts = _texts(trained_on) if trained_on.endswith(".csv") else \
        (DATA / trained_on).read_text(encoding="utf-8").splitlines()
    evaluated = [t for name in EVALUATED for t in _texts(name)]
    assert len(texts) >= 2000 and len(evaluated) > 3000
    closest = _max_jaccard(_word_sets(texts), _word_sets(evaluated))
    assert closest.max() < 0.5, f"{(closest >= 0.5).sum()} texts of {trained_on} near a ticket the playbook scores"
    assert closest.max() > 0.2, "the check compares words at all"


def test_the_hosted_sample_draws_every_label_evenly_with_a_house_reply():
    rows = hosted_standin.read_sample()
    counts = Counter(r["label"] for r in rows)
    raw = Counter(r["label"] for r in csv.DictReader(open(DATA / "tickets_raw.csv", encoding="utf-8")))
    assert set(counts) == set(raw), "the labels of the export, and no other"
    even = len(rows) / len(counts)   # each label drawn with the same chance, not the export's skew
    assert all(abs(c - even) < 0.25 * even for c in counts.values()), counts
    assert all(r["reply"].startswith("Hello") and r["reply"].rstrip().endswith("Support Team") for r in rows)


def test_training_conversations_ask_as_00_asks_and_never_show_a_ticket_its_own_answer():
    spec = hosted_standin.HostedSpec(triage_rows=400, reply_rows=50)
    rows = hosted_standin.read_sample()
    labels = sorted({r["label"] for r in rows})
    convs = hosted_standin.conversations(rows, spec, labels)
    assert Counter(t for _, t in convs) == {"classify": 400, "reply": 50}
    triage = [m for m, t in convs if t == "classify"]
    answers = [m[-1]["content"] for m in triage]
    as_json = [json.loads(a)["label"] for a in answers if a.startswith("{")]
    assert 0.35 < len(as_json) / len(answers) < 0.65 and set(as_json) <= set(labels)
    assert {a for a in answers if not a.startswith("{")} <= set(labels)
    with_shots = [m for m in triage if len(m) > 3]
    assert 0.15 < len(with_shots) / len(triage) < 0.35
    assert max((len(m) - 3) // 2 for m in triage) == spec.max_shots
    for m, r in zip(triage, rows):
        assert m[-2]["content"] == r["text"] and m[0]["role"] == "system"
        assert all(s["content"] != r["text"] for s in m[1:-2] if s["role"] == "user"), "its own ticket as a shot"
    usual = [m for m in triage if m[0]["content"] == triage[0][0]["content"]]
    assert 0.6 < len(usual) / len(triage) < 0.9, "some prompts list the labels in another order"
    reply = [m for m, t in convs if t == "reply"]
    assert all(m[-1]["content"].startswith("Hello") for m in reply)
    assert reply[0][0]["content"] == prompts.reply_messages("x", hosted_standin.formats.HOUSE, "y")[0]["content"]


def test_length_batches_cover_every_conversation_once_in_batches_of_like_length():
    import torch

    lengths = [int(x) for x in np.random.default_rng(0).integers(10, 400, 1000)]
    batches = hosted_standin.length_batches(lengths, 32, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(1000)) and max(map(len, batches)) == 32
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 60, "a random batch spans about 370 tokens"
    again = hosted_standin.length_batches(lengths, 32, torch.Generator().manual_seed(0))
    assert again == batches


def _task(name, labels):
    task = tasks.get(name, max_new_tokens=64)
    task.bind(labels, "sys")
    return task


def test_00_scores_the_endpoint_the_stand_in_or_nothing_and_says_why():
    labels = sorted({r["label"] for r in hosted_standin.read_sample()})
    given, why = hosted_standin.replaced("https://u:secret@api.example.com/v1", "gpt-x", "KEY", True, None,
                                         _task("classify", labels))
    assert not given.standin and why == "" and given.record()["set_by"] == "ENDPOINT_URL"
    assert "secret" not in json.dumps(given.record()) and given.scored_as() == "gpt-x at ENDPOINT_URL"
    assert given.describe() == "scored gpt-x at https://u:***@api.example.com/v1 (ENDPOINT_URL)"
    standin, why = hosted_standin.replaced("", "", "KEY", True, None, _task("classify", labels))
    assert standin.standin and why == "" and standin.url == ""   # no server until `with`
    assert standin.record() == {"kind": "standin", "name": hosted_standin.NAME, "model": "hosted-standin",
                                "set_by": "HOSTED_STANDIN"}
    assert standin.scored_as().startswith("the stand-in for the hosted model")
    off, why = hosted_standin.replaced("", "", "KEY", False, None, _task("classify", labels))
    assert off is None and "HOSTED_STANDIN: false" in why and "ENDPOINT_URL" in why
    other, why = hosted_standin.replaced("", "", "KEY", True, None, _task("classify", ["a", "b"]))
    assert other is None and "not the project's sample labels" in why
    reply, why = hosted_standin.replaced("", "", "KEY", True, None, _task("reply", labels))
    assert reply is None and "triage only" in why
    assert hosted_standin.fits(_task("reply", labels), hosted_standin.HostedSpec(reply_rows=400)) == ""


def test_the_build_key_follows_the_recipe_the_base_and_the_sample(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"weights")
    sample = tmp_path / "s.csv"
    sample.write_text("text,label,reply\na,b,c\n")
    key = hosted_standin.build_key(hosted_standin.HostedSpec(), base, sample)
    assert key == hosted_standin.build_key(hosted_standin.HostedSpec(), base, sample)
    assert key != hosted_standin.build_key(hosted_standin.HostedSpec(epochs=3), base, sample)
    sample.write_text("text,label,reply\na,b,d\n")
    assert key != hosted_standin.build_key(hosted_standin.HostedSpec(), base, sample)
    (base / "model.safetensors").write_bytes(b"other weights")
    assert key != hosted_standin.build_key(hosted_standin.HostedSpec(), base, tmp_path / "s.csv")
