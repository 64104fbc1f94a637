"""Asserts that the generated data holds what data/README.md promises; an optional TF-IDF sanity check."""
from __future__ import annotations

import re

from sampledata.fragments import LABELS, PROD_SLOTS
from sampledata.text import jaccard, normalise, too_close, words

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE_CAND = re.compile(r"(?:\+\d{1,3}[\s-]?)?(?:\(\d{2,4}\)\s?)?\d{2,4}(?:[\s.-]\d{2,4}){1,3}")
CARD_RE = re.compile(r"\b\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{4}\b")


def has_phone(t: str) -> bool:  # 7-13 digits in a phone-shaped run (cards have 16, log times fewer)
    return any(7 <= len(re.sub(r"\D", "", m)) <= 13 for m in PHONE_CAND.findall(CARD_RE.sub(" ", t)))


def verify(clean, pii_rows, plants, prod, n_typo, all_rows, defects):
    byid = {r["ticket_id"]: r for r in all_rows}
    assert len(all_rows) >= 1300 and len(byid) == len(all_rows), "row count / unique ids"
    assert set(r["label"] for r in all_rows) == set(LABELS)
    cws = [words(r["text"]) for r in clean]
    for i in range(len(cws)):  # clean rows: no accidental near-duplicates
        for j in range(i):
            assert jaccard(cws[i], cws[j]) < 0.5, (clean[i]["text"], clean[j]["text"])
    base_norms = [normalise(r["text"]) for r in clean + pii_rows]
    assert len(set(base_norms)) == len(base_norms), "normalised collision among base rows"
    for a, b in defects["exact_duplicates"]:
        assert byid[a]["text"] == byid[b]["text"] and byid[a]["label"] == byid[b]["label"]
    for a, b in defects["normalised_duplicates"]:
        assert byid[a]["text"] != byid[b]["text"] and normalise(byid[a]["text"]) == normalise(byid[b]["text"])
        assert byid[a]["label"] == byid[b]["label"]
    for a, b in defects["near_duplicates"]:
        assert normalise(byid[a]["text"]) != normalise(byid[b]["text"]) and byid[a]["label"] == byid[b]["label"]
        assert jaccard(words(byid[a]["text"]), words(byid[b]["text"])) >= 0.7
        assert not any(jaccard(words(byid[a]["text"]), words(c["text"])) >= 0.5 for c in clean if c["ticket_id"] != b)
    for a, b in defects["conflicts"]:
        assert normalise(byid[a]["text"]) == normalise(byid[b]["text"]) and byid[a]["label"] != byid[b]["label"]
    # globally: every pair with Jaccard >= 0.5 is a planted pair (or two plants of the same source)
    group = {a: b for k in ("exact_duplicates", "normalised_duplicates", "near_duplicates", "conflicts")
             for a, b in defects[k]}
    skip = set(defects["empty_or_trivial"]) | set(defects["over_long"])
    rows = [(r["ticket_id"], words(r["text"])) for r in all_rows if r["ticket_id"] not in skip]
    for i, (a, wa) in enumerate(rows):
        for b, wb in rows[:i]:
            if jaccard(wa, wb) >= 0.5:
                assert group.get(a, a) == group.get(b, b), (byid[a]["text"], byid[b]["text"])
    for i in defects["over_long"]:
        assert 400 <= len(byid[i]["text"].split()) <= 900
    for i in defects["empty_or_trivial"]:
        assert len(byid[i]["text"].split()) <= 1
    for key, hit in [("pii_email", EMAIL_RE.search), ("pii_phone", has_phone), ("pii_card", CARD_RE.search)]:
        hits = {r["ticket_id"] for r in all_rows if hit(r["text"])}
        assert hits == set(defects[key]), (key, sorted(hits ^ set(defects[key]))[:5])
    counts = {k: len(v) for k, v in defects.items()}
    expect = dict(exact_duplicates=40, normalised_duplicates=30, near_duplicates=60, conflicts=25, empty_or_trivial=10,
                  over_long=8, pii_email=60, pii_phone=40, pii_card=10)
    for k, v in expect.items():
        assert counts[k] == v, (k, counts[k])
    assert len(defects["clean"]) == len(clean)
    hard = sum(r["kind"] == "hard" for r in clean) / len(clean)
    amb = sum(r["kind"] == "ambiguous" for r in clean) / len(clean)
    assert 0.24 <= hard <= 0.32 and 0.04 <= amb <= 0.10, (hard, amb)
    # production: shifted, never close to raw, new product names only there
    assert len(prod) >= 180 and set(r["label"] for r in prod) == set(LABELS)
    assert 0.33 <= n_typo / len(prod) <= 0.5, n_typo
    raw_ws = [words(r["text"]) for r in all_rows]
    for p in prod:
        assert not too_close(words(p["text"]), raw_ws), p["text"]
    raw_blob = " ".join(r["text"] for r in all_rows).lower()
    for name in PROD_SLOTS["product"]:
        assert name.lower().removeprefix("the ") not in raw_blob, name
    return hard, amb


