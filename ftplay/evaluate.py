"""One evaluation harness for every system: predictors, metrics with intervals, paired comparisons
(the gate that reads them is `ftplay.gate`)."""
import functools
import json
import logging
import math
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from . import progress, prompts

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    label: str | None      # None when a free-text answer is not a valid label
    confidence: float      # probability of the chosen label (scoring) or 1.0/0.0 (generation)
    raw: str = ""          # what the system said, for generation and endpoints


# ---------------------------------------------------------------- prompts
class ShotPicker:
    """Few-shot examples: `fixed` (one per label, same for every ticket) or `retrieved`
    (the k nearest training tickets by TF-IDF cosine, per ticket). Each shot is (text, answer), the
    answer being the row's `answer` field: its label, or its reference reply ("output") for the reply task."""

    def __init__(self, train_rows, labels, mode="fixed", k=4, seed=0, answer="label"):
        self.mode, self.k, self.answer = mode, k, answer
        rng = np.random.default_rng(seed)
        by_label = {l: [r for r in train_rows if r["label"] == l] for l in labels}
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
@contextmanager
def _last_layer_at(model, keep):
    """While open, the model's last decoder layer runs its query side (attention output, MLP) only for the
    last keep[0] positions of a call, the ones whose logits are kept: the others' outputs feed nothing, and
    that layer needs only their keys and values (written to the cache as its attention would write them).
    Exact: the kept positions see the same keys, values and mask. Calls without a cache or with
    keep[0] >= their length run the layer as usual; so does a family whose attention is not the
    q/k/v-projection, rotary kind this knows (its keys then come from its own code). The saving is
    1/n_layers of the non-output tokens' work (a quarter on the embedded 4-layer model)."""
    import sys

    import torch

    layers = [m for name, m in model.named_modules() if name.endswith("layers") and hasattr(m, "__len__")]
    layer = layers[0][len(layers[0]) - 1] if layers and len(layers[0]) else None
    attn = getattr(layer, "self_attn", None)
    rope = getattr(sys.modules.get(type(attn).__module__), "apply_rotary_pos_emb", None)
    known = attn is not None and rope is not None and hasattr(layer, "input_layernorm") and \
        all(hasattr(attn, a) for a in ("k_proj", "v_proj", "head_dim", "layer_idx")) and \
        not hasattr(attn, "k_norm")  # Qwen3/Gemma-style norms on keys: not this kind
    if not known:
        yield
        return
    run = layer.forward

    def forward(hidden_states, attention_mask=None, position_embeddings=None, past_key_values=None, **kw):
        n, t = hidden_states.shape[1], keep[0]
        if t >= n or past_key_values is None or attention_mask is None or attention_mask.dim() != 4:
            return run(hidden_states, attention_mask=attention_mask, position_embeddings=position_embeddings,
                       past_key_values=past_key_values, **kw)
        h = n - t
        x = layer.input_layernorm(hidden_states[:, :h])
        shape = (*x.shape[:-1], -1, attn.head_dim)
        k, v = (proj(x).view(shape).transpose(1, 2) for proj in (attn.k_proj, attn.v_proj))
        cos, sin = position_embeddings
        past_key_values.update(rope(k, k, cos[:, :h], sin[:, :h])[1], v, attn.layer_idx)
        for name in ("position_ids", "cache_position"):
            if isinstance(kw.get(name), torch.Tensor) and kw[name].shape[-1] == n:
                kw[name] = kw[name][..., h:]
        return run(hidden_states[:, h:], attention_mask=attention_mask[:, :, h:],
                   position_embeddings=(cos[:, h:], sin[:, h:]), past_key_values=past_key_values, **kw)

    own = layer.__dict__.get("forward")  # a hook's wrapper (accelerate) stays in place afterwards
    layer.forward = forward
    try:
        yield
    finally:
        if own is None:
            del layer.forward
        else:
            layer.forward = own


