"""The reply task's systems and metrics: systems that write replies (the base prompted, a fine-tune, an endpoint,
the nearest training reply), their metrics with 95% intervals (format validity, fields, chrF), paired
comparisons, per-label slices; the task that puts them together, with its gate, is ftplay/tasks/reply.py.

Metrics come from libraries, not hand-written scorers: validity and fields from the format's own
parser (ftplay/formats.py), chrF from sacrebleu (per row for the bootstrap, corpus-level beside it),
McNemar's exact test and the bootstrap from ftplay.evaluate, as for classification.
"""
import json
import logging
import os
from contextlib import contextmanager

import numpy as np

from . import evaluate, formats, progress, prompts
from .errors import ConfigError

log = logging.getLogger(__name__)

NEAREST = "nearest_reply"   # the cheap reference, the analogue of 00's TF-IDF classifier
CONSTANT = "constant_reply"  # the floor: the most common training reply, sent to every ticket
MARGIN_TOKENS = 16          # MAX_NEW_TOKENS=0: room above the longest curated reply
# On a CPU, greedy decoding of a small model is a chain of tiny matrix products, where a second thread costs more
# (start-up, and spin-waiting whenever another process holds a core) than it gains. Measured on this 2-core machine,
# 64 replies of the embedded model (4.2M parameters), 96 new tokens, batch 16, another process busy: 4.4 s on one
# thread, 64.9 s on two. Models this small decode on one thread; larger ones, and any on a GPU, keep torch's count.
ONE_THREAD_BELOW = 50_000_000   # parameters
# Two such decodes side by side, one batch per Python thread (the GIL is free while each op runs): 96 house replies of
# the embedded reply adapter, 102 new tokens, batch 16, here: 7.45 s one batch at a time, 5.0 s two at once, the
# same replies. More threads were not measured (2 cores); they would queue for the GIL between ops.
DECODE_WORKERS = 2


def primary(fmt):
    """The reply task's primary metric for `fmt`: what 00's "best" prompting system is chosen by and what 04's
    alternatives check compares. Not validity: a canned reply (nearest_reply, or a prompt that copies its example)
    is always well-formed yet restates the wrong ticket. Field accuracy where the format has fields (the house
    format: 4 of its 6 lines are fixed text, so chrF rewards boilerplate: nearest_reply, greeting the wrong customer
    with the wrong facts, scores chrF 85.7 on the embedded held-out rows); chrF for a format without fields
    (Bitext's). Validity is what the fine-tune must beat the base on (issue 15's bar); chrF is reported everywhere."""
    return "field_accuracy" if fmt.fields else "chrf"


def max_new_tokens(value, output_tokens, margin=MARGIN_TOKENS):
    """MAX_NEW_TOKENS resolved: `value` when above 0; 0 means the longest curated reply (02's output_tokens.max,
    its end of turn counted) plus `margin`, so a format of long replies (Bitext: 407 tokens at most) is not cut
    by a cap sized for house replies (86). Returns (tokens, why)."""
    if value and value > 0:
        return int(value), f"MAX_NEW_TOKENS={value}"
    if not (output_tokens or {}).get("max"):
        raise ConfigError("MAX_NEW_TOKENS=0 takes the longest reply of the curated rows (02's output_tokens), and "
                          "none was counted; run 02 into this run directory with a tokenizer, or set MAX_NEW_TOKENS, "
                          "e.g. 128")
    n = int(output_tokens["max"]) + margin
    return n, f"MAX_NEW_TOKENS=0: the longest curated reply, {output_tokens['max']} tokens, + {margin}"


# ---------------------------------------------------------------- systems
def shots(train_rows, labels, mode, k=4, seed=0):
    """Few-shot (ticket, reference reply) examples: `fixed` (one per label) or `retrieved` (nearest by TF-IDF)."""
    return evaluate.ShotPicker(train_rows, labels, mode, k, seed, answer="output")


