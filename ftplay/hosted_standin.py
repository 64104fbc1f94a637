"""The stand-in for the hosted model: the model a team pays for today, in miniature, for the teaching run.

The seed's case is a fine-tuned small model replacing a larger hosted one (Sonnet -> a fine-tuned 8B). The embedded
default needs that model too, or every verdict on "does it match the model we pay for?" stays unmeasured. This
builds it offline and deterministically: the embedded base (tinymodel) with every weight trained on the project's
own hosted sample (data/hosted_sample.csv: 2,000 tickets with their category, labels drawn evenly, sharing no
ticket with the export or the production samples), the way a provider's model was trained on far more than one
team's export and never on it. It is asked the way 00 asks any hosted model: the task's system prompt, examples in
the prompt, and a JSON schema of the labels.

What it is not: larger than the base (the same 4.2M-parameter shape: a larger one needs its own pretraining, which
neither `make setup`'s 7 minutes nor the playbook's 8 hold), a general instruction follower, or a replier (see
HostedSpec). 00 builds it on first use (cached beside the embedded models), serves it with vLLM on 127.0.0.1 and
scores it through ENDPOINT_URL's own code path (`HOSTED_STANDIN`); a team sets ENDPOINT_URL to its provider.
"""
import csv
import hashlib
import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from . import formats, progress, prompts, tinymodel

log = logging.getLogger(__name__)
SAMPLE = tinymodel.REPO_ROOT / "data" / "hosted_sample.csv"
BUILDER_VERSION = 3
SERVED_NAME = "hosted-standin"   # the model name its server answers to
NAME = "the stand-in for the hosted model"


@dataclass(frozen=True)
class HostedSpec:
    """How the stand-in is trained (full fine-tuning of every weight of the embedded base). Measured on the
    export's held-out rows, as 00 asks a model (label scoring; build time on this 2-core machine):
    these defaults, triage only: 124 s, macro-F1 0.70 zero-shot, 0.71 with 4 retrieved examples; with 400 reply
    conversations and 3 epochs: 363 s, 0.79 / 0.79, and its replies canned (field accuracy 0.45, what the most
    common reply scores; 0.34 with examples): not a stand-in for a hosted model's replies, at three times the build.
    So the reply task's replaced model stays unmeasured unless ENDPOINT_URL is set (`fits`)."""
    triage_rows: int = 2000      # of the hosted sample, as triage conversations
    reply_rows: int = 0          # of the hosted sample, as reply conversations (0: triage only, see above)
    epochs: int = 2
    lr: float = 1e-3
    batch: int = 32
    shot_share: float = 0.25     # conversations with examples in the prompt (00 asks with 4 retrieved ones)
    max_shots: int = 4           # triage examples in a prompt at most
    max_reply_shots: int = 2     # reply examples in a prompt at most (each one is a whole reply)
    json_share: float = 0.5      # triage answers written as {"label":"..."} (00 asks with a JSON schema)
    shuffle_share: float = 0.25  # triage prompts listing the labels in another order than the usual sorted one
    max_len: int = 768           # tokens of a training conversation; longer ones drop their examples
    seed: int = 0


def read_sample(path=SAMPLE):
    """[{text, label, reply}] of the hosted sample."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def build_key(spec, base_path, sample=SAMPLE):
    h = hashlib.sha256()
    h.update(json.dumps(asdict(spec), sort_keys=True).encode())
    h.update(tinymodel.files_hash(base_path).encode())
    h.update(Path(sample).read_bytes())
    h.update(prompts.DEFAULT_SYSTEM_PROMPT.encode())
    h.update(prompts.reply_system_text(formats.HOUSE).encode())
    h.update(f"v{BUILDER_VERSION}".encode())
    return h.hexdigest()[:12]


def build(spec=HostedSpec(), root=None, force=False, sample=SAMPLE):
    """Build (or reuse from the cache) the stand-in; return its folder (a plain Hugging Face model folder vLLM
    serves). Built atomically beside the embedded models, keyed by everything that determines it."""
    base = tinymodel.build(tinymodel.TinySpec())
    root = Path(root) if root else tinymodel.cache_root() / "models"
    out = root / f"hosted-standin-{build_key(spec, base, sample)}"
    return tinymodel.build_atomically(out, lambda tmp: _write(spec, base, sample, tmp), force)


def conversations(rows, spec, labels):
    """(messages, task) of every training conversation, seeded: triage with the labels listed (in the usual
    order, or shuffled so no answer rests on a position) and the answer bare or as JSON, replies in the house
    format; some with examples from other rows of the sample in the prompt, as 00's few-shot prompts."""
    rng = random.Random(spec.seed)
    out = []
    for i, r in enumerate(rows[: spec.triage_rows]):
        shown = rng.sample(list(labels), len(labels)) if rng.random() < spec.shuffle_share else list(labels)
        k = rng.randint(1, spec.max_shots) if rng.random() < spec.shot_share else 0
        shots = [(s["text"], s["label"]) for s in rng.sample(rows, k + 1) if s is not r][:k]
        answer = json.dumps({"label": r["label"]}, separators=(",", ":")) if rng.random() < spec.json_share \
            else r["label"]
        out.append((prompts.messages(r["text"], shown, answer, shots=shots), "classify"))
    for r in rows[len(rows) - spec.reply_rows:]:
        k = rng.randint(1, spec.max_reply_shots) if rng.random() < spec.shot_share else 0
        shots = [(s["text"], s["reply"]) for s in rng.sample(rows, k + 1) if s is not r][:k]
        out.append((prompts.reply_messages(r["text"], formats.HOUSE, r["reply"], shots=shots), "reply"))
    return out


