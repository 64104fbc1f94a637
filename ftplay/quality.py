"""Data-quality checks for ticket rows: duplicates, conflicts, near duplicates, trivial text, PII, leakage.

Every check takes rows ({"id", "text", "label", ...}) and returns row indices or groups of them, so
`ftplay.data.curate` decides what to drop and the notebook shows why. A row's answer is its label, or
for the reply task (rows with "output") its normalised reply (`answer_of`): duplicates, conflicts and
the audit's conflicts compare answers, near duplicates compare inputs only.

Definitions (the data card and the tests use exactly these):

- `normalise_ci(text)`: lower-case and collapse runs of whitespace. Twins under it are "exact_ci".
- `normalise(text)`: additionally every character that is not a letter or digit (punctuation,
  symbols, underscore) becomes a space and every digit becomes "0", so "Order #1234!" and
  "order 5678" are equal. Twins under it are "exact". On BANKING77 this takes the test rows with a
  twin in train from 7 (exact_ci) to 25 (exact); on our bitext split from 16 to 42 (byte-equal: 0).
- Near duplicates: character 4-grams ("shingles") of the normalised text (texts shorter than 4
  characters are one shingle), Jaccard similarity >= threshold (default 0.65). Candidates come from
  MinHash LSH (128 hash functions in 32 bands of 4 rows: a pair at Jaccard 0.65 becomes a candidate
  with probability 1-(1-0.65**4)**32 > 0.998, one at 0.3 with 0.23); candidates whose MinHash
  estimate reaches threshold - ESTIMATE_MARGIN (over 3 sd) are verified with the exact Jaccard of
  their shingle sets, so LSH and the estimate can only cost recall, never precision. Groups are connected components.
  Why character 4-grams at 0.65, measured on data/tickets_raw.csv: the 60 planted near duplicates
  (a word inserted, dropped or swapped, a closing added) have Jaccard >= 0.68, while no clean ticket
  has a clean neighbour above 0.53 (tickets share stock openings and closings); an earlier draw of
  the same generator gave >= 0.74 and <= 0.59, so 0.65 sits inside both gaps. Word 3-shingles
  break on every edited word: planted pairs go down to 0.42 and 13 of 60 fall below 0.7.
  Limits: on very short texts one word is a large share ("how do i change my address" vs "... my
  pin" is 0.73 on BANKING77), which is why a near twin with another label is kept and reported,
  not dropped; long pastes of logs or quoted replies dominate a text, so `curate` drops over-long
  rows before this check.
"""
import functools
import logging
import re
from collections import defaultdict

import numpy as np

log = logging.getLogger(__name__)

SHINGLE_CHARS = 4                  # character 4-grams of the normalised text
NUM_PERM, BANDS = 128, 32          # 32 bands x 4 rows; see the module docstring for the S-curve
NEAR_DUP_THRESHOLD = 0.65          # default Jaccard threshold, see the module docstring
ESTIMATE_MARGIN = 0.15             # candidates estimated below threshold - margin skip the exact check
CARD_FIRST_DIGITS = "23456"        # issuer networks (Mastercard 2/5, Amex 3, Visa 4, Discover 6)
MIN_WORD_CHARS = 3                 # fewer letters/digits than this is trivial ("ok", "?")
MIN_WORDS = 2                      # a single word ("help", "refund") names no problem to triage

_NON_ALNUM = re.compile(r"[\W_]+")
_DIGIT = re.compile(r"\d")
_WORD = re.compile(r"[^\W_]+")
_ANY_DIGIT = re.compile(r"\d")


# --------------------------------------------------------------------------- normalisation
def normalise_ci(text):
    """Lower-case and collapse whitespace (the "exact_ci" key)."""
    return " ".join(text.lower().split())


@functools.lru_cache(maxsize=1 << 17)   # each check normalises every row; 100k rows stay cached
def normalise(text):
    """Lower-case, punctuation/symbols to spaces, digits to 0, whitespace collapsed (the "exact" key)."""
    return " ".join(_DIGIT.sub("0", _NON_ALNUM.sub(" ", text.lower())).split())


def answer_of(row):
    """What a row teaches for its input: the label, or the normalised reply of a reply-task row."""
    return normalise(row["output"]) if "output" in row else row["label"]