@functools.cache
def _room_layer():
    """DynamicLayer whose keys and values are views of a buffer with free columns (defined on first use: the
    module imports neither torch nor transformers at import time)."""
    import torch
    from transformers.cache_utils import DynamicLayer

    class RoomLayer(DynamicLayer):
        """update() writes new keys and values in place (the buffer grows when full) instead of concatenating,
        which copies every earlier column."""

        def __init__(self, keys, values, room):
            super().__init__()
            B, H, n, D = keys.shape
            self.dtype, self.device, self.is_initialized, self.n = keys.dtype, keys.device, True, n
            self.buf = [keys.new_empty((B, H, n + room, D)), values.new_empty((B, H, n + room, D))]
            self.buf[0][:, :, :n], self.buf[1][:, :, :n] = keys, values
            self.keys, self.values = self.buf[0][:, :, :n], self.buf[1][:, :, :n]

        def update(self, key_states, value_states, *args, **kwargs):
            n, m = self.n, key_states.shape[-2]
            if n + m > self.buf[0].shape[2]:
                self.buf = [torch.cat([b[:, :, :n], b.new_empty((*b.shape[:2], n + 2 * m, b.shape[3]))], 2)
                            for b in self.buf]
            self.buf[0][:, :, n:n + m], self.buf[1][:, :, n:n + m] = key_states, value_states
            self.n = n + m
            self.keys, self.values = self.buf[0][:, :, :self.n], self.buf[1][:, :, :self.n]
            return self.keys, self.values

    return RoomLayer


