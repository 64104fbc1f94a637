"""Tiny stand-ins of the seed's real model families: real tokenizer and chat template, a 2-layer body.

`MODEL: "tiny:meta-llama/Llama-3.1-8B-Instruct"` (or the Qwen2.5 / Mistral v0.3 ids in FAMILIES)
resolves to a local Hugging Face folder that ftplay builds offline and deterministically: the
family's architecture class and config conventions (rope, GQA, untied embeddings, vocab size,
special ids) at hidden size 256, the family's own tokenizer with token ids equal to the hub's, its
original chat template byte for byte, and its generation_config.json. The weights are random: a
stand-in proves that the whole path (templating, masking, training, merging, serving) works for
that family; it says nothing about the quality the real model would reach.

The tokenizers are converted from the BPE/sentencepiece files that small PyPI packages ship
(`pip install --no-deps llama-models==0.3.0 dashscope==2.0.2`; mistral-common is a train
dependency): nothing is downloaded from the model hub.
"""
import copy
import hashlib
import importlib.util
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import tinymodel
from .errors import ConfigError

log = logging.getLogger(__name__)
BUILDER_VERSION = 1
PREFIX = "tiny:"
SEED = 0
TEMPLATES = Path(__file__).resolve().parent / "templates"
# The tiny body every family shares: head_dim 64 (a size vLLM's CPU attention supports) and one
# KV head for 4 query heads, so grouped-query attention is exercised as in the 7-8B models.
SHAPE = {"hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1,
         "intermediate_size": 512, "head_dim": 64}
SETUP = "run `make setup`, or: pip install --no-deps llama-models==0.3.0 dashscope==2.0.2"

