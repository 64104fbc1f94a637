"""The rows: the raw export with its planted defects, production samples, the pretraining corpus."""
from __future__ import annotations

import random
import re
from datetime import datetime, timedelta

from sampledata.fragments import (
    CHANNELS,
    HARD,
    INTENTS,
    LABELS,
    LOG_LINES,
    N_CLEAN,
    N_PROD,
    PROD_EXTRA,
    PROD_SKEW,
    PROD_SLOTS,
    RAW_SKEW,
    SEED,
    SLOTS,
    THREAD_TURNS,
)
from sampledata.text import (
    compose,
    fill,
    jaccard,
    normalise,
    paraphrase,
    quota,
    renormalise,
    ticket_facts,
    too_close,
    typo,
    words,
)


# --------------------------------------------------------------------------- raw export
def make_raw(rng: random.Random):
    rows = []  # dicts: text, label, channel, kind, tags
    pool: list[set] = []
    norms: set[str] = set()

    def new_unique(label, channel, info, slots=SLOTS, long=False, tries=400):
        for _ in range(tries):
            text, kind = compose(label, rng, channel, slots, long=long, info=info)
            ws = words(text)
            if normalise(text) not in norms and not too_close(ws, pool):
                pool.append(ws)
                norms.add(normalise(text))
                return text, kind
        raise RuntimeError(f"could not generate a unique {label} ticket")

    n_pii = 98
    for label in quota(N_CLEAN + n_pii, RAW_SKEW, rng):
        ch = rng.choice(CHANNELS)
        info = {}
        text, kind = new_unique(label, ch, info, long=rng.random() < 0.12)
        rows.append(dict(text=text, label=label, channel=ch, kind=kind, tags=set(), src=None, **info))
    # PII on the last 98 base rows: 60 e-mail, 40 phone (8 overlap), 10 card (4 overlap)
    first, last = ["alex", "jordan", "sam", "maria", "li", "noah", "emma", "raj", "zoe", "karl"], \
                  ["smith", "garcia", "nguyen", "muller", "okafor", "rossi", "kowalski", "tanaka", "brown", "silva"]
    phones = ["+1 415-555-01{d}{d}", "(020) 7946 0{d}{d}{d}", "555.123.45{d}{d}", "+1 (212) 555-01{d}{d}",
              "+44 20 7946 0{d}{d}{d}", "555-01{d}{d}", "+1 650 555 01{d}{d}", "0113 496 0{d}{d}{d}"]
    cards = ["4111 1111 1111 1111", "5555 5555 5555 4444", "4242 4242 4242 4242", "4000-0566-5566-5556",
             "5105 1051 0510 5100", "6011 1111 1111 1117", "4012 8888 8888 1881", "2223 0031 2200 3222"]
    email_tpl = ["You can reach me at {e}.", "My email is {e} in case the form drops it.",
                 "Please reply to {e}, not the old one.", "Registered address: {e}.", "cc {e}", "Contact: {e}",
                 "I also tried from {e}."]
    phone_tpl = ["Call me on {p}.", "My number is {p} if easier.", "Phone: {p}", "You can text me at {p}.",
                 "Best number to reach me is {p} after 5pm."]
    card_tpl = ["I paid with card {c}, exp 12/27.", "The card used was {c}.", "Charged to {c} I think.",
                "Card number {c} if you need it to find the payment."]
    pii_rows = rows[N_CLEAN:]
    for j, row in enumerate(pii_rows):
        for _ in range(100):  # the added sentence must not make two PII rows look alike
            add, tags, pii = [], set(), {}
            if j < 60:
                e = (f"{rng.choice(first)}{rng.choice(['.', '_', ''])}{rng.choice(last)}"
                     f"{rng.choice(['', str(rng.randrange(10, 99))])}"
                     f"@{rng.choice(['example.com', 'example.org', 'mail.example.com'])}")
                add.append(rng.choice(email_tpl).format(e=e))
                tags.add("pii_email")
                pii["email"] = e
            if 52 <= j < 92:
                p = re.sub(r"\{d\}", lambda m: str(rng.randrange(10)), rng.choice(phones))
                add.append(rng.choice(phone_tpl).format(p=p))
                tags.add("pii_phone")
                pii["phone"] = p
            if j >= 88:
                tpl = rng.choice(card_tpl)  # drawn before the number, as always: the same texts
                pii["card"] = rng.choice(cards)
                add.append(tpl.format(c=pii["card"]))
                tags.add("pii_card")
            rng.shuffle(add)
            t = row["text"] + " " + " ".join(add) if rng.random() < 0.7 else " ".join(add) + " " + row["text"]
            if not too_close(words(t), [p for k, p in enumerate(pool) if k != N_CLEAN + j]):
                break
        else:
            raise RuntimeError("PII row too close to another row")
        row["text"], row["tags"], row["pii"] = t, tags, pii
        pool[N_CLEAN + j] = words(t)
    clean = rows[:N_CLEAN]
    # sources: every planted duplicate points at a distinct clean row
    order = list(range(N_CLEAN))
    rng.shuffle(order)
    conflict_src = [i for i in order if clean[i]["kind"] != "plain"][:25]
    rest = [i for i in order if i not in set(conflict_src)]
    long_enough = [i for i in rest if len(words(clean[i]["text"])) >= 14]
    near_src = long_enough[:60]
    rest = [i for i in rest if i not in set(near_src)]
    exact_src, norm_src = rest[:40], rest[40:70]
    plants = []
    for i in exact_src:
        plants.append(dict(clean[i], tags={"exact_duplicates"}, src=i, kind="dup"))
    for i in norm_src:
        plants.append(dict(clean[i], text=renormalise(clean[i]["text"], rng), tags={"normalised_duplicates"}, src=i,
                           kind="dup"))
    confuse = {"billing": ["refund", "cancellation"], "account": ["security", "bug"], "bug": ["feature", "account"],
               "shipping": ["refund", "cancellation"], "refund": ["billing", "shipping"], "feature": ["bug", "other"],
               "cancellation": ["billing", "refund"], "security": ["account", "bug"], "other": ["feature", "billing"]}
    for k, i in enumerate(conflict_src):
        t = clean[i]["text"] if k % 2 == 0 else renormalise(clean[i]["text"], rng)
        plants.append(dict(clean[i], text=t, label=rng.choice(confuse[clean[i]["label"]]), tags={"conflicts"}, src=i,
                           kind="dup"))
    others = pool  # clean + final PII word sets
    for i in near_src:
        src_ws = words(clean[i]["text"])
        for _ in range(200):
            t = paraphrase(clean[i]["text"], rng)
            ws = words(t)
            if normalise(t) != normalise(clean[i]["text"]) and jaccard(ws, src_ws) >= 0.7 and \
                    not any(jaccard(ws, p) >= 0.5 for j, p in enumerate(others) if j != i):
                break
        else:
            raise RuntimeError("paraphrase failed")
        plants.append(dict(clean[i], text=t, tags={"near_duplicates"}, src=i, kind="dup"))
    trivial = ["", "   ", "asdf", "?", "help", "test", "hello??", "x", "n/a", "pls"]
    for t in trivial:
        plants.append(dict(text=t, label="other", channel=rng.choice(["web", "chat"]), kind="trivial",
                           tags={"empty_or_trivial"}, src=None, facts=[], name=None))
    for k in range(8):
        plants.append(dict(over_long(k, rng), channel="email", kind="long", tags={"over_long"}, src=None))
    return clean, pii_rows, plants