def _groups_by(keys, min_size=2):
    by = defaultdict(list)
    for i, k in enumerate(keys):
        by[k].append(i)
    return [g for g in by.values() if len(g) >= min_size]


# --------------------------------------------------------------------------- exact checks
def find_exact_duplicates(rows):
    """Groups (lists of row indices, first occurrence first) with equal normalised text and answer."""
    return _groups_by([(normalise(r["text"]), answer_of(r)) for r in rows])


def find_conflicts(rows):
    """Groups of rows whose normalised text is equal but whose answers (labels, or normalised replies) differ."""
    groups = _groups_by([normalise(r["text"]) for r in rows])
    return [g for g in groups if len({answer_of(rows[i]) for i in g}) > 1]


def find_trivial(rows):
    """Indices of rows with no usable text.

    Trivial: empty or whitespace, fewer than MIN_WORD_CHARS letters/digits ("ok", "??", "hi"), or a
    single word ("help", "refund", "asdfgh"): nothing in it tells a human triager the category with
    confidence, and the model would learn the label prior from it. Two words ("refund please",
    "card stolen") already name a problem and are kept.
    """
    return [i for i, r in enumerate(rows) if _is_trivial(r["text"] or "")]


def find_trivial_outputs(rows):
    """Indices of reply-task rows whose reply is trivial by the same rule ("ok", "Done.", "n/a"): nothing
    a model should learn to answer a ticket with."""
    return [i for i, r in enumerate(rows) if "output" in r and _is_trivial(r["output"] or "")]


def _is_trivial(text):
    n_words = n_chars = 0
    for m in _WORD.finditer(text):       # stop as soon as the text is clearly not trivial
        n_words, n_chars = n_words + 1, n_chars + len(m.group())
        if n_words >= MIN_WORDS and n_chars >= MIN_WORD_CHARS:
            return False
    return True


# --------------------------------------------------------------------------- PII
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}\b")
# 13-19 digits, optionally grouped by single spaces or hyphens (4-4-4-4, 4-6-5, ...)
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
# +CC or national trunk prefix, optional (area), groups separated by space . - ; 7-15 digits
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{1,5}(?:[ .-]\d{1,5}){0,5}(?![\w])"
                    r"|(?<![\w+])\+\d{7,15}(?!\w)")
_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")