def tfidf_check(clean, prod):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline

    X, y = [r["text"] for r in clean], [r["label"] for r in clean]
    xp, yp = [r["text"] for r in prod], [r["label"] for r in prod]
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    for name, kw, lr in [("default", {}, {}), ("sublinear, C=10", {"sublinear_tf": True}, {"C": 10})]:
        def mk():
            return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), **kw), LogisticRegression(max_iter=2000, **lr))

        p = mk().fit(xtr, ytr).predict(xte)
        q = mk().fit(X, y).predict(xp)
        print(f"[{name}] raw clean 80/20: acc={accuracy_score(yte, p):.3f} "
              f"macroF1={f1_score(yte, p, average='macro'):.3f}"
              f" | raw clean -> production: acc={accuracy_score(yp, q):.3f} "
              f"macroF1={f1_score(yp, q, average='macro'):.3f}")


def verify_replies(all_rows, prod, defects, reply_defects):
    """The reply files hold what data/README.md promises: clean replies parse in the house format with exactly
    the fields the ticket gives, duplicates share their source's reply, conflicts do not, and every planted
    reply defect is what its key says (and the only one of its kind)."""
    from ftplay import formats

    from sampledata.replies import N_LEAKED, N_OFF_FORMAT, N_OVER_LONG, N_RESTATED, N_TRIVIAL, fields

    byid = {r["ticket_id"]: r for r in all_rows}
    assert all(r["reply"].strip() for r in all_rows + prod), "every row has a reply (the loader refuses an empty one)"
    for r in [byid[i] for i in reply_defects["clean"]] + prod:
        ok, got = formats.parse(formats.HOUSE, r["reply"])
        assert ok and got == fields(r["label"], r["facts"], r["name"]), (r["ticket_id"], r["reply"])
        if not r["kind"].endswith("+typo"):  # a typo may mangle a product name; the reply writes it properly
            for v in [v for _, v in r["facts"]] + ([r["name"]] if r["name"] else []):
                assert v.lower() in r["text"].lower(), (r["ticket_id"], v)
        assert len(r["reply"].split()) < 120, r["ticket_id"]
    for k in ("exact_duplicates", "normalised_duplicates", "near_duplicates", "conflicts"):
        assert reply_defects[k] == defects[k], k
    for a, b in defects["exact_duplicates"] + defects["normalised_duplicates"] + defects["near_duplicates"]:
        assert byid[a]["reply"] == byid[b]["reply"]
    for a, b in defects["conflicts"]:
        assert normalise(byid[a]["reply"]) != normalise(byid[b]["reply"])
    for i in reply_defects["off_format"]:
        assert not formats.valid(formats.HOUSE, byid[i]["reply"]) and len(byid[i]["reply"].split()) >= 5, i
    for i in reply_defects["trivial_replies"]:
        assert len(re.findall(r"[^\W_]+", byid[i]["reply"])) <= 2 and len(byid[i]["reply"]) <= 8, i
    long = {r["ticket_id"] for r in all_rows if len(r["reply"].split()) >= 400}
    assert long == set(reply_defects["over_long_replies"]), sorted(long)
    assert all(formats.valid(formats.HOUSE, byid[i]["reply"]) for i in long)

    def pii(t):
        return EMAIL_RE.findall(t) and True or has_phone(t) or bool(CARD_RE.search(t))

    hits = {r["ticket_id"] for r in all_rows + prod if pii(r["reply"])}
    assert hits == set(reply_defects["pii_restated"]) | set(reply_defects["pii_leaked"]), sorted(hits)
    for i in reply_defects["pii_restated"]:
        r = byid[i]
        assert all(v in r["text"] and v in r["reply"] for v in r["pii"].values()) and r["pii"], i
    for i in reply_defects["pii_leaked"]:
        assert not pii(byid[i]["text"]), i
    counts = {k: len(v) for k, v in reply_defects.items()}
    expect = dict(off_format=N_OFF_FORMAT, trivial_replies=N_TRIVIAL, over_long_replies=N_OVER_LONG,
                  pii_leaked=N_LEAKED, pii_restated=N_RESTATED)
    for k, v in expect.items():
        assert counts[k] == v, (k, counts[k])
    defect_ids = {i for k in expect for i in reply_defects[k]}
    assert set(reply_defects["clean"]) == set(defects["clean"]) - defect_ids
