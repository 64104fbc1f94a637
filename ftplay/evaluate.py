"""Classification's systems and metrics: predictors, accuracy and macro-F1 with intervals, paired comparisons,
McNemar's test (the task that puts them together is ftplay/tasks/classify.py; label scoring is `ftplay.scoring`)."""
import json
import logging
import re

import numpy as np

from . import progress, prompts
from .numbers import wilson  # noqa: F401  (evaluate.wilson: its old home, still used by callers)
from .scoring import LabelScorer, Prediction  # noqa: F401  (LabelScorer: the classifier callers reach as evaluate.LabelScorer)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- prompts
class ShotPicker:
    """Few-shot examples: `fixed` (one per label, same for every ticket) or `retrieved`
    (the k nearest training tickets by TF-IDF cosine, per ticket). Each shot is (text, answer), the
    answer being the row's `answer` field: its label, or its reference reply ("output") for the reply task."""

    def __init__(self, train_rows, labels, mode="fixed", k=4, seed=0, answer="label"):
        self.mode, self.k, self.answer = mode, k, answer
        rng = np.random.default_rng(seed)
        by_label = {lab: [r for r in train_rows if r["label"] == lab] for lab in labels}
        self.fixed = [(row["text"], row[answer]) for row in
                      (rows[int(rng.integers(len(rows)))] for rows in by_label.values() if rows)][:k]
        if mode == "retrieved":
            from sklearn.feature_extraction.text import TfidfVectorizer

            self.rows = train_rows
            self.vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
            self.matrix = self.vec.fit_transform([r["text"] for r in train_rows])

    def __call__(self, text):
        if self.mode == "none":
            return []
        if self.mode == "fixed":
            return self.fixed
        sims = (self.matrix @ self.vec.transform([text]).T).toarray().ravel()
        best = np.argsort(-sims, kind="stable")[: self.k][::-1]  # most similar last, nearest the ticket
        return [(self.rows[i]["text"], self.rows[i][self.answer]) for i in best]


# ---------------------------------------------------------------- local predictors
def parse_label(text, labels):
    """The label a free-text answer names: exact match after trimming, else the only label
    mentioned as a word; None when it names none or several."""
    t = text.strip().strip(".\"'` ").lower()
    by_lower = {lab.lower(): lab for lab in labels}
    if t in by_lower:
        return by_lower[t]
    try:
        obj = json.loads(text)
        if isinstance(obj, dict) and str(obj.get("label", "")).lower() in by_lower:
            return by_lower[str(obj["label"]).lower()]
    except (ValueError, TypeError):
        pass
    hits = {lab for lab in labels if re.search(rf"(?<![\w]){re.escape(lab.lower())}(?![\w])", t)}
    return hits.pop() if len(hits) == 1 else None


class Generator:
    """Free text: greedy generation of a short answer, parsed into a label (invalid counted)."""

    def __init__(self, model, tokenizer, labels, system_prompt, shots=None, batch_size=16,
                 max_new_tokens=8, name="generation"):
        self.model, self.tok, self.labels = model, tokenizer, list(labels)
        self.system_prompt, self.shots, self.bs = system_prompt, shots, batch_size
        self.max_new_tokens, self.name = max_new_tokens, name

    def messages(self, text):
        """The conversation this generator sends for `text`."""
        return prompts.messages(text, self.labels, system_prompt=self.system_prompt,
                                shots=self.shots(text) if self.shots else ())

    def predict(self, texts):
        ids = [prompts.prompt_ids(self.tok, self.messages(t)) for t in texts]
        raws = generate(self.model, self.tok, ids, self.max_new_tokens, self.bs, self.name)
        labs = [parse_label(raw, self.labels) for raw in raws]
        return [Prediction(lab, 1.0 if lab else 0.0, raw) for lab, raw in zip(labs, raws)]


