"""Label scoring: the constrained classifier behind `evaluate.LabelScorer`, each label's probability when
decoding is constrained to the label set (or its full likelihood, method "joint"), with the prompts' shared
prefix run once and the labels as a trie searched best-first.
`Prediction` is what every predictor returns (scoring, generation, endpoints, TF-IDF)."""
import functools
import weakref
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from . import progress, prompts
from .config import SCORING_METHODS


@dataclass
class Prediction:
    label: str | None      # None when a free-text answer is not a valid label
    confidence: float      # probability of the chosen label (scoring) or 1.0/0.0 (generation)
    raw: str = ""          # what the system said, for generation and endpoints


_LAST_LAYERS = weakref.WeakKeyDictionary()


def _last_layer(model):
    """(last decoder layer, its attention, its family's apply_rotary_pos_emb) when the layer is the
    q/k/v-projection, rotary kind `_last_layer_at` knows, else None; looked up once per model (walking the
    modules on every batch cost 2% of a scoring run)."""
    if model not in _LAST_LAYERS:
        import sys

        layers = [m for name, m in model.named_modules() if name.endswith("layers") and hasattr(m, "__len__")]
        layer = layers[0][len(layers[0]) - 1] if layers and len(layers[0]) else None
        attn = getattr(layer, "self_attn", None)
        rope = getattr(sys.modules.get(type(attn).__module__), "apply_rotary_pos_emb", None)
        known = attn is not None and rope is not None and hasattr(layer, "input_layernorm") and \
            all(hasattr(attn, a) for a in ("k_proj", "v_proj", "head_dim", "layer_idx")) and \
            not hasattr(attn, "k_norm")  # Qwen3/Gemma-style norms on keys: not this kind
        _LAST_LAYERS[model] = (layer, attn, rope) if known else None
    return _LAST_LAYERS[model]