class LabelScorer:
    """Constrained classification: the log-likelihood of each label (plus end-of-turn) after the
    prompt. The prompts' common prefix (chat template, system prompt listing the labels, fixed shots)
    goes through the model once per call and its key/value cache is shared by every batch. Prompts are
    batched by length.

    `logprobs()` is exact for every label: each batch runs its tickets' own tokens and the labels' tokens
    as a trie (labels sharing first tokens share nodes; each node attends to the prefix, its ticket and its
    ancestors, via a 4D mask), and only the last prompt position and the trie nodes go through the LM head.

    `predict()` (with `margin`, the default) searches the trie best-first instead and expands only labels
    that can matter: a node's summed log-prob bounds every label under it (log-probs are <= 0), so once a
    row's open nodes are all below its best complete label minus `margin` nats, none of them can win. The
    chosen label is the exact argmax; every label left out has probability below e^-margin times the
    best's, so the confidence is the exact one plus at most (n_labels - 1) * e^-margin (150 labels at the
    default 15 nats: 4.6e-5). `margin=None` makes predict() use the exact `logprobs()`."""

    def __init__(self, model, tokenizer, labels, system_prompt, shots=None, batch_size=16,
                 name="scoring", margin=15.0):
        self.model, self.tok, self.labels = model, tokenizer, list(labels)
        self.system_prompt, self.shots, self.bs, self.name = system_prompt, shots, batch_size, name
        self.margin = margin
        how = prompts.plan(tokenizer)  # each label's tokens in context, as training produced them
        self.cand = [prompts.answer_ids(tokenizer, l, how) for l in self.labels]
        self.prefix_tokens = 0  # tokens of the last call's shared prefix, run once
        self.expanded = 0       # trie nodes the last predict() ran through the model, all rows together

    def _prompt_ids(self, text):
        shots = self.shots(text) if self.shots else ()
        msgs = prompts.messages(text, self.labels, system_prompt=self.system_prompt, shots=shots)
        return prompts.prompt_ids(self.tok, msgs)

    def _tree(self):
        """The labels' tokens that predict a next one, as a trie (one node per distinct label prefix):
        node tokens, node depths, the (Q, Q) mask of which node may see which (its ancestors and itself),
        and per scored token (node, the token it predicts, owner label)."""
        import torch

        node, tok, depth, pairs = {}, [], [], []
        for j, c in enumerate(self.cand):
            for k in range(len(c) - 1):
                key = tuple(c[: k + 1])
                if key not in node:
                    node[key] = len(tok)
                    tok.append(c[k])
                    depth.append(k)
                pairs.append((node[key], c[k + 1], j))
        see = torch.zeros((len(tok), len(tok)), dtype=torch.bool)
        for key, i in node.items():
            see[i, [node[key[: m + 1]] for m in range(len(key))]] = True
        at, target, owner = (torch.tensor([p[i] for p in pairs], dtype=torch.long) for i in range(3))
        return torch.tensor(tok, dtype=torch.long), torch.tensor(depth, dtype=torch.long), see, at, target, owner

    def _prefix_cache(self, prefix):
        """Each layer's (keys, values) for the shared prefix, computed once: [(1, H, P, D) tensors]."""
        import torch
        from transformers import DynamicCache

        with torch.no_grad(), _last_layer_at(self.model, [1]):
            cache = self.model(input_ids=torch.tensor([prefix]), past_key_values=DynamicCache(), use_cache=True,
                               logits_to_keep=1).past_key_values
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _setup(self, texts):
        """Prompt ids, the shared prefix length P and its cache, and the rows in length order."""
        import os.path

        ids = [self._prompt_ids(t) for t in texts]
        # the common prefix, less at least one token per prompt: its last position predicts the first label token
        P = min(len(os.path.commonprefix(ids)), min(len(p) for p in ids) - 1)
        self.prefix_tokens = P
        kv = self._prefix_cache(ids[0][:P]) if P else None
        return ids, P, kv, sorted(range(len(texts)), key=lambda i: len(ids[i]))

    def _tickets(self, ids, P, extra=0):
        """A batch's own prompt tokens left-padded (every prompt ends at column L-1) with `extra` columns
        after them: input ids (B, L+extra) (pad there), which ticket columns are real (B, L), positions
        (B, L) continuing from P, and the 4D mask (B, 1, L+extra, P+L+extra), True = may attend, filled
        for the tickets (the whole prefix, causal over their real tokens); the extra rows are left to fill."""
        import torch

        B, L = len(ids), max(len(i) for i in ids)
        inp = torch.full((B, L + extra), self.tok.pad_token_id, dtype=torch.long)
        valid = torch.zeros((B, L), dtype=torch.bool)
        for i, seq in enumerate(ids):
            inp[i, L - len(seq): L] = torch.tensor(seq)
            valid[i, L - len(seq):] = True
        pos = P + (valid.long().cumsum(-1) - 1).clamp(min=0)
        n = L + extra
        mask = torch.zeros((B, 1, n, P + n), dtype=torch.bool)
        mask[:, 0, :, :P] = True
        mask[:, 0, :L, P:P + L] = torch.ones(L, L, dtype=torch.bool).tril() & valid[:, None, :]
        mask[:, 0, torch.arange(n), P + torch.arange(n)] = True  # padding rows see themselves: no NaN without a prefix
        return inp, valid, pos, mask

    @staticmethod
    def _cache(kv, B, room=0):
        """A batch's cache starting from the prefix's: with `room`, each layer's keys and values live in a buffer
        with that many free columns, so the search's passes append in place instead of copying the prefix
        again each pass (at 150 labels, 843 prefix tokens: a third of the search's time was those copies)."""
        from transformers import DynamicCache

        if not kv:
            return DynamicCache()
        if not room:
            return DynamicCache(ddp_cache_data=[(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in kv])
        cache = DynamicCache()
        cache.layers = [_room_layer()(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1), room) for k, v in kv]
        return cache

    def logprobs(self, texts):
        """(n, n_labels) array of summed candidate log-probabilities, exact for every label."""
        import torch

        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        if not texts:
            return out
        first_tok = torch.tensor([c[0] for c in self.cand])
        tree_tok, depth, see, at, target, owner = self._tree()
        Q = len(tree_tok)
        self.expanded = Q * len(texts)  # every trie node, every row
        ids, P, kv, order = self._setup(texts)
        bar = progress.bar(total=len(texts), desc=self.name, unit="row")
        for s in range(0, len(order), self.bs):
            idx = order[s: s + self.bs]
            inp, valid, pos, mask = self._tickets([ids[i][P:] for i in idx], P, Q)
            L = valid.shape[1]
            inp[:, L:] = tree_tok
            pos = torch.cat([pos, pos[:, -1:] + 1 + depth], 1)
            new = mask[:, 0, :, P:]            # the trie after the tickets: each node sees its
            new[:, L:, :L] = valid[:, None, :]  # ticket's real tokens, its ancestors and itself
            new[:, L:, L:] = see
            with torch.no_grad(), _last_layer_at(self.model, [Q + 1]):
                logits = self.model(input_ids=inp, attention_mask=mask, position_ids=pos,
                                    past_key_values=self._cache(kv, len(idx)), use_cache=True,
                                    logits_to_keep=Q + 1).logits.float()
                norm = torch.logsumexp(logits, -1)                                    # (B, Q+1)
                score = logits[:, 0, first_tok] - norm[:, :1]                          # (B, C)
                if Q:
                    got = logits[:, 1 + at, target] - norm[:, 1 + at]                 # (B, scored tokens)
                    score.index_add_(1, owner, got)
            out[idx] = score.numpy()
            bar.update(len(idx))
        bar.close()
        return out

    def search(self, texts, margin=None):
        """(n, n_labels) log-probabilities by best-first search of the label trie: exact for every label the
        search completed, -inf for the labels it left out (each below its row's best minus `margin` nats).
        Per batch, one pass runs the tickets (on the prefix cache) and gives every first label token; then each
        pass runs, per row, every open trie node within `margin` of max(best complete label, best open node),
        as new tokens on the batch's growing cache, until no row has an open node within `margin` of its best
        complete label."""
        import torch

        margin = self.margin if margin is None else margin
        out = np.full((len(texts), len(self.labels)), -np.inf)
        self.expanded = 0
        if not texts:
            return out
        kids, leaf = {}, {}
        for j, c in enumerate(self.cand):
            leaf[tuple(c)] = j
            for k in range(len(c)):
                kids.setdefault(tuple(c[:k]), {})[c[k]] = None  # each next token once, in label order
        # the first level runs with the tickets, in their pass: every label needs its first node unless the
        # first token alone rules it out, and one pass is cheaper than two (a label of one token and end-of-turn,
        # like the default task's, is then complete after it)
        first = [k for k in kids.get((), {}) if (k,) in kids]
        first = [(k,) for k in first]
        ids, P, kv, order = self._setup(texts)
        bar = progress.bar(total=len(texts), desc=self.name, unit="row")
        for s in range(0, len(order), self.bs):
            idx = order[s: s + self.bs]
            B = len(idx)
            inp, valid, pos, mask = self._tickets([ids[i][P:] for i in idx], P, len(first))
            L = valid.shape[1]
            inp[:, L:] = torch.tensor([k[0] for k in first], dtype=torch.long)
            pos = torch.cat([pos, pos[:, -1:] + 1 + torch.zeros(len(first), dtype=torch.long)], 1)
            mask[:, 0, L:, P:P + L] = valid[:, None, :]
            cache = self._cache(kv, B, room=L + len(first) + 4 * len(first) + 8)
            seen = mask[:, 0, L - 1, :P + L].clone()  # what a label token sees of prefix and ticket
            end = pos[:, L - 1].tolist()              # each ticket's last position
            g = [{(): 0.0} for _ in range(B)]   # per row: summed log-prob of each trie key reached
            col = [dict.fromkeys(first) for _ in range(B)]  # per row: cache column of each key run (parents only)
            live = [set() for _ in range(B)]    # per row: keys reached, not run, with labels under them
            best = [-np.inf] * B                # per row: best complete label
            todo = [[(), *first] for _ in range(B)]  # the root's children from the tickets' last position,
            with torch.no_grad(), _last_layer_at(self.model, [1 + len(first)]):  # the first level's from
                lp = torch.log_softmax(self.model(input_ids=inp, attention_mask=mask, position_ids=pos,
                                                  past_key_values=cache, use_cache=True,
                                                  logits_to_keep=1 + len(first)).logits.float(), -1).numpy()
            for r in range(B):  # (their own positions: they ran with the tickets)
                for j, key in enumerate(first):
                    col[r][key] = P + L + j
            self.expanded += B * len(first)
            while True:
                for r in range(B):
                    for j, key in enumerate(todo[r]):
                        for t in kids[key]:
                            child = key + (t,)
                            g[r][child] = v = g[r][key] + float(lp[r, j, t])
                            if child in leaf:
                                best[r] = max(best[r], v)
                            if child in kids:
                                live[r].add(child)
                    live[r].difference_update(todo[r])
                    top = max([best[r]] + [g[r][k] for k in live[r]])
                    todo[r] = sorted(k for k in live[r] if g[r][k] >= top - margin)
                    live[r].difference_update(todo[r])
                n = max(len(t) for t in todo)
                if not n:
                    break
                self.expanded += sum(len(t) for t in todo)
                past = cache.get_seq_length()
                tok = torch.full((B, n), self.tok.pad_token_id, dtype=torch.long)
                where = torch.zeros((B, n), dtype=torch.long)
                m = torch.zeros((B, 1, n, past + n), dtype=torch.bool)
                m[:, 0, :, :seen.shape[1]] = seen[:, None, :]
                for r, keys in enumerate(todo):
                    for j, key in enumerate(keys):
                        tok[r, j], where[r, j] = key[-1], end[r] + len(key)
                        m[r, 0, j, [col[r][key[:a]] for a in range(1, len(key))]] = True
                        col[r][key] = past + j
                m[:, 0, torch.arange(n), past + torch.arange(n)] = True
                with torch.no_grad():
                    lp = torch.log_softmax(self.model(input_ids=tok, attention_mask=m, position_ids=where,
                                                      past_key_values=cache, use_cache=True,
                                                      logits_to_keep=n).logits.float(), -1).numpy()
            for r, i in enumerate(idx):
                for key, j in leaf.items():
                    if key in g[r]:
                        out[i, j] = g[r][key]
            bar.update(B)
        bar.close()
        return out

    def predict(self, texts):
        # labels of one token (+ end-of-turn) have nothing to prune after the tickets' pass: the exact one-pass
        # scoring does the same work without the search's bookkeeping
        shallow = max(map(len, self.cand), default=0) <= 2
        lp = self.logprobs(texts) if self.margin is None or shallow else self.search(texts)
        probs = np.exp(lp - lp.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        best = probs.argmax(1)
        return [Prediction(self.labels[b], float(probs[i, b]), self.labels[b])
                for i, b in enumerate(best)]


def parse_label(text, labels):
    """The label a free-text answer names: exact match after trimming, else the only label
    mentioned as a word; None when it names none or several."""
    t = text.strip().strip(".\"'` ").lower()
    by_lower = {l.lower(): l for l in labels}
    if t in by_lower:
        return by_lower[t]
    try:
        obj = json.loads(text)
        if isinstance(obj, dict) and str(obj.get("label", "")).lower() in by_lower:
            return by_lower[str(obj["label"]).lower()]
    except (ValueError, TypeError):
        pass
    hits = {l for l in labels if re.search(rf"(?<![\w]){re.escape(l.lower())}(?![\w])", t)}
    return hits.pop() if len(hits) == 1 else None


class Generator:
    """Free text: greedy generation of a short answer, parsed into a label (invalid counted)."""

    def __init__(self, model, tokenizer, labels, system_prompt, shots=None, batch_size=16,
                 max_new_tokens=8, name="generation"):
        self.model, self.tok, self.labels = model, tokenizer, list(labels)
        self.system_prompt, self.shots, self.bs = system_prompt, shots, batch_size
        self.max_new_tokens, self.name = max_new_tokens, name

    def predict(self, texts):
        ids = [prompts.prompt_ids(self.tok, prompts.messages(t, self.labels, system_prompt=self.system_prompt,
                                                             shots=self.shots(t) if self.shots else ()))
               for t in texts]
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
        self.extra_body = extra_body  # e.g. serve.Client.extra_body() for ftplay's own vLLM server

    def _one(self, text):
        shots = self.shots(text) if self.shots else ()
        msgs = prompts.messages(text, self.labels, system_prompt=self.system_prompt, shots=shots)
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


def bootstrap_ci(y_true, y_pred, metric, n=1000, seed=0, alpha=0.05):
    """Percentile bootstrap interval of `metric` over resampled rows."""
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    idx = _resample(len(y_true), n, seed)
    return _interval(np.array([metric(y_true[i], y_pred[i]) for i in idx]), alpha)


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
    count = lambda codes: np.bincount((codes + offset).ravel(), minlength=n * (k + 1)).reshape(n, k + 1)[:, :k]
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


def run_predictor(predictor, rows, labels, n_boot=1000, seed=0):
    """Predict every row, score it, time it. Returns (metrics, predictions)."""
    t0 = time.time()
    preds = predictor.predict([r["text"] for r in rows])
    secs = time.time() - t0
    m = score([r["label"] for r in rows], preds, labels, n_boot, seed)
    m["seconds"] = round(secs, 2)
    m["rows_per_s"] = round(len(rows) / secs, 2) if secs else None
    return m, preds


def score_systems(systems, splits, tokenizer, labels, system_prompt, n_boot=1000, batch_size=32, out_dir=None,
                  prefix="04"):
    """Every model of `systems` ({name: model}) on every non-empty split of `splits` ({split: rows}) by
    label scoring: ({split: {name: metrics}}, {(split, name): predictions}). With `out_dir`, each
    one's predictions go to <out_dir>/<prefix>_<split>_<name>.jsonl."""
    from pathlib import Path

    results, preds = {}, {}
    for split, rows in splits.items():
        if not rows:
            continue
        for name, model in systems.items():
            scorer = LabelScorer(model, tokenizer, labels, system_prompt, batch_size=batch_size,
                                 name=f"scoring {name} on {split}")
            m, p = run_predictor(scorer, rows, labels, n_boot)
            results.setdefault(split, {})[name], preds[(split, name)] = m, p
            if out_dir is not None:
                save_predictions(Path(out_dir) / f"{prefix}_{split}_{name}.jsonl", rows, p)
    return results, preds


def paired_on_baseline_rows(rows, preds, baseline, labels, n_boot=1000):
    """paired_difference of `preds` (one per row of `rows`) against a baseline that scored some of
    these rows ({"ids", "preds"}, as `baselines` returns each), on the rows it scored."""
    at = {r["id"]: i for i, r in enumerate(rows)}
    idx = [at[i] for i in baseline["ids"]]
    return paired_difference([rows[i]["label"] for i in idx], [preds[i] for i in idx], baseline["preds"], labels,
                             n_boot)


class TfidfClassifier:
    """A cheap non-LLM classifier (TF-IDF word 1-2 grams + logistic regression) as a reference,
    fitted on `train_rows`; `predict` gives each row's most likely label and its probability."""

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


def tfidf_reference(train_rows, rows):
    """TfidfClassifier fitted on `train_rows`, its predictions for `rows`."""
    return TfidfClassifier(train_rows).predict([r["text"] for r in rows])


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

    recs = [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]
    return [r["id"] for r in recs], [Prediction(r["pred"], r["confidence"], r.get("raw", "")) for r in recs]


def answer_examples(rows, predictions, n=4, seed=0, width=70):
    """A few rows side by side: the ticket (cut to `width`), its label, and each system's answer: the
    raw text for a generating system (what the model actually said), else the label and its confidence."""
    idx = sorted(np.random.default_rng(seed).permutation(len(rows))[:n].tolist())
    out = []
    for i in idx:
        text = " ".join(rows[i]["text"].split())
        row = {"ticket": text if len(text) <= width else text[:width - 3] + "...", "label": rows[i]["label"]}
        for name, preds in predictions.items():
            p = preds[i]
            said = " ".join((p.raw or "").split())
            row[name] = (repr(said[:40]) + ("" if p.label else " (not a label)")) if said and said != p.label else \
                f"{p.label} ({p.confidence:.2f})"
        out.append(row)
    return out


def ci_decimals(*cis):
    """Decimals an interval supports: two significant digits of its width (width 0.19 -> 2, 0.019 -> 3)."""
    widths = [hi - lo for lo, hi in cis if hi is not None and lo is not None and hi > lo]
    return min(4, max(1, 1 - math.floor(math.log10(min(widths))))) if widths else 3


def summary_table(results):
    """One row per (split, system): n, accuracy and macro-F1 with their 95% intervals, valid rate, as a
    pandas DataFrame rounded to the decimals the intervals support."""
    import pandas as pd

    rows = []
    for split, systems in results.items():
        for name, m in systems.items():
            a, f = m["accuracy_ci"], m["macro_f1_ci"]
            d = ci_decimals(a, f)
            rows.append({"split": split, "system": name, "n": m["n"],
                         "accuracy [95% CI]": f"{m['accuracy']:.{d}f} [{a[0]:.{d}f}, {a[1]:.{d}f}]",
                         "macro-F1 [95% CI]": f"{m['macro_f1']:.{d}f} [{f[0]:.{d}f}, {f[1]:.{d}f}]",
                         "valid answers": f"{m['valid_rate']:.0%}"})
    return pd.DataFrame(rows).set_index(["split", "system"]) if rows else pd.DataFrame()


def read_summary(results):
    """One sentence per split under summary_table: the best system by macro-F1 and what the interval width
    means for telling systems apart on this many rows."""
    out = []
    for split, systems in results.items():
        if not systems:
            continue
        best = max(systems, key=lambda k: systems[k]["macro_f1"])
        m = systems[best]
        lo, hi = m["macro_f1_ci"]
        out.append(f"{split} ({m['n']} rows): {best} scores highest, macro-F1 {m['macro_f1']:.2f} "
                   f"(95% CI {lo:.2f} to {hi:.2f}); with intervals about {hi - lo:.2f} wide, systems closer than that "
                   "are not told apart here (the paired comparisons below say which differences are real).")
    return "\n".join(out)


def vocabulary(rows):
    """Lower-cased words of the training texts: a word outside it in a ticket hints at a typo."""
    return {w for r in rows for w in re.findall(r"[a-z]+", r["text"].lower())}


def slices(rows, ft, base, labels, vocab, min_rows=20):
    """Accuracy of fine-tuned and base on slices: rare labels, long tickets, tickets with
    out-of-vocabulary words (likely typos). Each slice warns when it is too small to conclude."""
    counts = {l: sum(r["label"] == l for r in rows) for l in labels}
    rare = set(sorted(labels, key=lambda l: counts[l])[:3])
    words = [len(r["text"].split()) for r in rows]
    long_cut = float(np.quantile(words, 0.75)) if words else 0.0
    defs = {"rare_labels": lambda r, w: r["label"] in rare,
            "long_tickets": lambda r, w: w >= long_cut and w > 0,
            "typos": lambda r, w: sum(1 for t in re.findall(r"[a-z]{4,}", r["text"].lower()) if t not in vocab) >= 2}
    out = {}
    for name, keep in defs.items():
        idx = [i for i, r in enumerate(rows) if keep(r, words[i])]
        acc = lambda ps: float(np.mean([ps[i].label == rows[i]["label"] for i in idx])) if idx else None
        out[name] = {"n": len(idx), "finetuned_accuracy": acc(ft), "base_accuracy": acc(base),
                     "warning": (f"only {len(idx)} rows (< {min_rows}): too few to conclude anything"
                                 if len(idx) < min_rows else None)}
    out["rare_labels"]["labels"] = sorted(rare)
    out["long_tickets"]["min_words"] = long_cut
    small = [l for l in labels if counts[l] < min_rows]
    out["small_labels"] = {"labels": small, "warning": f"{len(small)} label(s) with < {min_rows} rows: "
                           "their per-class scores are noise" if small else None}
    return out


def baselines(run_dir, heldout, load=None):
    """Every system 01 scored, with its predictions on the rows of `heldout` that 01 scored (01 and
    04 may each score a MAX_ROWS sample): {name: {"name", "ids", "preds"}}; {} when 01 has not run
    here. Systems sharing no row with `heldout` are left out. `load` reads a predictions file as (ids,
    predictions): load_predictions by default, replies.load_outputs for the reply task."""
    from pathlib import Path

    from . import records, stages

    rec = records.read_or_empty(run_dir, stages.BASELINE)
    here, out = {r["id"] for r in heldout}, {}
    for name in rec.at("systems", default={}):
        path = Path(run_dir) / "predictions" / f"01_{name}.jsonl"
        if not path.exists():
            continue
        ids, preds = (load or load_predictions)(path)
        both = [(i, p) for i, p in zip(ids, preds) if i in here]
        if len(both) < len(ids):
            log.warning("01 scored %d rows, %d of them among these held-out rows: comparing with %s on those",
                        len(ids), len(both), name)
        if both:
            out[name] = {"name": name, "ids": [i for i, _ in both], "preds": [p for _, p in both]}
    return out

