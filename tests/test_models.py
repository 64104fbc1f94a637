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
    # the build's metadata names its corpus relative to the checkout: the same build in another clone has the same
    # files, so the same revision (an absolute path made two revisions of one set of weights)
    assert json.loads((a / "ftplay_tiny.json").read_text())["corpus"] == "data/tickets_raw.csv"
    assert tinymodel.repo_path(tmp_path / "x.csv") == str(tmp_path / "x.csv")


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
    bad = [t for t in texts
           if tiny_tok(t, add_special_tokens=False)["input_ids"] != raw.encode(t, add_special_tokens=False).ids]
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
    (tmp_path / "hub" / "models--Qwen--Qwen2.5-7B-Instruct").mkdir(parents=True)   # cached: no hub check
    ref = models.resolve("Qwen/Qwen2.5-7B-Instruct")
    assert ref.kind == "hub" and ref.path == "Qwen/Qwen2.5-7B-Instruct"


# ---------------------------------------------------------------- a hub id this machine cannot download
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """Answer huggingface_hub's requests with `handler` (httpx.MockTransport); an empty HF cache, no token."""
    import httpx
    from huggingface_hub.utils import _http

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    seen = []

    def use(handler):
        def record(request):
            seen.append((request.method, str(request.url)))
            return handler(request)
        _http.set_client_factory(lambda: httpx.Client(transport=httpx.MockTransport(record), follow_redirects=True))
        return seen

    yield use
    _http.set_client_factory(_http.default_client_factory)


def test_a_gated_model_without_a_token_names_the_token_and_the_licence(hub):
    import httpx

    seen = hub(lambda r: httpx.Response(401, headers={"X-Error-Code": "GatedRepo", "X-Error-Message":
                                                      f"Access to model {LLAMA} is restricted."}))
    with pytest.raises(ConfigError) as e:
        models.resolve(LLAMA)
    msg = str(e.value)
    for words in ("MODEL='meta-llama/Llama-3.1-8B-Instruct' is a gated model", "no Hugging Face token",
                  "accept its licence on https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct",
                  "`hf auth login`", "HF_TOKEN="):
        assert words in msg, msg
    # (huggingface_hub may also GET its /api/agent-harnesses registry for its user agent: not ours)
    assert [r for r in seen if "/api/" not in r[1]] == [("HEAD", f"https://huggingface.co/{LLAMA}/resolve/main/config.json")]


def test_unknown_ids_and_no_network_are_config_errors_and_other_answers_pass(hub):
    import httpx

    hub(lambda r: httpx.Response(401, headers={"X-Error-Code": "RepoNotFound"}))
    with pytest.raises(ConfigError, match="not a model this machine can see on the hub"):
        models.resolve("someone/no-such-model", param="BASE")

    def offline(request):
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)
    hub(offline)
    with pytest.raises(ConfigError) as e:
        models.resolve(LLAMA)
    for words in ("huggingface.co cannot be reached", "HF_HUB_OFFLINE=1", "local model folder",
                  f"MODEL='tiny:{LLAMA}'"):
        assert words in str(e.value)
    hub(lambda r: httpx.Response(200, headers={"ETag": '"abc"', "X-Repo-Commit": "0" * 40, "Content-Length": "10"}))
    assert models.resolve("Qwen/Qwen2.5-7B-Instruct").kind == "hub"
    hub(lambda r: httpx.Response(503))
    assert models.resolve("Qwen/Qwen2.5-7B-Instruct").kind == "hub", "a hub outage is left to the download"


def test_no_hub_check_when_offline_or_cached(hub, monkeypatch, tmp_path):
    seen = hub(lambda r: pytest.fail("no request may be sent"))
    (tmp_path / "hub" / "models--meta-llama--Llama-3.1-8B-Instruct").mkdir(parents=True)
    assert models.resolve(LLAMA).kind == "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models.resolve(LLAMA).kind == "hub" and seen == []


def test_this_machine_gets_the_answer_within_seconds(monkeypatch, tmp_path):
    """No mock: the real hub check from here (no network on the build machine: the no-network
    message; with network and no token: the gated one), in seconds, not transformers' ~60 s."""
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    t0 = time.time()
    with pytest.raises(ConfigError, match="cannot be reached|is a gated model"):
        models.resolve(LLAMA)
    assert time.time() - t0 < 3 * models.HUB_CHECK_TIMEOUT_S


def test_a_killed_builds_temporary_folder_is_removed_by_the_next_build(tmp_path):
    import os
    import time

    from ftplay import rundir

    dead = 2**22 + 4321
    assert not rundir.pid_alive(dead)
    for name in (f".build-{dead}-abc", f".build-{os.getpid()}-def", ".build-old", ".build-new"):
        (tmp_path / name / "model").mkdir(parents=True)
    hour_ago = time.time() - 2 * 3600
    os.utime(tmp_path / ".build-old", (hour_ago, hour_ago))  # an unnamed folder of an older ftplay, hours old
    out = tinymodel.build_atomically(tmp_path / "m", lambda d: (d.mkdir(), (d / "config.json").write_text("{}")))
    assert (out / "config.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".build-{os.getpid()}-def", ".build-new", "m"], \
        "a live build's folder and a recent unnamed one stay"