def luhn_ok(digits):
    """True when a digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for k, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if k % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_phone(m):
    s = m.strip()
    digits = re.sub(r"\D", "", s)
    if not 7 <= len(digits) <= 15 or _DATE.match(s):
        return False
    grouped = bool(re.search(r"[ .()-]", s))
    # a bare run of digits is an order or account number unless it looks dialled: +CC... or 0...
    if re.fullmatch(r"\d{3}[ .-]\d{4}", s):                  # US local number: 555-0131
        return True
    return s.startswith("+") or (grouped and len(digits) >= 9) or (digits[0] == "0" and len(digits) >= 10) \
        or (grouped and s.startswith("(")) or (grouped and len(re.findall(r"\d+", s)) >= 3)


def _pii_spans(text):
    spans = []
    if "@" not in text and not _ANY_DIGIT.search(text):
        return spans
    for m in _EMAIL.finditer(text) if "@" in text else ():
        spans.append(("email", m.start(), m.end()))
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and digits[0] in CARD_FIRST_DIGITS and luhn_ok(digits) \
                and not _overlaps(spans, m.start(), m.end()):
            spans.append(("card", m.start(), m.end()))
    for m in _PHONE.finditer(text):
        if _is_phone(m.group()) and not _overlaps(spans, m.start(), m.end()):
            spans.append(("phone", m.start(), m.end()))
    return sorted(spans, key=lambda s: s[1])


def _overlaps(spans, a, b):
    return any(a < e and s < b for _, s, e in spans)


def find_pii(text):
    """PII found in `text`: {"email": [...], "phone": [...], "card": [...]} (kinds with no match left out).

    Cards are 13-19 digits (grouped by spaces/hyphens or not) that start like a card network's
    numbers (2-6) and pass Luhn, so order numbers rarely match (bitext's 113542617735902 passes Luhn
    but starts with 1); phones are 7-15 digits that start with +CC, a 0 trunk prefix, or are grouped like a dialled
    number ("(555) 123-4567", "020 7946 0958"); dates are not phones.
    """
    found = defaultdict(list)
    for kind, s, e in _pii_spans(text):
        found[kind].append(text[s:e])
    return dict(found)


def redact(text):
    """`text` with every PII span replaced by [EMAIL], [PHONE] or [CARD]."""
    out, last = [], 0
    for kind, s, e in _pii_spans(text):
        out += [text[last:s], f"[{kind.upper()}]"]
        last = e
    return "".join(out + [text[last:]])


# --------------------------------------------------------------------------- near duplicates
def _shingle_hashes(texts, k=SHINGLE_CHARS):
    """uint64 hashes of the character k-grams of each (already normalised) text: (flat array, offsets).

    Texts shorter than k characters are one shingle; empty texts have none.
    """
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    n_sh = np.where(lens >= k, lens - k + 1, np.minimum(lens, 1))
    row_of = np.repeat(np.arange(len(texts)), n_sh)
    first = np.arange(int(n_sh.sum())) - np.repeat(np.cumsum(n_sh) - n_sh, n_sh) + starts[row_of]
    width = np.minimum(lens[row_of], k)
    h = np.zeros(len(first), dtype=np.uint64)
    mult, shift = np.uint64(0x9E3779B97F4A7C15), np.uint64(29)
    with np.errstate(over="ignore"):
        for j in range(k):
            use = width > j                      # position j exists in this shingle
            mixed = (h[use] * mult) ^ codes[first[use] + j]
            h[use] = mixed + np.uint64(j + 1)
        h ^= h >> shift
        h *= mult
        h ^= h >> shift
    offsets = np.concatenate([[0], np.cumsum(n_sh)]).astype(np.int64)
    return h, offsets


def _minhash(h, offsets, num_perm=NUM_PERM, seed=1, chunk=1 << 19):
    """MinHash signatures (n_texts x num_perm, uint32) by multiply-shift hashing of shingle hashes.

    Rows are processed in chunks of about `chunk` shingles with in-place arithmetic, so the working
    set stays in cache and nothing is allocated per hash function (3x faster on 100k rows).
    """
    n = len(offsets) - 1
    sig = np.full((n, num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    rows = np.flatnonzero(offsets[1:] > offsets[:-1])          # texts with at least one shingle
    shift = np.uint64(32)
    lo = 0
    while lo < len(rows):
        hi = int(np.searchsorted(offsets[rows + 1], offsets[rows[lo]] + chunk, side="right"))
        hi = max(hi, lo + 1)
        part = rows[lo:hi]
        first, last = offsets[part[0]], offsets[part[-1] + 1]
        x = h[first:last]
        starts = offsets[part] - first
        buf = np.empty_like(x)
        with np.errstate(over="ignore"):
            for p in range(num_perm):
                np.multiply(x, a[p], out=buf)
                np.add(buf, b[p], out=buf)
                np.right_shift(buf, shift, out=buf)
                sig[part, p] = np.minimum.reduceat(buf, starts)
        lo = hi
    return sig


def _candidate_pairs(sig, bands=BANDS):
    """Pairs (i < j) of rows whose signatures agree on all rows of at least one band: (m, 2) int64."""
    n, num_perm = sig.shape
    r = num_perm // bands
    out = []
    with np.errstate(over="ignore"):
        for band in range(bands):
            key = np.zeros(n, dtype=np.uint64)
            for c in range(band * r, (band + 1) * r):
                key = (key * np.uint64(0x100000001B3)) ^ sig[:, c].astype(np.uint64)
                key ^= key >> np.uint64(31)
            order = np.argsort(key, kind="stable")
            k = key[order]
            run = np.cumsum(np.concatenate([[True], k[1:] != k[:-1]])) - 1
            pos = np.flatnonzero(np.bincount(run)[run] > 1)      # sorted positions in shared buckets
            d = 1
            while len(pos):                                      # pair each position with the next d-th
                pos = pos[pos + d < n]
                pos = pos[run[pos] == run[pos + d]]
                a, b = order[pos], order[pos + d]
                out.append(np.minimum(a, b) * n + np.maximum(a, b))
                d += 1
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(out))
    return np.stack([codes // n, codes % n], axis=1)


def _unique_texts(rows):
    """Distinct normalised texts (first-seen order) and, per row, the index of its text."""
    index, uniq, row_to = {}, [], []
    for r in rows:
        key = normalise(r["text"])
        if key not in index:
            index[key] = len(uniq)
            uniq.append(key)
        row_to.append(index[key])
    return uniq, np.asarray(row_to, dtype=np.int64)


def _signatures(texts, cache=None):
    """MinHash signatures of normalised texts, reusing and filling `cache` (text -> signature) if given."""
    if cache is None:
        return _minhash(*_shingle_hashes(texts))
    missing = [t for t in dict.fromkeys(texts) if t not in cache]
    if missing:
        cache.update(zip(missing, _minhash(*_shingle_hashes(missing))))
    return np.stack([cache[t] for t in texts]) if texts else np.zeros((0, NUM_PERM), dtype=np.uint32)


def near_pairs(rows, threshold=NEAR_DUP_THRESHOLD, cache=None):
    """Verified near-duplicate edges between distinct normalised texts.

    Returns (uniq_texts, row_to_text, pairs, jaccard): `pairs` indexes `uniq_texts`; rows that share a
    normalised text are trivially near duplicates of each other (Jaccard 1) and are linked by
    `row_to_text`. Texts with no words take part in no pair. `cache` (a dict) keeps signatures
    between calls on overlapping rows, as `curate` does for its split and audits.
    """
    uniq, row_to = _unique_texts(rows)
    if len(uniq) < 2:
        return uniq, row_to, np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    sig = _signatures(uniq, cache)
    cand = _candidate_pairs(sig)
    # the share of agreeing hash functions estimates Jaccard (sd <= 0.045 at 128); only pairs within
    # ESTIMATE_MARGIN of the threshold (> 3 sd) get the exact, slower check
    est = np.concatenate([(sig[c[:, 0]] == sig[c[:, 1]]).mean(axis=1)
                          for c in np.array_split(cand, max(1, len(cand) // 100_000))]) if len(cand) else np.zeros(0)
    n_cand = len(cand)
    cand = cand[est >= threshold - ESTIMATE_MARGIN]
    if not len(cand):
        return uniq, row_to, cand, np.zeros(0)
    need = np.unique(cand)
    h, offsets = _shingle_hashes([uniq[t] for t in need])
    sets = {int(t): set(h[offsets[k]:offsets[k + 1]].tolist()) for k, t in enumerate(need)}
    jac = np.empty(len(cand))
    for k, (i, j) in enumerate(cand.tolist()):
        a, b = sets[i], sets[j]
        inter = len(a & b)
        jac[k] = inter / (len(a) + len(b) - inter) if a and b else 0.0
    keep = jac >= threshold
    log.debug("near duplicates: %d texts, %d LSH candidates, %d verified at Jaccard >= %.2f",
              len(uniq), n_cand, int(keep.sum()), threshold)
    return uniq, row_to, cand[keep], jac[keep]


class _UnionFind:
    def __init__(self, n):
        self.parent = list(range(n))

    def find(self, x):
        p = self.parent
        while p[x] != x:
            p[x] = p[p[x]]
            x = p[x]
        return x

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def components(n, edges):
    """Connected components (sorted lists, ordered by first member) of size >= 2 over `edges`."""
    uf = _UnionFind(n)
    for a, b in edges:
        uf.union(int(a), int(b))
    return _groups_by([uf.find(i) for i in range(n)])


def _row_edges(row_to, pairs):
    """Row-level edges: rows sharing a normalised text, plus text-level pairs mapped to rows."""
    first = {}
    edges = []
    for i, t in enumerate(row_to.tolist()):
        if t in first:
            edges.append((first[t], i))
        else:
            first[t] = i
    edges += [(first[a], first[b]) for a, b in pairs.tolist()]
    return edges


def find_near_duplicates(rows, threshold=NEAR_DUP_THRESHOLD, cache=None):
    """Groups of row indices linked by character-4-gram Jaccard >= threshold (connected components).

    Rows with equal normalised text belong to the same group (their Jaccard is 1), so every exact
    duplicate group is inside a near-duplicate group; `curate` removes exact duplicates first.
    """
    _, row_to, pairs, _ = near_pairs(rows, threshold, cache)
    return components(len(rows), _row_edges(row_to, pairs))


# --------------------------------------------------------------------------- cross-split audit
def _twins(train, other, key):
    index = {}
    for i, r in enumerate(train):
        index.setdefault(key(r["text"]), i)
    out = []
    for j, r in enumerate(other):
        i = index.get(key(r["text"]))
        if i is not None:
            out.append((j, i))
    return out


def _entry(train, other, j, i, **extra):
    return {"id": other[j]["id"], "text": other[j]["text"], "label": other[j]["label"],
            "train_id": train[i]["id"], "train_text": train[i]["text"], "train_label": train[i]["label"],
            **extra}


def leak_text(counts):
    """audit()'s counts in words: "none", or each kind found ("exact 2, near 3")."""
    found = {k: v for k, v in (counts or {}).items() if v}
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in found.items()) or "none"