def over_long(k: int, rng: random.Random) -> dict:
    fills = []  # (slot, value, position): what the ticket states, for its reply
    if k % 2 == 0:
        intro = fill(rng.choice(["Sync keeps failing on {device}, full log below.",
                                 "The export job dies every night. Log:",
                                 "Here is the console output you asked for, the app froze again.",
                                 "Crash again after the update, pasting everything I have."]), rng, facts=fills)
        lines, target = [intro], rng.randint(420, 780)
        while len(" ".join(lines).split()) < target:
            t = f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}"
            lines.append(rng.choice(LOG_LINES).format(t=t, k=rng.randrange(1, 400), m=rng.randrange(2, 9000)))
        return dict(text="\n".join(lines), label="bug", **ticket_facts([], [], fills))
    label = rng.choice(["refund", "billing", "shipping", "account"])
    head = fill(rng.choice(HARD[label] + INTENTS[label]), rng, facts=fills)
    parts, target = [head], rng.randint(420, 780)
    while len(" ".join(parts).split()) < target:
        who = rng.choice(SLOTS["name"])
        when = (f"{rng.choice(['Mon', 'Tue', 'Wed', 'Thu', 'Fri'])}, "
                f"{rng.randint(1, 28)} {rng.choice(['Mar', 'Apr', 'May', 'Jun'])}")
        parts.append(f"\n\n> On {when}, {who} from Support wrote:\n> " + " ".join(rng.sample(THREAD_TURNS, 3)))
        parts.append("\n\n" + fill(rng.choice(INTENTS[label]), rng, facts=fills) + " "
                     + " ".join(rng.sample(THREAD_TURNS, 2)))
    return dict(text="".join(parts), label=label, **ticket_facts([], [], fills))


