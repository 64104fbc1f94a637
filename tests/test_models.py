"""The embedded tiny model: deterministic, offline, Qwen2-shaped, with a mask-ready template."""
import json

import pytest

from ftplay import models, tinymodel
from ftplay.errors import ConfigError


def test_build_is_deterministic(tmp_path):
    spec = tinymodel.TinySpec(vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                              num_attention_heads=1, num_key_value_heads=1, pretrain_epochs=1)
    a = tinymodel.build(spec, root=tmp_path / "a")
    b = tinymodel.build(spec, root=tmp_path / "b")
    assert a.name == b.name
    assert tinymodel.files_hash(a) == tinymodel.files_hash(b)
    other = tinymodel.build(tinymodel.TinySpec(**{**spec.__dict__, "seed": 1}), root=tmp_path / "a")
    assert tinymodel.files_hash(other) != tinymodel.files_hash(a)
    assert not list((tmp_path / "a").glob(".build-*")), "a temporary build folder was left behind"


def test_embedded_model_shape_and_tokenizer(tiny_ref, tiny_tok):
    cfg = json.loads((tinymodel.Path(tiny_ref.path) / "config.json").read_text())
    assert cfg["model_type"] == "qwen2" and cfg["tie_word_embeddings"] is True
    assert type(tiny_tok).__name__.startswith("Qwen2Tokenizer")
    assert tiny_tok.eos_token == "<|im_end|>" and tiny_tok.pad_token == "<|endoftext|>"
    for label in ("billing", "account", "bug", "shipping", "refund", "feature", "cancellation", "security", "other"):
        assert len(tiny_tok(label, add_special_tokens=False)["input_ids"]) == 1, label


def test_template_marks_answer_and_end_of_turn(tiny_tok):
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "my card was charged twice"},
            {"role": "assistant", "content": "billing"}]
    out = tiny_tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    trained = [tiny_tok.decode([t]) for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert trained == ["billing", "<|im_end|>"]


def test_tokenizer_matches_what_was_trained(tiny_ref, tiny_tok):
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(tinymodel.Path(tiny_ref.path) / "tokenizer.json"))
    texts = [r.split(",", 3)[-1] for r in (tinymodel.DEFAULT_CORPUS.read_text().splitlines()[1:400])]
    bad = [t for t in texts if tiny_tok(t, add_special_tokens=False)["input_ids"] != raw.encode(t, add_special_tokens=False).ids]
    assert bad == []


def test_resolve_errors_name_the_parameter(tmp_path):
    with pytest.raises(ConfigError, match="MODEL='/no/such/model' does not exist"):
        models.resolve("/no/such/model")
    with pytest.raises(ConfigError, match="without config.json"):
        models.resolve(str(tmp_path))
    with pytest.raises(ConfigError, match="must be an integer"):
        models.resolve("embedded:x")
    with pytest.raises(ConfigError, match="does not exist"):
        models.resolve("not a hub id")


def test_resolve_hub_id_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE=1"):
        models.resolve("Qwen/Qwen2.5-7B-Instruct")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    ref = models.resolve("Qwen/Qwen2.5-7B-Instruct")
    assert ref.kind == "hub" and ref.path == "Qwen/Qwen2.5-7B-Instruct"