class ReplyGenerator:
    """A local model's replies: the reply conversation (prompts.reply_messages) rendered with the base's
    own chat template, greedy generation stopping at end of turn, batched (evaluate.generate)."""

    def __init__(self, model, tokenizer, fmt, system_prompt=None, shots=None, batch_size=16, max_new_tokens=96,
                 name="reply"):
        self.model, self.tok, self.fmt, self.system_prompt = model, tokenizer, fmt, system_prompt
        self.shots, self.bs, self.max_new_tokens, self.name = shots, batch_size, max_new_tokens, name

    def messages(self, text):
        return prompts.reply_messages(text, self.fmt, system_prompt=self.system_prompt,
                                      shots=self.shots(text) if self.shots else ())

    def reply(self, texts):
        ids = [prompts.prompt_ids(self.tok, self.messages(t)) for t in texts]
        with decode_threads(self.model) as workers:
            return evaluate.generate(self.model, self.tok, ids, self.max_new_tokens, self.bs, self.name, workers)


@contextmanager
def decode_threads(model):
    """One torch thread while a small model decodes on the CPU (ONE_THREAD_BELOW), the count restored after.
    Yields how many batches may decode at once (evaluate.generate's workers): for such a model DECODE_WORKERS
    (at most one per core), else 1."""
    import torch

    first = next(model.parameters(), None)
    small = (first is not None and first.device.type == "cpu"
             and sum(p.numel() for p in model.parameters()) < ONE_THREAD_BELOW)
    before = torch.get_num_threads()
    if small:
        torch.set_num_threads(1)
    try:
        yield min(DECODE_WORKERS, os.cpu_count() or 1) if small else 1
    finally:
        torch.set_num_threads(before)


class EndpointReplier:
    """Replies from an OpenAI-compatible endpoint (a hosted model, or ftplay's own vLLM server), asked
    with the same conversation as ReplyGenerator, at temperature 0."""

    def __init__(self, client, model, fmt, system_prompt=None, shots=None, max_tokens=96, concurrency=8, name=None,
                 extra_body=None):
        self.client, self.model, self.fmt, self.system_prompt, self.shots = client, model, fmt, system_prompt, shots
        self.max_tokens, self.concurrency, self.name = max_tokens, concurrency, name or model
        self.extra_body = extra_body

    def messages(self, text):
        """The conversation this replier sends for `text` (ReplyGenerator's)."""
        return prompts.reply_messages(text, self.fmt, system_prompt=self.system_prompt,
                                      shots=self.shots(text) if self.shots else ())

    def _one(self, text):
        msgs = self.messages(text)
        kw = {"extra_body": self.extra_body} if self.extra_body else {}
        r = self.client.chat.completions.create(model=self.model, messages=msgs, temperature=0,
                                                max_tokens=self.max_tokens, **kw)
        return r.choices[0].message.content or ""

    def reply(self, texts):
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(self.concurrency) as ex:
            return list(progress.bar(ex.map(self._one, texts), total=len(texts), desc=self.name, unit="row"))


class NearestReply:
    """The cheap reference: the reply of the most similar training ticket (TF-IDF word 1-2 grams, cosine),
    as a canned-answer system would send it. Always well-formed; right only where tickets repeat."""

    def __init__(self, train_rows, name=NEAREST):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.name, self.outputs = name, [r["output"] for r in train_rows]
        self.vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        self.matrix = self.vec.fit_transform([r["text"] for r in train_rows])

    def reply(self, texts):
        if not len(texts):
            return []
        sims = (self.vec.transform(list(texts)) @ self.matrix.T).toarray()
        return [self.outputs[int(i)] for i in sims.argmax(1)]


class ConstantReply:
    """The floor: the most common reply of the training rows, sent to every ticket (the first of equals, in
    the rows' order). A fine-tune that writes one canned reply scores what this scores: it learnt the format,
    not the ticket."""

    def __init__(self, train_rows, name=CONSTANT):
        counts = {}
        for r in train_rows:
            counts[r["output"]] = counts.get(r["output"], 0) + 1
        self.name = name
        self.output = max(counts, key=counts.get)
        self.share = counts[self.output] / len(train_rows)

    def reply(self, texts):
        return [self.output] * len(texts)


# ---------------------------------------------------------------- metrics
def _norm(v):
    return None if v is None else " ".join(str(v).split())