def length_batches(lengths, size, generator):
    """Batches of indices of similar length (one epoch, seeded): shuffled, cut into windows of 16 batches, each
    window sorted by length and cut into batches, the batches shuffled. Padding to the longest of a random batch
    (a 4-example prompt beside a bare ticket) made the build 5 times slower."""
    import torch

    order = torch.randperm(len(lengths), generator=generator).tolist()
    out = []
    for w in range(0, len(order), size * 16):
        window = sorted(order[w: w + size * 16], key=lambda i: lengths[i])
        out += [window[i: i + size] for i in range(0, len(window), size)]
    return [out[i] for i in torch.randperm(len(out), generator=generator).tolist()]


def encode(tokenizer, msgs, max_len):
    """(ids, index of the first answer token): the rendered conversation, the loss on the answer only."""
    prompt = prompts.prompt_ids(tokenizer, msgs[:-1])
    full = prompts.encode(tokenizer, prompts.render(tokenizer, msgs))
    if full[: len(prompt)] != prompt:
        raise ValueError("the chat template renders the prompt differently once the answer is added")
    return full[:max_len], len(prompt)


def _write(spec, base, sample, out):
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = read_sample(sample)
    labels = sorted({r["label"] for r in rows})
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    seqs = []
    for msgs, _ in conversations(rows, spec, labels):
        ids, start = encode(tokenizer, msgs, spec.max_len)
        if start >= len(ids):   # examples made it too long: the same ticket without them
            ids, start = encode(tokenizer, [msgs[0], *msgs[-2:]], spec.max_len)
        seqs.append((ids, start))
    torch.manual_seed(spec.seed)
    g = torch.Generator().manual_seed(spec.seed)
    batches = [b for _ in range(spec.epochs) for b in length_batches([len(s) for s, _ in seqs], spec.batch, g)]
    steps = len(batches)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / (steps - warm))))
    pad = tokenizer.pad_token_id
    model.train()
    t0, losses = time.time(), []
    bar = progress.bar(total=steps, desc="building the hosted model's stand-in", unit="step")
    for batch in batches:
        batch = [seqs[j] for j in batch]
        width = max(len(s) for s, _ in batch)
        ids = torch.full((len(batch), width), pad)
        target = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for k, (s, start) in enumerate(batch):
            ids[k, : len(s)] = torch.tensor(s)
            mask[k, : len(s)] = 1
            target[k, start: len(s)] = torch.tensor(s[start:])
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        target = target[:, 1:]
        token_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                       ignore_index=-100, reduction="none").view(target.shape)
        counted = (target != -100).sum(1).clamp(min=1)
        # each conversation weighs the same: a mean over all tokens would let an 80-token reply outweigh a
        # one-word label 80 to 1, and the triage answers would barely train
        loss = ((token_loss.sum(1) / counted)).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        bar.update(1)
    bar.close()
    model.eval().save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    meta = {"builder_version": BUILDER_VERSION, "spec": asdict(spec), "base": Path(base).name,
            "base_revision": tinymodel.files_hash(base), "sample": tinymodel.repo_path(sample),
            "conversations": len(seqs),
            "steps": steps, "seconds": round(time.time() - t0, 1), "loss_first": losses[0], "loss_last": losses[-1],
            "parameters": sum(p.numel() for p in model.parameters()), "labels": labels}
    (Path(out) / "ftplay_hosted_standin.json").write_text(json.dumps(meta, indent=2) + "\n")


def meta(path):
    """What the stand-in's build recorded (ftplay_hosted_standin.json)."""
    return json.loads((Path(path) / "ftplay_hosted_standin.json").read_text())


