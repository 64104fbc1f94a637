"""Tiny stand-ins of real model families: hub token ids, original templates, family configs, determinism."""
import ast
import json
from pathlib import Path

import pytest

from ftplay import cli, models, standins, tinymodel
from ftplay.errors import ConfigError

LLAMA, QWEN, MISTRAL = ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct",
                        "mistralai/Mistral-7B-Instruct-v0.3")
HUB_IDS = [LLAMA, QWEN, MISTRAL]
# Plain strings of the kinds the playbook feeds a tokenizer: words, leading space, newlines, digits,
# non-ASCII (already NFC, which Qwen's normalizer would otherwise change), a label word.
TEXTS = ["Hello world", " billing", "billing", "Refund\nbilling", "line one\n\nline two", "order 12345 on 2024-05-01",
         "café naïve 東京 – ünïcode", "I'm   here!! ", "feature_request", "<tag> {\"json\": [1, 2]}"]
# Token ids of the hub tokenizers, hard-coded as a second, independent check:
KNOWN = {
    # Llama 3.x "Hello world": llama_models' own Tokenizer (and the hub tokenizer.json) give 9906, 1917;
    # BOS 128000, <|start_header_id|> 128006, <|eot_id|> 128009, <|python_tag|> 128010: the ids in
    # transformers' convert_llama_weights_to_hf.py DEFAULT_LLAMA_SPECIAL_TOKENS["3.1"] (list index + 128000).
    LLAMA: ({"Hello world": [128000, 9906, 1917]},
            {"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|finetune_right_pad_id|>": 128004,
             "<|start_header_id|>": 128006, "<|end_header_id|>": 128007, "<|eom_id|>": 128008, "<|eot_id|>": 128009,
             "<|python_tag|>": 128010, "<|reserved_special_token_3|>": 128011,
             "<|reserved_special_token_247|>": 128255}),
    # Qwen2.5 "Hello world" = 9707, 1879 (Qwen's qwen.tiktoken ranks, no BOS); special ids from
    # Qwen2.5-7B-Instruct tokenizer_config.json added_tokens_decoder (151643-151664).
    QWEN: ({"Hello world": [9707, 1879]},
           {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|video_pad|>": 151656,
            "<tool_call>": 151657, "</tool_call>": 151658, "<|fim_prefix|>": 151659, "<|file_sep|>": 151664}),
    # Mistral v0.3 "Hello world" = <s> 23325 2294 (mistral_common's v3 MistralTokenizer); control ids
    # from the v3 tokenizer: <unk> 0, <s> 1, </s> 2, [INST] 3, [/INST] 4, [TOOL_CALLS] 5, ...; ids
    # 10-770 are named [control_8]...[control_768] on the hub (mistralai/Mistral-7B-v0.3 pads with
    # [control_8] = 10).
    MISTRAL: ({"Hello world": [1, 23325, 2294]},
              {"<unk>": 0, "<s>": 1, "</s>": 2, "[INST]": 3, "[/INST]": 4, "[TOOL_CALLS]": 5, "[AVAILABLE_TOOLS]": 6,
               "[/AVAILABLE_TOOLS]": 7, "[TOOL_RESULTS]": 8, "[/TOOL_RESULTS]": 9, "[control_8]": 10,
               "[control_768]": 770}),
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """FTPLAY_CACHE for this module: each family is built once, into <cache>/models."""
    root = tmp_path_factory.mktemp("ftplay-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FTPLAY_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def built(cache):
    return {h: standins.build(h) for h in HUB_IDS}


@pytest.fixture(scope="module")
def toks(built):
    from transformers import AutoTokenizer

    return {h: AutoTokenizer.from_pretrained(str(p)) for h, p in built.items()}


def _reference(hub_id):
    """encode(text) -> ids with BOS as the hub adds it, by the implementation that ships the file."""
    fam = standins.FAMILIES[hub_id]
    src = standins.source_file(fam.tokenizer_source[1], fam.tokenizer_source[2])
    if hub_id == LLAMA:
        from llama_models.llama3.tokenizer import Tokenizer

        t = Tokenizer(src)
        return lambda s: t.encode(s, bos=True, eos=False)
    if hub_id == QWEN:  # dashscope's own tokenizer module needs its heavy deps: read its pattern, use tiktoken
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        code = (src.parent.parent / "tokenizers" / "qwen_tokenizer.py").read_text()
        pat = next(ast.literal_eval(n.value) for n in ast.parse(code).body
                   if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PAT_STR")
        ranks = load_tiktoken_bpe(str(src))
        enc = tiktoken.Encoding("qwen", pat_str=pat, mergeable_ranks=ranks,
                                special_tokens={"<|endoftext|>": len(ranks), "<|im_start|>": len(ranks) + 1,
                                                "<|im_end|>": len(ranks) + 2})
        return lambda s: enc.encode(s, allowed_special="all")
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    t = MistralTokenizer.from_file(str(src)).instruct_tokenizer.tokenizer
    return lambda s: t.encode(s, bos=True, eos=False)


@pytest.mark.parametrize("hub_id", HUB_IDS)
def test_token_ids_equal_the_reference_implementation(toks, hub_id):
    tok, ref = toks[hub_id], _reference(hub_id)
    texts = TEXTS if hub_id != MISTRAL else [t for t in TEXTS if not t.startswith(" ")]
    assert {t: tok(t)["input_ids"] for t in texts} == {t: ref(t) for t in texts}
    if hub_id == QWEN:  # special tokens inside text, as a chat template writes them
        s = "<|im_start|>user\nbilling<|im_end|>\n"
        assert tok(s)["input_ids"] == ref(s)


def test_mistral_leading_space_follows_transformers_not_sentencepiece(toks):
    # A known, documented difference: transformers' Metaspace (prepend_scheme "first") does not add a
    # second "▁" to text that starts with a space; sentencepiece does. Chat templates never produce
    # such a first segment (they start with <s>[INST]), see the chat test below.
    assert toks[MISTRAL](" billing")["input_ids"] == [1, 5643, 1056]
    assert _reference(MISTRAL)(" billing") == [1, 29473, 5643, 1056]


def test_mistral_chat_ids_equal_mistral_common(toks):
    from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    fam = standins.FAMILIES[MISTRAL]
    mt = MistralTokenizer.from_file(str(standins.source_file(*fam.tokenizer_source[1:])))
    msgs = [("system", "Answer with one category."), ("user", "My card was charged twice, 12 €."),
            ("assistant", "billing"), ("user", "And the app\ncrashes.")]
    cls = {"system": SystemMessage, "user": UserMessage, "assistant": AssistantMessage}
    want = mt.encode_chat_completion(ChatCompletionRequest(messages=[cls[r](content=c) for r, c in msgs])).tokens
    got = toks[MISTRAL].apply_chat_template([{"role": r, "content": c} for r, c in msgs], tokenize=True,
                                            return_dict=True)["input_ids"]
    assert got == want


@pytest.mark.parametrize("hub_id", HUB_IDS)
def test_known_hub_ids_and_special_tokens(toks, hub_id):
    tok = toks[hub_id]
    strings, special = KNOWN[hub_id]
    assert {s: tok(s)["input_ids"] for s in strings} == strings
    assert {t: tok.convert_tokens_to_ids(t) for t in special} == special
    assert len(tok) == {LLAMA: 128256, QWEN: 151665, MISTRAL: 32768}[hub_id]


def test_tokenizer_classes_bos_eos_pad(toks):
    llama, qwen, mistral = toks[LLAMA], toks[QWEN], toks[MISTRAL]
    assert type(qwen).__name__ == "Qwen2Tokenizer"  # what AutoTokenizer forces for model_type qwen2
    assert (llama.bos_token, llama.eos_token, llama.pad_token) == ("<|begin_of_text|>", "<|eot_id|>", None)
    assert (qwen.bos_token, qwen.eos_token, qwen.pad_token) == (None, "<|im_end|>", "<|endoftext|>")
    assert (mistral.bos_token, mistral.eos_token, mistral.pad_token) == ("<s>", "</s>", None)
    assert qwen("x")["input_ids"] == qwen("x", add_special_tokens=False)["input_ids"]  # no BOS
    assert qwen.decode([151657, 151645], skip_special_tokens=True) == "<tool_call>"  # special: false on the hub


@pytest.mark.parametrize("hub_id", HUB_IDS)
def test_chat_template_is_the_original_byte_for_byte(built, toks, hub_id):
    fam = standins.FAMILIES[hub_id]
    original = standins.template_text(fam)
    assert toks[hub_id].chat_template == original
    assert (built[hub_id] / "chat_template.jinja").read_bytes() == original.encode("utf-8")
    if hub_id == MISTRAL:
        assert original.startswith('{%- if messages[0]["role"] == "system" %}') and len(original) == 3959


@pytest.mark.parametrize("hub_id", HUB_IDS)
def test_model_loads_with_the_family_conventions(built, hub_id):
    import torch
    from transformers import AutoModelForCausalLM

    fam = standins.FAMILIES[hub_id]
    model = AutoModelForCausalLM.from_pretrained(str(built[hub_id])).eval()
    cfg = model.config
    assert type(model).__name__ == fam.architecture
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads,
            cfg.head_dim, cfg.intermediate_size) == (256, 2, 4, 1, 64, 512)
    assert cfg.vocab_size == fam.config["vocab_size"] and cfg.tie_word_embeddings is False
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert (cfg.bos_token_id, cfg.eos_token_id) == (fam.config["bos_token_id"], fam.config["eos_token_id"])
    assert cfg.rope_parameters["rope_theta"] == fam.config["rope_theta"]
    if hub_id == LLAMA:
        assert {k: cfg.rope_parameters[k] for k in fam.config["rope_scaling"]} == fam.config["rope_scaling"]
    else:
        assert cfg.rope_parameters["rope_type"] == "default" and cfg.sliding_window is None
    gen = json.loads((built[hub_id] / "generation_config.json").read_text())
    assert {k: gen[k] for k in fam.generation} == fam.generation
    meta = json.loads((built[hub_id] / "ftplay_tiny.json").read_text())
    assert (meta["family"], meta["stands_in_for"]) == (fam.family, hub_id) and "stand-in" in meta["note"]
    assert meta["parameters"] == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3, 4, 5]])).logits
    assert logits.shape == (1, 5, fam.config["vocab_size"]) and torch.isfinite(logits).all()