def row_scores(rows, outputs, fmt):
    """Per-row arrays: `valid` (n,), `parts` and `needed` (n, parts) (present in the reply; required of it:
    every part for an exact format, the reference's parts otherwise), `fields` (n, fields) exact match with
    the reference's after whitespace normalisation, `chrf` (n,) sentence chrF (sacrebleu, 0-100)."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    refs = [r["output"] for r in rows]
    valid = np.array([formats.valid(fmt, o, ref) for o, ref in zip(outputs, refs)], dtype=bool)
    names = [p.name for p in fmt.parts]

    def present(texts):
        found = [formats.parts_present(fmt, t) for t in texts]
        return np.array([[f[p] for p in names] for f in found], dtype=bool).reshape(-1, len(names))

    parts = present(outputs)
    needed = np.ones_like(parts) if fmt.kind == "exact" else present(refs)
    fields = np.zeros((len(rows), len(fmt.fields)), dtype=bool)
    for i, (o, ref) in enumerate(zip(outputs, refs) if fmt.fields else ()):  # parse is for formats with fields
        got, want = formats.parse(fmt, o)[1], formats.parse(fmt, ref)[1]
        fields[i] = [_norm(got.get(f)) == _norm(want.get(f)) for f in fmt.fields]
    scores = np.array([chrf.sentence_score(o or "", [ref]).score for o, ref in zip(outputs, refs)], dtype=float)
    return {"valid": valid, "parts": parts, "needed": needed, "fields": fields, "chrf": scores}


def corpus_chrf(rows, outputs):
    """sacrebleu's corpus-level chrF of the replies against the references (0-100)."""
    from sacrebleu.metrics import CHRF

    return float(CHRF().corpus_score([o or "" for o in outputs], [[r["output"] for r in rows]]).score)


def _mean_ci(values, idx):
    return [float(values.mean()) if len(values) else 0.0, evaluate._interval(values[idx].mean(1)) if len(values)
            else [0.0, 0.0]]


def score(rows, outputs, fmt, n_boot=1000, seed=0):
    """Validity, per-part presence, field accuracy (per field too; None for a format without fields) and
    chrF (mean of sentence chrF; corpus chrF beside it), each rate with its 95% bootstrap interval."""
    s = row_scores(rows, outputs, fmt)
    idx = evaluate._resample(len(rows), n_boot, seed)
    m = {"n": len(rows), "format": fmt.name, "primary": primary(fmt)}
    m["valid_rate"], m["valid_rate_ci"] = _mean_ci(s["valid"].astype(float), idx)
    m["parts"] = {p.name: {"n": int(s["needed"][:, j].sum()),
                           "rate": float(s["parts"][s["needed"][:, j], j].mean()) if s["needed"][:, j].any() else None}
                  for j, p in enumerate(fmt.parts)}
    if fmt.fields:
        m["field_accuracy"], m["field_accuracy_ci"] = _mean_ci(s["fields"].mean(1), idx)
        m["fields"] = {f: float(s["fields"][:, j].mean()) if len(rows) else 0.0 for j, f in enumerate(fmt.fields)}
    else:
        m["field_accuracy"], m["field_accuracy_ci"], m["fields"] = None, None, {}
    m["chrf"], m["chrf_ci"] = _mean_ci(s["chrf"], idx)
    m["corpus_chrf"] = corpus_chrf(rows, outputs)
    # a model that learnt the format but not the ticket writes one reply for every ticket (the embedded fine-tune
    # does, after 208 steps): valid, and as distinct as a canned answer
    m["distinct"] = len({" ".join((o or "").split()) for o in outputs})
    return m