# Pre-tokenizer regexes of the reference implementations: llama_models/llama3/tokenizer.py
# (`pat_str`, digits in runs of up to 3) and Qwen's tiktoken pattern (one digit per token).
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = tinymodel.QWEN2_PATTERN
# Llama 3.1's 256 special tokens, ids 128000-128255, as transformers' convert_llama_weights_to_hf.py
# (DEFAULT_LLAMA_SPECIAL_TOKENS["3.1"], the script that wrote the hub tokenizer) names them;
# llama_models 0.3.0 names 128005 and 128011 differently (<|step_id|>, <|image|>): same ids.
LLAMA31_SPECIAL = (["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
                    "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
                   + [f"<|reserved_special_token_{i}|>" for i in range(3, 248)])
# Qwen2.5's added tokens, ids 151643-151664 (tokenizer_config.json added_tokens_decoder); the last
# eight are registered but not special (they stay visible when decoding with skip_special_tokens).
QWEN25_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
QWEN25_PLAIN = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
# tokenizer_class as each hub tokenizer_config.json names it (AutoTokenizer dispatches on it).
TOKENIZER_CLASS = {"llama3": "PreTrainedTokenizerFast", "qwen2": "Qwen2Tokenizer", "mistral_v3": "LlamaTokenizer"}


@dataclass(frozen=True)
class Family:
    """One real model family: what its stand-in copies from the hub repository."""
    hub_id: str
    family: str              # short name recorded in ftplay_tiny.json
    architecture: str        # transformers class in config.json
    model_type: str
    tokenizer: str           # which converter below builds it
    tokenizer_source: tuple  # (pip package, import name, file inside the package)
    template: tuple          # (import name or "ftplay", file): the original chat template
    template_source: str     # where that template comes from, for the record
    config: dict = field(default_factory=dict)      # the hub config.json values that matter
    generation: dict = field(default_factory=dict)  # the hub generation_config.json


FAMILIES = {f.hub_id: f for f in (
    # config.json / generation_config.json of meta-llama/Llama-3.1-8B-Instruct; the generation
    # values are those transformers' convert_llama_weights_to_hf.py writes for a 3.1 instruct model.
    Family("meta-llama/Llama-3.1-8B-Instruct", "llama3.1", "LlamaForCausalLM", "llama", "llama3",
           ("llama-models==0.3.0", "llama_models", "llama3/tokenizer.model"),
           ("trl", "chat_templates/llama3_1.jinja"), "trl 1.15.0 trl/chat_templates/llama3_1.jinja (original)",
           {"vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
            "rope_theta": 500000.0, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
            "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "pretraining_tp": 1,
            "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]},
           {"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "do_sample": True,
            "temperature": 0.6, "top_p": 0.9}),
    # config.json / generation_config.json of Qwen/Qwen2.5-7B-Instruct (no pad_token_id in config).
    Family("Qwen/Qwen2.5-7B-Instruct", "qwen2.5", "Qwen2ForCausalLM", "qwen2", "qwen2",
           ("dashscope==2.0.2", "dashscope", "resources/qwen.tiktoken"),
           ("trl", "chat_templates/qwen2_5.jinja"), "trl 1.15.0 trl/chat_templates/qwen2_5.jinja (original)",
           {"vocab_size": 152064, "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
            "use_sliding_window": False, "sliding_window": 131072, "max_window_layers": 28,
            "tie_word_embeddings": False, "bos_token_id": 151643, "eos_token_id": 151645},
           {"bos_token_id": 151643, "pad_token_id": 151643, "eos_token_id": [151645, 151643], "do_sample": True,
            "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}),
    # config.json / generation_config.json of mistralai/Mistral-7B-Instruct-v0.3.
    Family("mistralai/Mistral-7B-Instruct-v0.3", "mistral-v0.3", "MistralForCausalLM", "mistral", "mistral_v3",
           ("mistral-common==1.13.1", "mistral_common", "data/mistral_instruct_tokenizer_240323.model.v3"),
           ("ftplay", "mistral_v0_3.jinja"),
           "mistralai/Mistral-7B-Instruct-v0.3 tokenizer_config.json chat_template (ftplay/templates/README.md)",
           {"vocab_size": 32768, "max_position_embeddings": 32768, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
            "sliding_window": None, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2},
           {"bos_token_id": 1, "eos_token_id": 2}),
)}


def family_of(hub_id):
    """The Family a hub id stands for; a ConfigError lists the supported ids otherwise."""
    hub_id = str(hub_id).removeprefix(PREFIX)
    if hub_id not in FAMILIES:
        raise ConfigError(f"MODEL='{PREFIX}{hub_id}': no tiny stand-in for {hub_id!r}; supported: "
                          + ", ".join(f"'{PREFIX}{h}'" for h in FAMILIES))
    return FAMILIES[hub_id]


def source_file(package, rel):
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / rel
    return p if p.exists() else None


def _need(package_pin, package, rel):
    p = source_file(package, rel)
    if p is None:
        raise ConfigError(f"{package_pin} is not installed, and the stand-in's tokenizer is built from its "
                          f"{rel}: {SETUP} (or pip install {package_pin})")
    return p


def template_text(fam):
    """The family's original chat template, as stored by TRL or in ftplay/templates/."""
    package, rel = fam.template
    p = TEMPLATES / rel if package == "ftplay" else _need(package, package, rel)
    return p.read_text(encoding="utf-8")


def build_key(fam):
    """Hash of everything that determines the files: family record, tokenizer source, template, builder."""
    h = hashlib.sha256(json.dumps([repr(fam), SHAPE, SEED, BUILDER_VERSION]).encode())
    h.update(_need(*fam.tokenizer_source).read_bytes())
    h.update(template_text(fam).encode())
    return h.hexdigest()[:12]


# ---- tokenizers -----------------------------------------------------------------------------

def _tiktoken_bpe(path, pattern):
    from transformers.convert_slow_tokenizer import TikTokenConverter

    return TikTokenConverter(str(path), pattern=pattern).converted()


def _add(raw, tokens, first_id, special=True):
    from tokenizers import AddedToken

    raw.add_tokens([AddedToken(t, special=special, normalized=False) for t in tokens])
    got = [raw.token_to_id(t) for t in tokens]
    if got != list(range(first_id, first_id + len(tokens))):  # never silently shift an id
        raise RuntimeError(f"added tokens landed at ids {got[:3]}..., expected {first_id}...")


def _llama3(fam, src, chat_template):
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    raw = _tiktoken_bpe(src, LLAMA3_PATTERN)
    _add(raw, LLAMA31_SPECIAL, 128000)
    # As on the hub: BOS is added by the post-processor, so tokenizer("x") starts with 128000.
    raw.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A:0",
                                      pair="<|begin_of_text|>:0 $A:0 <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", 128000)])])
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   model_max_length=131072, clean_up_tokenization_spaces=True,
                                   model_input_names=["input_ids", "attention_mask"], chat_template=chat_template)


def _qwen2(fam, src, chat_template):
    from tokenizers import normalizers
    from transformers import PreTrainedTokenizerFast

    raw = _tiktoken_bpe(src, QWEN2_PATTERN)
    raw.normalizer = normalizers.NFC()
    _add(raw, QWEN25_SPECIAL, 151643)
    _add(raw, QWEN25_PLAIN, 151643 + len(QWEN25_SPECIAL), special=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=None, eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", unk_token=None, errors="replace",
                                  model_max_length=131072, clean_up_tokenization_spaces=False,
                                  split_special_tokens=False, chat_template=chat_template,
                                  extra_special_tokens=QWEN25_SPECIAL[1:])
    return tok, raw