@contextmanager
def _last_layer_at(model, keep):
    """While open, the model's last decoder layer runs its query side (attention output, MLP) only for the
    last keep[0] positions of a call, the ones whose logits are kept: the others' outputs feed nothing, and
    that layer needs only their keys and values (written to the cache as its attention would write them).
    Exact: the kept positions see the same keys, values and mask. Calls without a cache or with
    keep[0] >= their length run the layer as usual; so does a family whose attention is not the
    q/k/v-projection, rotary kind this knows (its keys then come from its own code). The saving is
    1/n_layers of the non-output tokens' work (a quarter on the embedded 4-layer model)."""
    import torch

    found = _last_layer(model)
    if found is None:
        yield
        return
    layer, attn, rope = found
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
    """Constrained classification: each label's probability as the answer after the prompt. The prompts'
    common prefix (chat template, system prompt listing the labels, fixed shots) goes through the model once
    per call and its key/value cache is shared by every batch. Prompts are batched by length.

    What a label's log-probability is, `method`:
    - "constrained" (the default): the probability constrained decoding over the label set gives it. Where
      labels part ways, the model's next-token probabilities are renormalised over the tokens that continue
      some label (end-of-turn among them where a label ends, so "card" still competes with "card_arrival");
      a token that is the only continuation is forced and costs nothing. So only the trie nodes where labels
      still differ below run through the model. With labels of one token each (the default task) the
      tickets' own pass is all, and the chosen label is the label greedy generation answers whenever it
      answers a label (its first token is the most likely of the labels' first tokens).
    - "joint": the model's full likelihood of the label's tokens and its end-of-turn, unrenormalised: every
      trie node runs, and a label the model would go on from after its last token loses probability.

    `logprobs()` is exact for every label. For "joint" each batch runs its tickets' own tokens and the labels'
    tokens as a trie (labels sharing first tokens share nodes; each node attends to the prefix, its ticket
    and its ancestors, via a 4D mask) in one pass; only the last prompt position and the trie nodes go
    through the LM head. For "constrained" it is the search below with no margin.

    `predict()` searches the trie best-first instead and expands only labels that can matter: a node's summed
    log-prob bounds every label under it (log-probs are <= 0), so once a row's open nodes are all below its
    best complete label, none of them can win, and the chosen label is the exact argmax.
    - "constrained": the labels' probabilities sum to one by construction (each branch's are renormalised),
      so the best label's probability is its confidence, exact, with no other label completed: the search
      stops as soon as no open node can beat the best complete label.
    - "joint": the confidence needs the other labels' likelihoods, so the search completes every label within
      `margin` nats of the best; each one left out has probability below e^-margin times the best's, so the
      confidence is the exact one plus at most (n_labels - 1) * e^-margin (150 labels at the default 15 nats:
      4.6e-5).
    `margin=None` makes predict() use the exact `logprobs()`."""

    METHODS = SCORING_METHODS   # config.ScoringConfig validates SCORING_METHOD against the same tuple

    def __init__(self, model, tokenizer, labels, system_prompt, shots=None, batch_size=16,
                 name="scoring", margin=15.0, method="constrained"):
        if method not in self.METHODS:
            raise ValueError(f"LabelScorer(method={method!r}) (the notebooks' SCORING_METHOD): use one of "
                             f"{', '.join(self.METHODS)}")
        self.model, self.tok, self.labels = model, tokenizer, list(labels)
        self.system_prompt, self.shots, self.bs, self.name = system_prompt, shots, batch_size, name
        self.margin, self.method = margin, method
        how = prompts.plan(tokenizer)  # each label's tokens in context, as training produced them
        self.cand = [prompts.answer_ids(tokenizer, label, how) for label in self.labels]
        same = {}
        for i, (label, c) in enumerate(zip(self.labels, self.cand)):
            if same.setdefault(tuple(c), i) != i:
                raise ValueError(f"labels {self.labels[same[tuple(c)]]!r} and {label!r} are the same tokens to this "
                                 "tokenizer, so no score can tell them apart: list each label once, under one spelling")
        self.prefix_tokens = 0  # tokens of the last call's shared prefix, run once
        self.expanded = 0       # trie nodes the last predict() ran through the model, all rows together

    def messages(self, text):
        """The conversation this scorer sends for `text` (instructions, its shots, the ticket)."""
        shots = self.shots(text) if self.shots else ()
        return prompts.messages(text, self.labels, system_prompt=self.system_prompt, shots=shots)

    def _prompt_ids(self, text):
        return prompts.prompt_ids(self.tok, self.messages(text))

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
        """(n, n_labels) array of every label's log-probability under `method`, exact."""
        import torch

        if self.method == "constrained":
            return self.search(texts, margin=np.inf)
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
        """(n, n_labels) log-probabilities under `method` by best-first search of the label trie: exact for
        every label the search completed, -inf for the labels it left out (each below its row's best minus
        `margin` nats; margin=np.inf completes every label). Per batch, one pass runs the tickets (on the
        prefix cache) and the first trie level that needs running; then each pass runs, per row, every open
        trie node within `margin` of max(best complete label, best open node), as new tokens on the batch's
        growing cache, until no row has an open node within `margin` of its best complete label.
        A node needs running when labels below it still differ ("joint": any node with a next token)."""
        import torch

        margin = self.margin if margin is None else margin
        out = np.full((len(texts), len(self.labels)), -np.inf)
        self.expanded = 0
        if not texts:
            return out
        joint = self.method == "joint"
        kids, under = {}, {}  # next tokens of each label prefix (in label order); the labels below it
        for j, c in enumerate(self.cand):
            for k in range(len(c) + 1):
                under.setdefault(tuple(c[:k]), []).append(j)
                if k < len(c):
                    kids.setdefault(tuple(c[:k]), {})[c[k]] = None
        kid_toks = {key: np.fromiter(ks, dtype=np.int64) for key, ks in kids.items()}
        # a key is complete when its label is settled: the whole label ("joint"), or a single label below it
        # ("constrained": what follows is forced); a key runs when it has next tokens and is not complete
        done = {key: js[0] for key, js in under.items() if len(js) == 1 and (not joint or key not in kids)}
        # "joint", and any search that completes every label: the first level runs with the tickets, in their
        # pass (every label needs its first node unless the first token alone rules it out, and one pass is
        # cheaper than two); a constrained search that may stop early runs only the nodes it reaches
        first = [(k,) for k in kids.get((), {}) if (k,) in kids and (k,) not in done] \
            if joint or np.isinf(margin) else []
        ids, P, kv, order = self._setup(texts)
        bar = progress.bar(total=len(texts), desc=self.name, unit="row")

        def step(logits):  # what the loop reads per node: log-probs ("joint"), raw logits ("constrained")
            return (torch.log_softmax(logits.float(), -1) if joint else logits.float()).numpy()

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
                lp = step(self.model(input_ids=inp, attention_mask=mask, position_ids=pos, past_key_values=cache,
                                     use_cache=True, logits_to_keep=1 + len(first)).logits)
            for r in range(B):  # (their own positions: they ran with the tickets)
                for j, key in enumerate(first):
                    col[r][key] = P + L + j
            self.expanded += B * len(first)
            while True:
                for r in range(B):
                    for j, key in enumerate(todo[r]):
                        if joint:
                            got = lp[r, j, kid_toks[key]]
                        else:  # renormalised over the tokens that continue a label
                            x = lp[r, j, kid_toks[key]]
                            hi = x.max()
                            got = x - hi - np.log(np.exp(x - hi).sum())
                        for t, v in zip(kids[key], got.tolist()):
                            child = key + (t,)
                            g[r][child] = v = g[r][key] + v
                            if child in done:
                                best[r] = max(best[r], v)
                                out[idx[r], done[child]] = v
                            else:
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
                    lp = step(self.model(input_ids=tok, attention_mask=m, position_ids=where, past_key_values=cache,
                                         use_cache=True, logits_to_keep=n).logits)
            bar.update(B)
        bar.close()
        return out

    def predict(self, texts):
        if self.method == "constrained":  # probabilities that sum to one: no margin needed for the confidence
            lp = self.logprobs(texts) if self.margin is None else self.search(texts, margin=0.0)
            best = lp.argmax(1)
            conf = np.exp(lp[np.arange(len(best)), best]).clip(max=1.0)
            return [Prediction(self.labels[b], float(c), self.labels[b]) for b, c in zip(best, conf)]
        # "joint" labels of one token (+ end-of-turn) have nothing to prune after the tickets' pass: the exact
        # one-pass scoring does the same work without the search's bookkeeping
        shallow = max(map(len, self.cand), default=0) <= 2
        lp = self.logprobs(texts) if self.margin is None or shallow else self.search(texts)
        probs = np.exp(lp - lp.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        best = probs.argmax(1)
        return [Prediction(self.labels[b], float(probs[i, b]), self.labels[b])
                for i, b in enumerate(best)]