def serve(run_dir, startup_timeout_s=300.0):
    """Build (cached) and start the stand-in's own vLLM server on 127.0.0.1 with a key of its own; returns the
    started serve.Server (its cfg holds the url and key; stop() when done). Its log: <run_dir>/hosted_standin.log."""
    from . import serve as serving

    path = build()
    cfg = serving.ServeConfig(str(path), {}, served_model_name=SERVED_NAME, api_key=serving.new_key(),
                              startup_timeout_s=startup_timeout_s, max_model_len=1024, enforce_eager=True)
    return serving.Server(cfg, run_dir, log_name="hosted_standin.log").start()


class Replaced:
    """The model the fine-tune would replace, as 00 scores it: a team's provider at ENDPOINT_URL (its key from the
    environment variable ENDPOINT_API_KEY_ENV names), or the stand-in, served for the time of the `with` block."""

    def __init__(self, url="", model="", key_env="", run_dir=None):
        self.standin = not url
        self.url, self.model, self.key_env, self.run_dir = url, model or SERVED_NAME, key_env, run_dir
        self.key, self.server = None, None

    def __enter__(self):
        import os

        if self.standin:
            self.server = serve(self.run_dir)
            self.url, self.key = self.server.url + "/v1", self.server.cfg.api_key
        else:
            self.key = os.environ.get(self.key_env or "", "") or "none"
        return self

    def __exit__(self, *exc):
        if self.server is not None:
            self.server.stop()

    def record(self):
        """What 00 records of it (no key, no URL credentials)."""
        from .params import redact_url

        if self.standin:
            return {"kind": "standin", "name": NAME, "model": SERVED_NAME, "set_by": "HOSTED_STANDIN"}
        return {"kind": "endpoint", "name": f"{self.model} at {redact_url(self.url)}", "model": self.model,
                "set_by": "ENDPOINT_URL"}

    def scored_as(self):
        """What 00 scored as the replaced model, in words (06 and the report quote it)."""
        if self.standin:
            return f"{NAME}, HOSTED_STANDIN"
        return f"{self.model} at ENDPOINT_URL"

    def describe(self):
        """One sentence on what 00 scored as the replaced model (never its key)."""
        if self.standin:
            m = meta(build())
            return (f"scored {NAME}: the embedded base with every weight trained on {m['conversations']:,} "
                    f"conversations of data/hosted_sample.csv (none of this run's tickets), served by vLLM on "
                    f"127.0.0.1; set ENDPOINT_URL to score the model you pay for instead")
        from .params import redact_url

        return f"scored {self.model} at {redact_url(self.url)} (ENDPOINT_URL)"


def fits(task, spec=HostedSpec(), teacher=None):
    """Why the stand-in cannot stand in for this run's hosted model ("" when it can): it knows the project's sample
    data (its labels, the house reply format) and nothing else, so on a team's own data it would score a model of
    another task. `teacher`: 02's record of a request log's model, when the run's labels are its answers."""
    if teacher and teacher.get("model", "").endswith(f":{SERVED_NAME}"):
        return ("this run's labels are the stand-in's own answers (its request log): scored against them it would "
                "measure itself; 04 compares the fine-tune with it against people's labels (HUMAN_LABELS_PATH)")
    labels = sorted({r["label"] for r in read_sample()})
    if sorted(task.labels) != labels:
        return (f"this run's labels ({', '.join(sorted(task.labels)[:4])}, ...) are not the project's sample labels "
                "the stand-in was trained on")
    if task.name == "reply" and not spec.reply_rows:
        return ("the stand-in is built for triage only (HostedSpec.reply_rows = 0: trained on replies too, it wrote "
                "canned ones at three times the build time)")
    if task.name == "reply" and task.reply_format != formats.HOUSE.name:
        return f"the stand-in writes the house reply format, and this run's REPLY_FORMAT is {task.reply_format!r}"
    return ""


def replaced(url, model, key_env, standin, run_dir, task, teacher=None):
    """(the Replaced to score in 00 or None, a sentence saying why none): ENDPOINT_URL when given, else the
    stand-in when HOSTED_STANDIN is on and the run is on the project's sample data."""
    if url:
        return Replaced(url, model, key_env, run_dir), ""
    if not standin:
        return None, ("the model the fine-tune would replace is not scored (HOSTED_STANDIN: false and no "
                      "ENDPOINT_URL): set ENDPOINT_URL to your provider's endpoint to score it")
    why = fits(task, teacher=teacher)
    if why:
        return None, (f"the stand-in for the hosted model is not scored: {why}. Set ENDPOINT_URL and "
                      "ENDPOINT_MODEL to score the model you pay for")
    return Replaced(run_dir=run_dir), ""