def audit(train, heldout, threshold=NEAR_DUP_THRESHOLD, cache=None):
    """Leakage of `heldout` (or production) rows into `train`.

    Returns {"exact_ci": [...], "exact": [...], "near": [...], "conflicts": [...], "counts": {...}}; each
    list has one entry per held-out row with its first twin in train. counts["identical"]: byte-equal
    text (bitext: 0, while 16 are exact_ci: its case/whitespace variants straddle the split).
    exact_ci: equal after lower-case and whitespace collapse; exact: equal after `normalise`
    (punctuation and digits too); near: Jaccard >= threshold on character 4-grams, including the
    exact twins, so exact_ci <= exact <= near; conflicts: an exact twin whose train answer differs
    (the same text taught two answers: another label, or for reply rows another normalised reply).
    """
    exact_ci = [_entry(train, heldout, j, i) for j, i in _twins(train, heldout, normalise_ci)]
    exact_pairs = _twins(train, heldout, normalise)
    exact = [_entry(train, heldout, j, i) for j, i in exact_pairs]
    # conflicts: any train twin with another label (not only the first twin)
    labels_by_text = defaultdict(dict)
    for i, r in enumerate(train):
        labels_by_text[normalise(r["text"])].setdefault(answer_of(r), i)
    conflicts = []
    for j, r in enumerate(heldout):
        other = {lab: i for lab, i in labels_by_text.get(normalise(r["text"]), {}).items() if lab != answer_of(r)}
        if other:
            conflicts.append(_entry(train, heldout, j, min(other.values())))
    # near: best train neighbour per held-out row
    both = list(train) + list(heldout)
    n_train = len(train)
    _, row_to, pairs, jac = near_pairs(both, threshold, cache)
    text_rows = defaultdict(lambda: ([], []))            # text -> (train rows, heldout rows)
    for k, t in enumerate(row_to.tolist()):
        text_rows[t][0 if k < n_train else 1].append(k)
    best = {}                                            # heldout index -> (jaccard, train index)
    for t, (tr, ho) in text_rows.items():
        if tr:
            for k in ho:
                best[k - n_train] = (1.0, tr[0])
    for (a, b), s in zip(pairs.tolist(), jac.tolist()):
        for x, y in ((a, b), (b, a)):
            tr, ho = text_rows[x][0], text_rows[y][1]
            if tr:
                for k in ho:
                    j = k - n_train
                    if s > best.get(j, (-1.0, 0))[0]:
                        best[j] = (s, tr[0])
    near = [_entry(train, heldout, j, i, jaccard=round(s, 3)) for j, (s, i) in sorted(best.items())]
    identical = _twins(train, heldout, lambda t: t)
    counts = {"identical": len(identical), "exact_ci": len(exact_ci), "exact": len(exact), "near": len(near),
              "conflicts": len(conflicts), "near_label_differs": sum(e["label"] != e["train_label"] for e in near)}
    return {"exact_ci": exact_ci, "exact": exact, "near": near, "conflicts": conflicts, "counts": counts}