# --------------------------------------------------------------------------- production
def make_prod(rng: random.Random, raw_texts: list[str]):
    raw_pool = [words(t) for t in raw_texts]
    out, pool = [], []
    n_typo = 0
    labels = quota(N_PROD, PROD_SKEW, rng)
    while len(out) < N_PROD:
        label = labels[len(out)]
        ch = rng.choice(CHANNELS)
        info = {}
        text, kind = compose(label, rng, ch, PROD_SLOTS, extra=PROD_EXTRA, long=True, info=info)
        n_sent = len(re.findall(r"[.!?](\s|$)", text))
        if n_sent < 3 or n_sent > 7:
            continue
        if rng.random() < 0.42:
            text, kind = typo(text, rng), kind + "+typo"
        ws = words(text)
        if too_close(ws, raw_pool) or too_close(ws, pool):
            continue
        pool.append(ws)
        out.append(dict(text=text, label=label, channel=ch, kind=kind, **info))
        n_typo += kind.endswith("+typo")
    return out, n_typo


# --------------------------------------------------------------------------- ids and dates; pretraining text
def stamp(rows: list[dict], rng: random.Random, start_id: int, year_from: int = 2025) -> None:
    t0 = datetime(year_from, 1, 1)
    span = (datetime(2026, 12, 31) - t0).total_seconds()
    times = sorted(t0 + timedelta(seconds=rng.randrange(int(span))) for _ in rows)
    idx = list(range(len(rows)))
    rng.shuffle(idx)  # ids ascend with time, as in a real export; row order is then shuffled
    for k, i in enumerate(idx):
        rows[i]["ticket_id"] = f"T-{start_id + k:06d}"
        rows[i]["created_at"] = times[k].isoformat(timespec="seconds")


def make_pretrain(n: int, taken: list[str]) -> list[str]:
    """Unlabelled support-domain text for the embedded base model's short language-model
    pretraining: a real base model has read text like this before anyone fine-tunes it. Its own
    seed (the exports above do not change), no labels, and no text within Jaccard 0.5 of any
    ticket in the export or the production samples, so nothing evaluated was pretrained on."""
    rng = random.Random(SEED + 7)
    pool = [words(t) for t in taken]
    out = []
    while len(out) < n:
        text, _ = compose(rng.choice(LABELS), rng, rng.choice(CHANNELS), long=rng.random() < 0.2)
        ws = words(text)
        if not too_close(ws, pool):
            out.append(text)
    return out


def make_hosted_sample(n: int, taken: list[str]) -> list[dict]:
    """What the hosted model's provider trained it on, in miniature: labelled tickets with a reply in the house
    format, for the embedded stand-in of the hosted model (ftplay/hosted_standin.py). A real hosted model is
    trained on far more than a team's export and never on it: here its own seed, the labels drawn evenly (not the
    export's skew), and no text within Jaccard 0.5 of any ticket in the export or the production samples, so
    nothing the playbook evaluates was in its training."""
    rng = random.Random(SEED + 23)
    pool = [words(t) for t in taken]
    out = []
    while len(out) < n:
        label, info = rng.choice(LABELS), {}
        text, _ = compose(label, rng, rng.choice(CHANNELS), long=rng.random() < 0.15, info=info)
        if not too_close(words(text), pool):
            out.append({"text": text, "label": label, "facts": [f[:2] for f in info.get("facts", [])],
                        "name": info.get("name")})
    return out