def _mistral_v3(fam, src, chat_template, work):
    """The v3 sentencepiece model through transformers' own converter; control tokens 10-770 get the
    hub's names ([control_8]...[control_768]; mistral_common names some of them [IMG], [PREFIX]...)."""
    from tokenizers import Tokenizer
    from transformers import LlamaTokenizer

    spm_dir = Path(work) / "spm"
    spm_dir.mkdir(parents=True)
    shutil.copyfile(src, spm_dir / "tokenizer.model")
    tok = LlamaTokenizer.from_pretrained(str(spm_dir), legacy=False, add_bos_token=True, add_eos_token=False)
    data = json.loads(tok.backend_tokenizer.to_str())
    vocab = data["model"]["vocab"]
    names = {i: f"[control_{i - 2}]" for i in range(10, 771)}
    for old, i in list(vocab.items()):
        if i in names:
            vocab[names[i]] = vocab.pop(old)
    for t in data["added_tokens"]:
        t["content"] = names.get(t["id"], t["content"])
    return LlamaTokenizer(tokenizer_object=Tokenizer.from_str(json.dumps(data)), legacy=False,
                          add_bos_token=True, add_eos_token=False, bos_token="<s>", eos_token="</s>",
                          unk_token="<unk>", model_max_length=32768, spaces_between_special_tokens=False,
                          chat_template=chat_template)


# ---- build ----------------------------------------------------------------------------------

def _write(fam, out):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    src = _need(*fam.tokenizer_source)
    chat_template = template_text(fam)
    if fam.tokenizer == "llama3":
        _llama3(fam, src, chat_template).save_pretrained(out)
    elif fam.tokenizer == "qwen2":
        tok, raw = _qwen2(fam, src, chat_template)
        tok.save_pretrained(out)
        raw.model.save(str(out))  # vocab.json + merges.txt, which Qwen2Tokenizer reads
    else:
        _mistral_v3(fam, src, chat_template, out.parent / (out.name + ".spm")).save_pretrained(out)
    cfg = json.loads((out / "tokenizer_config.json").read_text())
    cfg["tokenizer_class"] = TOKENIZER_CLASS[fam.tokenizer]  # as the hub's tokenizer_config.json names it
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    # deep copies: transformers folds rope_scaling into rope_parameters in place
    config = AutoConfig.for_model(fam.model_type, architectures=[fam.architecture], **copy.deepcopy(SHAPE),
                                  **copy.deepcopy(fam.config), dtype="float32")
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    if type(model).__name__ != fam.architecture:
        raise RuntimeError(f"{fam.hub_id}: built {type(model).__name__}, expected {fam.architecture}")
    model.generation_config = GenerationConfig(**copy.deepcopy(fam.generation))
    model.save_pretrained(out, safe_serialization=True)
    meta = {"builder_version": BUILDER_VERSION, "family": fam.family, "stands_in_for": fam.hub_id,
            "architecture": fam.architecture,
            "tokenizer_source": f"{fam.tokenizer_source[0]}: {fam.tokenizer_source[2]}",
            "template_source": fam.template_source, "seed": SEED, "shape": SHAPE,
            "parameters": sum(p.numel() for p in model.parameters()),
            "note": "A stand-in: the family's real tokenizer, chat template and config conventions on a "
                    "2-layer body with random weights. It proves the path, not the quality."}
    (out / "ftplay_tiny.json").write_text(json.dumps(meta, indent=2) + "\n")


def build(hub_id, root=None, force=False):
    """Build (or reuse from the cache) the stand-in for `hub_id`; return its folder.

    The build goes to a temporary folder renamed into place, so an interrupted build never leaves a
    half-written model that a later run would trust.
    """
    fam = family_of(hub_id)
    root = Path(root) if root else tinymodel.cache_root() / "models"
    out = root / f"tiny-{fam.family}-{build_key(fam)}"
    if out.exists() and not force:
        return out
    tinymodel.build_atomically(out, lambda tmp: _write(fam, tmp), force)
    log.info("built the %s stand-in for %s at %s", fam.family, fam.hub_id, out)
    return out


def note(ref):
    """What a notebook says about a stand-in base: it proves the path, not the quality ("" otherwise)."""
    if ref.kind != "standin":
        return ""
    fam = family_of(ref.requested)
    return (f"{ref.requested} is a stand-in: {fam.hub_id}'s real tokenizer, chat template and config conventions "
            f"({fam.architecture}) on a tiny random body. It proves the path (tokens, loss mask, templates, "
            f"scoring, serving), not the quality: its scores mean nothing. On a GPU box set MODEL='{fam.hub_id}'.")
