"""Composing one ticket's text from the fragments, and varying it (typos, paraphrases, re-normalisation)."""
from __future__ import annotations

import random
import re

from sampledata.fragments import (
    AMBIGUOUS,
    CAUSAL,
    CONFUSE,
    CONTEXT,
    DELETABLE,
    DETAILS,
    FILLERS,
    HARD,
    INTENTS,
    LABELS,
    NEG,
    NP,
    OPENERS,
    P_AMB,
    P_HARD,
    PHONE_OPENERS,
    REQ,
    SIGNOFFS,
    SIT,
    SLOTS,
    SYN,
    TXT,
    URGENCY,
    WANT,
)


# --------------------------------------------------------------------------- a ticket's core
def fill(t: str, rng: random.Random, slots=SLOTS, facts: list | None = None) -> str:
    """`t` with every {slot} filled; `facts`, when given, gets (slot, value, position in `t`) of each fill, in
    order (what the reply generator restates; recording draws nothing, so the texts stay the same)."""
    def one(m):
        value = rng.choice(slots[m.group(1)])
        if facts is not None:
            facts.append((m.group(1), value, m.start()))
        return value
    return re.sub(r"\{(\w+?)2?\}", one, t)


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def stop(s: str) -> str:
    return s if s.endswith(("?", ".", "!")) else s + "."


def hard_core(label: str, sec: str, rng: random.Random) -> str:
    form = rng.random()
    if label == "other" or form < 0.2:
        return (cap(rng.choice(SIT[sec]))
                + rng.choice([", but that's sorted now. ", " but that got fixed, thanks. ",
                              ", anyway that part is fine now. "])
                + cap(stop(rng.choice(REQ[label]))))
    if form < 0.4 and (sec, label) in CAUSAL:
        return (cap(rng.choice(SIT[sec])) + rng.choice([", so ", ". So ", " and because of that "])
                + stop(rng.choice(REQ[label])))
    if form < 0.85:
        neg, want = rng.choice(NEG).format(np=rng.choice(NP[sec])), rng.choice(WANT).format(np=rng.choice(NP[label]))
        return cap(neg) + ", " + stop(want) if rng.random() < 0.6 else cap(want) + ", " + stop(neg)
    return cap(stop(rng.choice(REQ[label]))) + " " + cap(rng.choice(SIT[sec])) + rng.choice(
        [" too, but that's a separate thing.", " as well, but that can wait.", " by the way, though that's minor."])


def plain_core(label: str, rng: random.Random, extra=None) -> str:
    if rng.random() < 0.3:
        return cap(rng.choice(SIT[label])) + rng.choice([". ", ", ", " - "]) + stop(rng.choice(REQ[label] + [
            w.format(np=rng.choice(NP[label])) for w in WANT]))
    return rng.choice(INTENTS[label] + (extra[label] if extra else []))


# --------------------------------------------------------------------------- similarity, composition, variation
def words(t: str) -> set[str]:
    return set(re.sub(r"[^\w\s]", "", t.lower()).split())


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def normalise(t: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", "", re.sub(r"\d+", "0", t.lower()))).strip()


def quota(n: int, skew: list[int], rng: random.Random) -> list[str]:
    """Exactly proportional labels (largest remainder), shuffled."""
    raw = [n * w / sum(skew) for w in skew]
    cnt = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: cnt[i] - raw[i])[: n - sum(cnt)]:
        cnt[i] += 1
    out = [label for label, c in zip(LABELS, cnt) for _ in range(c)]
    rng.shuffle(out)
    return out


def too_close(ws: set, pool: list[set], thr: float = 0.5) -> bool:
    return any(jaccard(ws, p) >= thr for p in pool)


def compose(label: str, rng: random.Random, channel: str, slots=SLOTS, extra=None, long=False,
            info: dict | None = None) -> tuple[str, str]:
    """Return (text, kind) with kind in {'plain', 'hard', 'ambiguous'}. `info`, when given, gets what the
    ticket states: "facts" [(slot, value)] and "name" (the customer's, from the opener or sign-off, or None)."""
    r = rng.random()
    amb = [t for t, c in AMBIGUOUS if label in c]
    if r < P_AMB and amb:
        core, kind = [rng.choice(amb)], "ambiguous"
    elif r < P_HARD:
        core, kind = [None], "hard"
    else:
        core, kind = [plain_core(label, rng, extra)], "plain"
    other = rng.choice([name for name in LABELS if name != label])
    sec = rng.choice(CONFUSE[label]) if kind == "hard" else label
    parts, own = [], []  # own: indices of the parts where a {name} is the writer's own (opener, sign-off)
    if channel == "phone" and rng.random() < 0.5:
        parts.append(rng.choice(PHONE_OPENERS))
    elif rng.random() < 0.5:
        parts.append(rng.choice(OPENERS))
        own.append(0)
    if rng.random() < (0.7 if long else 0.35):
        parts.append(rng.choice(CONTEXT[other]))
    if long and rng.random() < 0.5:
        parts.append(rng.choice(CONTEXT[rng.choice(LABELS)]))
    if core == [None]:
        core = [rng.choice(HARD[label]) if rng.random() < 0.2 else hard_core(label, sec, rng)]
    parts += core
    if kind == "plain" and extra and rng.random() < 0.5:
        parts.append(rng.choice(extra[label]))
    if rng.random() < (0.8 if long else 0.35):
        parts.append(rng.choice(DETAILS[rng.choice([label, sec])]))
    if rng.random() < (0.4 if long else 0.15):
        parts.append(rng.choice(URGENCY))
    if rng.random() < (0.6 if long else 0.35):
        own.append(len(parts))
        parts.append(rng.choice(SIGNOFFS))
    fills: list = []
    text = fill(" ".join(parts), rng, slots, fills)
    if info is not None:
        info.update(ticket_facts(parts, own, fills))
    if len(text) > 1 and rng.random() < 0.05:  # hurried lower-case writers
        text = text.lower()
    return text, kind


