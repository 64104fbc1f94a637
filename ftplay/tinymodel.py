"""The embedded default: a tiny Qwen2 causal LM and tokenizer that ftplay builds offline.

Nothing is downloaded. The tokenizer is a byte-level BPE trained on the project's own ticket
export with Qwen2's exact normalizer and pre-tokenizer (so `AutoTokenizer`, which rebuilds Qwen2's
pre-tokenizer, tokenizes exactly as trained), with the label words guaranteed single tokens. The
chat template is Qwen's ChatML with `{% generation %}` markers around each assistant turn and its
`<|im_end|>`, so assistant-only loss trains the answer and the end-of-turn token. The weights are
initialised from a seed, then briefly pretrained (next-token loss, `pretrain_epochs` passes) on
data/pretrain_corpus.txt, ticket-like text that shares no row with the export or the production
samples: the base model reads the domain but was never taught the labels, which is what makes the
playbook's "beat the base" gate meaningful on a laptop. Same inputs give the same files (checked by hash).
"""
import csv
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import progress

log = logging.getLogger(__name__)
BUILDER_VERSION = 4
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO_ROOT / "data" / "tickets_raw.csv"
PRETRAIN_CORPUS = REPO_ROOT / "data" / "pretrain_corpus.txt"
EXTRA_WORDS = ("You triage customer support tickets. Answer with exactly one category: "
               "label ticket category support customer answer one of the following")


@dataclass(frozen=True)
class TinySpec:
    """Shape of the embedded model. Sized so 3 epochs on ~1k tickets train in minutes on 2 cores."""
    seed: int = 0                 # weight init seed; a different seed is a different "base model"
    vocab_size: int = 4096        # BPE vocabulary incl. 3 special tokens
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 4
    num_attention_heads: int = 4  # head_dim 64: a size vLLM's CPU attention supports
    num_key_value_heads: int = 4
    max_position_embeddings: int = 1024
    tie_word_embeddings: bool = True
    # A short language-model pretraining on unlabelled support-domain text (data/pretrain_corpus.txt),
    # so the base reads the domain the way a real base model does. From random weights, LoRA alone
    # (vLLM-servable, no modules_to_save) stayed near the label prior: measured 0.28-0.35 accuracy.
    pretrain_epochs: int = 2
    # Embedding init std. A label word as a whole answer ("billing" after a newline) is a token the
    # pretraining text never uses, so its embedding keeps its init: the tied output logit of a
    # token is at most |h|*|e| = d*std, about 5 at the usual 0.02 against ln(vocab) 8.3, and no
    # adapter could make a confident answer (measured: loss stuck near 3.7). 0.06 allows ~15.
    embed_std: float = 0.06
    pretrain_lr: float = 2e-3
    pretrain_batch: int = 32
    pretrain_max_len: int = 128


def cache_root():
    """Where built models live: $FTPLAY_CACHE, else ~/.cache/ftplay (never the source tree)."""
    return Path(os.environ.get("FTPLAY_CACHE", Path.home() / ".cache" / "ftplay"))


def _corpus(corpus):
    """(texts, labels) of the tokenizer corpus; each label also appears alone on many lines, so
    BPE learns it as one token (a label split into pieces costs scoring and learning)."""
    with open(corpus, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    labels = sorted({r["label"] for r in rows if r.get("label")})
    texts = [r["text"] for r in rows if r.get("text")] + _lines(PRETRAIN_CORPUS)
    return texts + [EXTRA_WORDS] * 50 + labels * 200, labels


def _lines(path):
    return [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def _pretrain(model, tokenizer, texts, spec):
    """Next-token pretraining of every weight on `texts`: seeded, single process, fixed order."""
    import torch

    g = torch.Generator().manual_seed(spec.seed)
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    seqs = [tokenizer(t, add_special_tokens=False)["input_ids"][: spec.pretrain_max_len - 1] + [eos] for t in texts]
    steps = spec.pretrain_epochs * math.ceil(len(seqs) / spec.pretrain_batch)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.pretrain_lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / (steps - warm))))
    model.train()
    bar = progress.bar(total=steps, desc="building the embedded model: pretraining", unit="step")
    for _ in range(spec.pretrain_epochs):
        order = torch.randperm(len(seqs), generator=g).tolist()
        for i in range(0, len(order), spec.pretrain_batch):
            batch = [seqs[j] for j in order[i: i + spec.pretrain_batch]]
            L = max(map(len, batch))
            ids = torch.full((len(batch), L), eos)
            labels = torch.full((len(batch), L), -100)
            mask = torch.zeros((len(batch), L), dtype=torch.long)
            for k, s in enumerate(batch):
                ids[k, : len(s)] = torch.tensor(s)
                labels[k, : len(s)] = torch.tensor(s)
                mask[k, : len(s)] = 1
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            bar.update(1)
    bar.close()
    model.pretrain_loss = float(loss.detach())
    return model