def paired(rows, a, b, fmt, n_boot=1000, seed=0):
    """System A's replies minus system B's on the same rows: validity (paired bootstrap interval of the
    difference, McNemar's exact test on the rows only one gets valid), chrF and field accuracy (paired
    bootstrap intervals of the mean difference)."""
    sa, sb = row_scores(rows, a, fmt), row_scores(rows, b, fmt)
    idx = evaluate._resample(len(rows), n_boot, seed)
    p, only_a, only_b = evaluate.mcnemar(sa["valid"], sb["valid"])
    out = {"n": len(rows), "primary": primary(fmt), "mcnemar_p": p, "only_a_valid": only_a, "only_b_valid": only_b}
    per_row = {"valid_rate": (sa["valid"].astype(float), sb["valid"].astype(float)), "chrf": (sa["chrf"], sb["chrf"])}
    if fmt.fields:
        per_row["field_accuracy"] = (sa["fields"].mean(1), sb["fields"].mean(1))
    for name, (x, y) in per_row.items():
        d = x - y
        out[f"a_{name}"], out[f"b_{name}"] = float(x.mean()), float(y.mean())
        out[f"{name}_diff"], out[f"{name}_diff_ci"] = float(d.mean()), evaluate._interval(d[idx].mean(1))
    if not fmt.fields:
        out.update(a_field_accuracy=None, b_field_accuracy=None, field_accuracy_diff=None, field_accuracy_diff_ci=None)
    return out


def token_stats(tokenizer, texts):
    """Tokens of each reply (no special tokens): mean, median, 95th percentile, max; 06 prices output tokens so."""
    n = np.array([len(tokenizer(t or "", add_special_tokens=False)["input_ids"]) for t in texts] or [0])
    return {"mean": round(float(n.mean()), 1), "p50": float(np.percentile(n, 50)), "p95": float(np.percentile(n, 95)),
            "max": int(n.max())}


def save_outputs(path, rows, outputs):
    """One JSON line per row: id, label, reference reply, the system's reply."""
    from .rundir import write_text

    write_text(path, "".join(json.dumps({"id": r["id"], "label": r["label"], "reference": r["output"], "output": o})
                             + "\n" for r, o in zip(rows, outputs)))


def load_outputs(path):
    """Replies saved by `save_outputs`, as (ids, replies)."""
    from pathlib import Path

    recs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [r["id"] for r in recs], [r["output"] for r in recs]


# ---------------------------------------------------------------- tables and readings
def examples(rows, outputs, n=3, seed=0, width=None):
    """A few rows side by side: the ticket (whole, or cut to `width` when given), the reference reply and each
    system's reply, lines joined with ' | ' so a table cell shows the structure."""
    idx = sorted(np.random.default_rng(seed).permutation(len(rows))[:n].tolist())
    def one(s):
        return " | ".join(line.strip() for line in (s or "").strip().splitlines() if line.strip()) or "(empty)"
    out = []
    for i in idx:
        text = " ".join(rows[i]["text"].split())
        row = {"ticket": text if width is None or len(text) <= width else text[:width - 3] + "...",
               "reference": one(rows[i]["output"])}
        row.update({name: one(o[i]) for name, o in outputs.items()})
        out.append(row)
    return out


def label_table(rows, outputs, fmt, min_rows=20, first="finetuned"):
    """Per ticket label (a slice of the rows): n, and for each system of `outputs` ({name: replies}) its
    valid rate, field accuracy (formats with fields) and mean chrF; worst first for `first` (valid rate, then the
    primary metric: field accuracy where the format has fields, then chrF); slices under `min_rows` rows carry a
    warning."""
    scores = {name: row_scores(rows, o, fmt) for name, o in outputs.items()}
    out = []
    for lab in sorted({r["label"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["label"] == lab]
        row = {"label": lab, "n": len(idx)}
        for name, s in scores.items():
            row[f"{name}_valid"] = round(float(s["valid"][idx].mean()), 3)
            if fmt.fields:
                row[f"{name}_fields"] = round(float(s["fields"][idx].mean()), 3)
            row[f"{name}_chrf"] = round(float(s["chrf"][idx].mean()), 1)
        row["warning"] = f"only {len(idx)} rows (< {min_rows}): too few to conclude" if len(idx) < min_rows else None
        out.append(row)
    key = first if first in scores else next(iter(scores), None)
    return sorted(out, key=lambda r: (r.get(f"{key}_valid", 0), r.get(f"{key}_fields", 0), r.get(f"{key}_chrf", 0),
                                      r["label"])) if key else out