# what a reply's Details line restates: amounts, dates, order and invoice numbers, product and plan names, and the
# feature, device, error and carrier a ticket names
FACT_SLOTS = ("amount", "date", "order", "ref", "product", "feature", "device", "error", "carrier")


def ticket_facts(parts: list[str], own: list[int], fills: list) -> dict:
    """{"facts": [(slot, value)] of FACT_SLOTS in order of appearance, each value once; "name": the first
    {name} filled into an opener or sign-off (a name elsewhere is someone else's, e.g. 'your agent {name}')}."""
    starts, at = [], 0
    for p in parts:
        starts.append(at)
        at += len(p) + 1
    spans = [(starts[i], starts[i] + len(parts[i])) for i in own]
    facts, seen = [], set()
    for slot, value, pos in fills:
        if slot in FACT_SLOTS and value not in seen:
            seen.add(value)
            facts.append((slot, value))
    name = next((v for s, v, pos in fills if s == "name" and any(a <= pos < b for a, b in spans)), None)
    return {"facts": facts, "name": name}


def typo(text: str, rng: random.Random) -> str:
    out = []
    for w in text.split(" "):
        core = w.lower().strip(".,!?")
        if core in TXT and rng.random() < 0.6:
            w = w.lower().replace(core, TXT[core])
        elif len(w) > 3 and w.isalpha() and rng.random() < 0.18:
            i = rng.randrange(1, len(w) - 1)
            op = rng.choice(["swap", "drop", "double"])
            w = (w[:i] + w[i + 1] + w[i] + w[i + 2:] if op == "swap" else
                 w[:i] + w[i + 1:] if op == "drop" else w[:i] + w[i] + w[i:])
        out.append(w)
    text = " ".join(out)
    if rng.random() < 0.6:
        text = text.lower()
    if rng.random() < 0.3:
        text = text.replace(".", "").replace(",", "")
    return text


def paraphrase(text: str, rng: random.Random) -> str:
    toks = text.split(" ")
    for _ in range(rng.randint(1, 2)):
        op = rng.choice(["syn", "insert", "delete", "signoff"])
        if op == "syn":
            idx = [i for i, t in enumerate(toks) if t.lower().strip(".,!?") in SYN]
            if idx:
                i = rng.choice(idx)
                core = toks[i].lower().strip(".,!?")
                toks[i] = toks[i].lower().replace(core, SYN[core])
                continue
        dels = [i for i, t in enumerate(toks) if t.lower().strip(".,!?") in DELETABLE]
        if op == "delete" and dels:
            del toks[rng.choice(dels)]
        elif op == "signoff":
            toks.append(rng.choice(["Thanks!", "Cheers.", "Thank you.", "Regards."]))
        else:
            subj = [i + 1 for i, t in enumerate(toks[:-1]) if t.lower() in ("i", "i'm", "we", "we're", "it's")]
            if subj:
                toks.insert(rng.choice(subj), rng.choice(FILLERS))
            else:
                toks.append(rng.choice(["Thanks!", "Cheers.", "Thank you.", "Regards."]))
    return " ".join(toks)


def renormalise(text: str, rng: random.Random) -> str:
    """Vary case/whitespace/punctuation/digits only, so normalise() stays equal."""
    t = re.sub(r"\d", lambda m: str(rng.randrange(10)), text) if re.search(r"\d", text) else text
    ops = [lambda s: s.lower(), lambda s: s.upper(), lambda s: s.rstrip(".!?") + "!!", lambda s: "  " + s + " ",
           lambda s: s.replace(", ", ",  "), lambda s: s.rstrip(".") if s.endswith(".") else s + ".",
           lambda s: s.replace(" ", "  ", 2)]
    for op in rng.sample(ops, 2):
        t = op(t)
    return t if t != text else text + "?"