def generate(model, tokenizer, ids, max_new_tokens, batch_size=16, name="generation", workers=1):
    """Greedy answers to prompts given as token ids, stopping at end of turn (prompts.greedy_config):
    batches of similar-length prompts (less padding), left-padded; texts returned in input order.

    `workers` > 1: that many Python threads take the batches in turn. Each batch is the one a single worker
    would run, so the answers are the same. It pays where decoding is mostly Python between tiny products
    (a small model on one torch thread, replies.decode_threads): each op runs with the GIL released."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import torch

    out = [None] * len(ids)
    tokenizer.padding_side = "left"
    gen_cfg = prompts.greedy_config(tokenizer, max_new_tokens)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batches = [order[s: s + batch_size] for s in range(0, len(order), batch_size)]
    bar, done = progress.bar(total=len(ids), desc=name, unit="row"), threading.Lock()

    def one(idx):
        enc = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
        with torch.no_grad():  # per thread
            gen = model.generate(**enc, generation_config=gen_cfg)
        texts = [tokenizer.decode(row, skip_special_tokens=True) for row in gen[:, enc["input_ids"].shape[1]:]]
        with done:
            for i, t in zip(idx, texts):
                out[i] = t
            bar.update(len(idx))

    if workers > 1 and len(batches) > 1:
        with ThreadPoolExecutor(min(workers, len(batches)), thread_name_prefix="ftplay-decode") as pool:
            list(pool.map(one, batches))  # re-raises a worker's error here
    else:
        for idx in batches:
            one(idx)
    bar.close()
    return out


class EndpointPredictor:
    """An OpenAI-compatible endpoint (a vLLM server or a hosted model). With `structured`, the
    answer is restricted to the label set by a JSON schema (an enum), so it is always valid."""

    def __init__(self, client, model, labels, system_prompt, shots=None, structured=True,
                 max_tokens=16, concurrency=8, name=None, extra_body=None):
        self.client, self.model, self.labels = client, model, list(labels)
        self.system_prompt, self.shots, self.structured = system_prompt, shots, structured
        self.max_tokens, self.concurrency, self.name = max_tokens, concurrency, name or model
        self.extra_body = extra_body  # e.g. serve_client.Client.extra_body() for ftplay's own vLLM server

    def messages(self, text):
        """The conversation this predictor sends for `text`."""
        return prompts.messages(text, self.labels, system_prompt=self.system_prompt,
                                shots=self.shots(text) if self.shots else ())

    def _one(self, text):
        msgs = self.messages(text)
        kw = {"response_format": prompts.label_schema(self.labels)} if self.structured else {}
        if self.extra_body:
            kw["extra_body"] = self.extra_body
        r = self.client.chat.completions.create(model=self.model, messages=msgs, temperature=0,
                                                max_tokens=self.max_tokens + (24 if self.structured else 0),
                                                **kw)
        raw = r.choices[0].message.content or ""
        lab = (self.structured and prompts.parse_structured(raw, self.labels)) or parse_label(raw, self.labels)
        return Prediction(lab, 1.0 if lab else 0.0, raw)

    def predict(self, texts):
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(self.concurrency) as ex:
            return list(progress.bar(ex.map(self._one, texts), total=len(texts), desc=self.name, unit="row"))


# ---------------------------------------------------------------- metrics
def _resample(n_rows, n_boot, seed):
    """Row indices of `n_boot` bootstrap resamples (the same draws for every metric of one seed)."""
    return np.random.default_rng(seed).integers(0, n_rows, size=(n_boot, n_rows))


def _interval(vals, alpha=0.05):
    return [float(np.quantile(vals, alpha / 2)), float(np.quantile(vals, 1 - alpha / 2))]


def _acc(t, p):
    return float(np.mean([a == b for a, b in zip(t, p)]))


def _f1(labels):
    """Macro-F1 over the labels that occur in the rows or the answers (sklearn's own default set):
    a label absent from both has no F1, and counting it as 0 would make a subset of a many-label
    test set (or a bootstrap resample) look worse than it is. Invalid answers count as wrong."""
    def f1(t, p):
        return float(_f1_codes(*_codes(labels, t, p), len(labels))[0])

    return f1


def _codes(labels, *seqs):
    """Each sequence of labels as integer codes 0..k-1; anything else (None, an unknown label) is k."""
    index = {lab: i for i, lab in enumerate(labels)}
    return [np.array([index.get(x, len(labels)) for x in seq], dtype=np.int64).reshape(1, -1) for seq in seqs]


def _f1_codes(t, p, k):
    """Macro-F1 of each row of the code matrices `t`, `p` (resamples x rows), counted with one bincount:
    per label 2TP / (true count + predicted count), averaged over the labels present in the row's
    truths or answers (sklearn's f1_score with zero_division=0 over that label set)."""
    n = t.shape[0]
    offset = (np.arange(n) * (k + 1))[:, None]
    def count(codes):
        return np.bincount((codes + offset).ravel(), minlength=n * (k + 1)).reshape(n, k + 1)[:, :k]
    tp = count(np.where(t == p, t, k))
    support = count(t) + count(p)
    f1 = np.divide(2 * tp, support, out=np.zeros(support.shape), where=support > 0)
    seen = support > 0
    return np.where(seen.any(1), (f1 * seen).sum(1) / np.maximum(seen.sum(1), 1), 0.0)


def score(y_true, preds, labels, n_boot=1000, seed=0):
    """Accuracy and macro-F1 with 95% bootstrap intervals, per-class report, confusion matrix."""
    from sklearn.metrics import classification_report, confusion_matrix

    y_pred = [p.label for p in preds]
    safe = [x if x is not None else "<invalid>" for x in y_pred]
    t, p = _codes(labels, y_true, y_pred)
    right = np.array([a == b for a, b in zip(y_true, y_pred)], dtype=float)
    idx = _resample(len(y_true), n_boot, seed)
    return {
        "n": len(y_true),
        "accuracy": _acc(y_true, y_pred),
        "accuracy_ci": _interval(right[idx].mean(1)),
        "macro_f1": float(_f1_codes(t, p, len(labels))[0]),
        "macro_f1_ci": _interval(_f1_codes(t[0][idx], p[0][idx], len(labels))),
        "valid_rate": float(np.mean([p.label is not None for p in preds])) if preds else 0.0,
        "per_class": classification_report(y_true, safe, labels=labels, output_dict=True,
                                           zero_division=0),
        "confusion": {"labels": labels,
                      "matrix": confusion_matrix(y_true, safe, labels=labels).tolist()},
    }


def paired_difference(y_true, pred_a, pred_b, labels, n_boot=1000, seed=0):
    """Macro-F1 and accuracy of A minus B on the same rows, with paired bootstrap intervals,
    and McNemar's exact test on which rows each gets right."""
    k = len(labels)
    t, a, b = _codes(labels, y_true, [p.label for p in pred_a], [p.label for p in pred_b])
    idx = _resample(t.shape[1], n_boot, seed)
    d_f1 = _f1_codes(t[0][idx], a[0][idx], k) - _f1_codes(t[0][idx], b[0][idx], k)
    ra = np.array([p.label == y for p, y in zip(pred_a, y_true)])
    rb = np.array([p.label == y for p, y in zip(pred_b, y_true)])
    d_acc = ra[idx].mean(1) - rb[idx].mean(1)
    p, only_a, only_b = mcnemar(ra, rb)
    fa, fb = float(_f1_codes(t, a, k)[0]), float(_f1_codes(t, b, k)[0])
    return {"n": t.shape[1], "a_macro_f1": fa, "b_macro_f1": fb, "macro_f1_diff": fa - fb,
            "macro_f1_diff_ci": [float(np.quantile(d_f1, .025)), float(np.quantile(d_f1, .975))],
            "accuracy_diff": float(ra.mean() - rb.mean()),
            "accuracy_diff_ci": [float(np.quantile(d_acc, .025)), float(np.quantile(d_acc, .975))],
            "mcnemar_p": float(p), "only_a_right": only_a, "only_b_right": only_b}


def mcnemar(right_a, right_b):
    """McNemar's exact test on paired yes/no outcomes (a row right, a reply valid): (p, rows only A gets
    right, rows only B gets right); p is 1.0 when they never disagree."""
    from scipy.stats import binomtest

    ra, rb = np.asarray(right_a, dtype=bool), np.asarray(right_b, dtype=bool)
    only_a, only_b = int(np.sum(ra & ~rb)), int(np.sum(~ra & rb))
    return (float(binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0), only_a, only_b


class TfidfClassifier:
    """A cheap non-LLM classifier (TF-IDF word 1-2 grams + logistic regression) as a reference,
    fitted on `train_rows`; `predict` gives each row's most likely label and its probability."""
    name = "tfidf_logreg"

    def __init__(self, train_rows):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        self.clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                                 LogisticRegression(max_iter=2000, C=10.0))
        self.clf.fit([r["text"] for r in train_rows], [r["label"] for r in train_rows])

    def predict(self, texts):
        proba = self.clf.predict_proba(list(texts))
        classes = list(self.clf.classes_)
        return [Prediction(classes[int(i)], float(p[int(i)])) for p, i in zip(proba, proba.argmax(1))]


def selective_curve(y_true, preds, steps=11):
    """Accuracy on the most confident tickets against the share escalated (routed elsewhere)."""
    conf = np.array([p.confidence for p in preds])
    right = np.array([p.label == t for p, t in zip(preds, y_true)])
    order = np.argsort(-conf, kind="stable")
    out = []
    for k in range(steps):
        share = k / (steps - 1)
        keep = order[: max(1, int(round(len(order) * (1 - share))))] if share < 1 else order[:0]
        out.append({"escalated": round(share, 3),
                    "kept": int(len(keep)),
                    "accuracy_kept": float(right[keep].mean()) if len(keep) else None,
                    "accuracy_kept_ci": wilson(int(right[keep].sum()), len(keep)) if len(keep) else None,
                    "threshold": float(conf[keep].min()) if len(keep) else None})
    return out


def save_predictions(path, rows, preds):
    """One JSON line per row: id, gold label, predicted label, confidence, raw answer."""
    from .rundir import write_text

    lines = [json.dumps({"id": r["id"], "label": r["label"], "pred": p.label, "confidence": round(p.confidence, 6),
                         "raw": p.raw}) for r, p in zip(rows, preds)]
    write_text(path, "\n".join(lines) + "\n")


def load_predictions(path):
    """Predictions saved by `save_predictions`, as (ids, [Prediction])."""
    from pathlib import Path

    recs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [r["id"] for r in recs], [Prediction(r["pred"], r["confidence"], r.get("raw", "")) for r in recs]


def answer_examples(rows, predictions, n=4, seed=0, width=None):
    """A few rows side by side: the ticket (whole, or cut to `width` when given), its label, and each system's
    answer: the raw text for a generating system (what the model actually said), else the label and its confidence."""
    idx = sorted(np.random.default_rng(seed).permutation(len(rows))[:n].tolist())
    out = []
    for i in idx:
        text = " ".join(rows[i]["text"].split())
        row = {"ticket": text if width is None or len(text) <= width else text[:width - 3] + "...",
               "label": rows[i]["label"]}
        for name, preds in predictions.items():
            p = preds[i]
            said = " ".join((p.raw or "").split())
            row[name] = (repr(said[:40]) + ("" if p.label else " (not a label)")) if said and said != p.label else \
                f"{p.label} ({p.confidence:.2f})"
        out.append(row)
    return out


def vocabulary(rows):
    """Lower-cased words of the training texts: a word outside it in a ticket hints at a typo."""
    return {w for r in rows for w in re.findall(r"[a-z]+", r["text"].lower())}


def slices(rows, ft, base, labels, vocab, min_rows=20):
    """Accuracy of fine-tuned and base on slices: rare labels, long tickets, tickets with
    out-of-vocabulary words (likely typos). Each slice warns when it is too small to conclude."""
    counts = {lab: sum(r["label"] == lab for r in rows) for lab in labels}
    rare = set(sorted(labels, key=lambda lab: counts[lab])[:3])
    words = [len(r["text"].split()) for r in rows]
    long_cut = float(np.quantile(words, 0.75)) if words else 0.0
    defs = {"rare_labels": lambda r, w: r["label"] in rare,
            "long_tickets": lambda r, w: w >= long_cut and w > 0,
            "typos": lambda r, w: sum(1 for t in re.findall(r"[a-z]{4,}", r["text"].lower()) if t not in vocab) >= 2}
    out = {}
    for name, keep in defs.items():
        idx = [i for i, r in enumerate(rows) if keep(r, words[i])]
        def acc(ps):
            return float(np.mean([ps[i].label == rows[i]["label"] for i in idx])) if idx else None
        out[name] = {"n": len(idx), "finetuned_accuracy": acc(ft), "base_accuracy": acc(base),
                     "warning": (f"only {len(idx)} rows (< {min_rows}): too few to conclude anything"
                                 if len(idx) < min_rows else None)}
    out["rare_labels"]["labels"] = sorted(rare)
    out["long_tickets"]["min_words"] = long_cut
    small = [lab for lab in labels if counts[lab] < min_rows]
    out["small_labels"] = {"labels": small, "warning": f"{len(small)} label(s) with < {min_rows} rows: "
                           "their per-class scores are noise" if small else None}
    return out



def teacher_check(rows, preds, labels, n_boot=1000, seed=0):
    """When the run's labels are a request log's teacher answers (02 with HUMAN_LABELS_PATH): on the held-out rows
    people labelled ("human_label"), each system's accuracy against people and agreement with the teacher, and the
    fine-tune minus the teacher against people (paired bootstrap). `preds`: {system: predictions beside `rows`}.
    None when no row has a human label."""
    keep = [i for i, r in enumerate(rows) if r.get("human_label")]
    if not keep:
        return None
    human = [rows[i]["human_label"] for i in keep]
    teacher = [Prediction(rows[i]["label"], 1.0) for i in keep]

    def row(name, ps):
        right = sum(p.label == h for p, h in zip(ps, human))
        agree = sum(p.label == t.label for p, t in zip(ps, teacher))
        return {"system": name, "rows": len(keep), "accuracy_vs_people": round(right / len(keep), 4),
                "accuracy_vs_people_ci": [round(x, 4) for x in wilson(right, len(keep))],
                "agreement_with_teacher": round(agree / len(keep), 4),
                "agreement_with_teacher_ci": [round(x, 4) for x in wilson(agree, len(keep))]}

    systems = [row("teacher", teacher)] + [row(name, [ps[i] for i in keep]) for name, ps in preds.items()]
    out = {"rows": len(keep), "systems": systems}
    if "finetuned" in preds:
        d = paired_difference(human, [preds["finetuned"][i] for i in keep], teacher, sorted(set(labels) | set(human)),
                              n_boot, seed)
        out["finetuned_minus_teacher"] = {k: d[k] for k in ("accuracy_diff", "accuracy_diff_ci", "macro_f1_diff",
                                                            "macro_f1_diff_ci", "mcnemar_p")}
    return out


def teacher_reading(check, teacher=None):
    """The sentence 04 prints for `teacher_check`'s result; `teacher`: 02's record of the log's model."""
    if check is None and not teacher:
        return ("The training labels are people's, not a hosted model's answers: no teacher to check against "
                "(02 with a request log as TRAIN_PATH and HUMAN_LABELS_PATH makes that run).")
    if check is None:
        return (f"The training labels are {teacher['model']}'s answers, and no held-out row has a human label (02's "
                "HUMAN_LABELS_PATH): every score here measures agreement with the teacher, not being right.")
    by = {s["system"]: s for s in check["systems"]}
    t, f = by["teacher"], by.get("finetuned")
    name = (teacher or {}).get("model", "the teacher")
    lo_t, hi_t = t["accuracy_vs_people_ci"]
    out = (f"On the {check['rows']} held-out tickets people labelled, the teacher ({name}) is right on "
           f"{t['accuracy_vs_people']:.1%} ({lo_t:.1%} to {hi_t:.1%})")
    d = check.get("finetuned_minus_teacher")
    if f and d:
        lo, hi = d["accuracy_diff_ci"]
        if lo > 0:
            verdict = "better than the teacher beyond the interval: it learned past some of the teacher's mistakes"
        elif hi < 0:
            verdict = "worse than the teacher beyond the interval: it does not match the model it would replace"
        else:
            verdict = (f"no difference these {check['rows']} rows can show; it matches the teacher within "
                       f"{max(abs(lo), abs(hi)):.1%} of accuracy at most")
        out += (f", the fine-tune on {f['accuracy_vs_people']:.1%} ({f['accuracy_vs_people_ci'][0]:.1%} to "
                f"{f['accuracy_vs_people_ci'][1]:.1%}): fine-tune minus teacher {d['accuracy_diff']:+.3f} (95% CI "
                f"{lo:+.3f} to {hi:+.3f}), {verdict}. It agrees with the teacher on {f['agreement_with_teacher']:.1%}"
                " of them (the score its training targets can give)")
    return out + "."