@pytest.mark.parametrize("hub_id", HUB_IDS)
def test_build_is_deterministic(built, tmp_path, hub_id):
    again = standins.build(hub_id, root=tmp_path)
    assert again.name == built[hub_id].name
    assert tinymodel.files_hash(again) == tinymodel.files_hash(built[hub_id])
    assert not list(tmp_path.glob(".build-*"))


def test_resolve_and_cli(built, capsys, tmp_path):
    ref = models.resolve("tiny:" + QWEN)  # FTPLAY_CACHE points at the module's cache: no rebuild
    assert (ref.kind, ref.path, ref.requested) == ("standin", str(built[QWEN]), "tiny:" + QWEN)
    assert ref.revision == tinymodel.files_hash(built[QWEN])
    assert models.family(ref) == "qwen2.5"
    assert models.family(models.ModelRef(str(tmp_path), str(tmp_path), "local", "")) is None
    assert cli.main(["build-model", "--like", MISTRAL]) == 0
    assert capsys.readouterr().out.strip() == str(built[MISTRAL])


def test_unknown_hub_id_lists_the_supported_ones():
    with pytest.raises(ConfigError, match=r"BASE='tiny:org/nope'.*supported: 'tiny:meta-llama/Llama-3.1-8B-Instruct'"):
        models.resolve("tiny:org/nope", param="BASE")
    with pytest.raises(ConfigError, match="Qwen/Qwen2.5-7B-Instruct"):
        standins.family_of("Qwen/Qwen2-7B")


def test_missing_package_names_the_install(monkeypatch, tmp_path):
    monkeypatch.setattr(standins, "source_file", lambda package, rel: None)
    with pytest.raises(ConfigError, match=r"llama-models==0.3.0 is not installed.*make setup"):
        standins.build(LLAMA, root=tmp_path)


def test_interrupted_build_leaves_nothing(monkeypatch, tmp_path):
    def stop(fam, out):
        Path(out).mkdir(parents=True)
        (Path(out) / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(standins, "_write", stop)
    with pytest.raises(KeyboardInterrupt):
        standins.build(MISTRAL, root=tmp_path)
    assert list(tmp_path.iterdir()) == []