def build_key(spec, corpus=DEFAULT_CORPUS):
    """Hash of everything that determines the build: spec, corpus bytes, template, builder."""
    h = hashlib.sha256()
    h.update(json.dumps(asdict(spec), sort_keys=True).encode())
    h.update(Path(corpus).read_bytes())
    h.update(PRETRAIN_CORPUS.read_bytes())
    h.update(CHAT_TEMPLATE.encode())
    h.update(f"v{BUILDER_VERSION}".encode())
    return h.hexdigest()[:12]


def train_tokenizer(texts, vocab_size):
    """Byte-level BPE with Qwen2's normalizer and pre-tokenizer, trained on `texts`."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


def _write(spec, corpus, out):
    import torch
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    texts, labels = _corpus(corpus)
    raw = train_tokenizer(texts, spec.vocab_size)
    split = [label for label in labels if len(raw.encode(label, add_special_tokens=False).ids) != 1]
    if split:  # still correct (scoring handles several tokens per label), only slower to learn
        log.warning("labels %s are not single tokens at vocab_size=%d", split, spec.vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token=None, bos_token=None, model_max_length=spec.max_position_embeddings,
        clean_up_tokenization_spaces=False, chat_template=CHAT_TEMPLATE)
    tokenizer.save_pretrained(out)
    raw.model.save(str(out))  # vocab.json + merges.txt, which Qwen2Tokenizer reads
    ids = {t: raw.token_to_id(t) for t in SPECIAL_TOKENS}
    config = Qwen2Config(
        vocab_size=raw.get_vocab_size(), hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size, num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads, num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings, rope_theta=10000.0,
        tie_word_embeddings=spec.tie_word_embeddings, bos_token_id=None,
        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        use_sliding_window=False, torch_dtype="float32")
    torch.manual_seed(spec.seed)
    model = Qwen2ForCausalLM(config).float().eval()
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0.0, spec.embed_std)
    model = _pretrain(model, tokenizer, _lines(PRETRAIN_CORPUS), spec).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], do_sample=False)
    model.save_pretrained(out, safe_serialization=True)
    meta = {"builder_version": BUILDER_VERSION, "spec": asdict(spec), "pretrain_loss": model.pretrain_loss,
            "corpus": repo_path(corpus), "parameters": sum(p.numel() for p in model.parameters())}
    (Path(out) / "ftplay_tiny.json").write_text(json.dumps(meta, indent=2) + "\n")


def build(spec=TinySpec(), corpus=DEFAULT_CORPUS, root=None, force=False):
    """Build (or reuse from the cache) the tiny model; return its directory.

    The build goes to a temporary folder renamed into place, so an interrupted build never
    leaves a half-written model that a later run would trust.
    """
    corpus = Path(corpus)
    if not corpus.exists():
        raise FileNotFoundError(f"tokenizer corpus {corpus} is missing (it ships in data/)")
    root = Path(root) if root else cache_root() / "models"
    out = root / f"tiny-qwen2-s{spec.seed}-{build_key(spec, corpus)}"
    return build_atomically(out, lambda tmp: _write(spec, corpus, tmp), force)


def build_atomically(out, write, force=False):
    """`out`, built by `write(folder)` into a temporary folder beside it and renamed into place (kept
    as it is when it exists, unless `force`): an interrupted build, KeyboardInterrupt included,
    never leaves a half-written model that a later run would trust, nor a temporary folder."""
    out = Path(out)
    if out.exists() and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(out.parent)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".build-{os.getpid()}-"))
    try:
        write(tmp / "model")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp / "model", out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def remove_stale_builds(folder, legacy_age_s=3600):
    """Remove the temporary folders of builds that were killed (SIGKILL skips build_atomically's cleanup):
    `.build-<pid>-*` whose process is gone, and unnamed `.build-*` of older versions once an hour old.
    Returns what was removed."""
    from ftplay import rundir

    gone = []
    for p in Path(folder).glob(".build-*"):
        pid = p.name.split("-")[1]
        stale = not rundir.pid_alive(int(pid)) if pid.isdigit() else time.time() - p.stat().st_mtime > legacy_age_s
        if p.is_dir() and stale:
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
    return gone


def repo_path(path):
    """`path` relative to the checkout when it lies in it (data/tickets_raw.csv), else as given: what a model's
    build metadata records, so that the same build in two checkouts has the same files and so the same revision
    (`files_hash`; the absolute path made the same weights two revisions)."""
    p = Path(path).resolve()
    return str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(path)


def files_hash(path):
    """sha256 over a model folder's weight, config and tokenizer files (names and bytes)."""
    h = hashlib.sha256()
    for p in sorted(Path(path).iterdir()):
        if p.is_file() and p.suffix in (".safetensors", ".json", ".txt", ".model", ".jinja"):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]
