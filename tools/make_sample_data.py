#!/usr/bin/env python3
"""Regenerate the committed sample data under data/ (stdlib only, deterministic).

    python3 tools/make_sample_data.py            # write data/ files, run the asserts
    python3 tools/make_sample_data.py --check    # also TF-IDF + LogisticRegression sanity check (needs sklearn)
    python3 tools/make_sample_data.py --out /tmp/d && diff -r /tmp/d data   # byte-identical: nothing else changed

Every text is synthetic, assembled from the hand-written fragments in sampledata/fragments.py
(sampledata/text.py composes one ticket, sampledata/generate.py the rows, sampledata/replies.py each
ticket's house-format reply for the reply task, sampledata/checks.py asserts what data/README.md
promises). PII is fake: example.com / example.org addresses, 555 / Ofcom drama numbers, public test
card numbers. Besides the standard library it imports ftplay.formats and ftplay.prompts (stdlib only
themselves), so the reply format and its system prompt are defined once.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
sys.path.insert(0, str(ROOT))  # ftplay.formats and ftplay.prompts (stdlib only): the reply format is defined once

from ftplay import formats, prompts  # noqa: E402

from sampledata.checks import tfidf_check, verify, verify_replies  # noqa: E402
from sampledata.fragments import CONFUSE, INSTRUCTION, LABELS, SEED, SYSTEM  # noqa: E402
from sampledata.generate import make_hosted_sample, make_pretrain, make_prod, make_raw, stamp  # noqa: E402
from sampledata.replies import make_replies, reply  # noqa: E402

COLUMNS = ["ticket_id", "created_at", "channel", "text", "label"]
HOSTED_ROWS = 2000   # the hosted stand-in's training sample: 2,000 gave it 0.76 macro-F1 on the export's rows
# Wrong labels planted in the triage export: 3.3% of its rows, the average share of test-label errors Northcutt et
# al. (2021) found in ten benchmarks. Half are a label an annotator confuses with the right one (CONFUSE), half any
# other label. Only in tickets_raw.csv: the reply file, the checks and every other file keep the true label.
N_MISLABELLED = 45


def plant_mislabelled(all_rows, clean, plants, first_ids, n=N_MISLABELLED):
    """{ticket_id: (true label, given label)} for `n` plain clean rows (their label is not in doubt), none the
    source of another plant or one of the example files' rows; drawn with their own seed, so every other
    file keeps its bytes."""
    rng = random.Random(SEED + 29)
    sources = {clean[p["src"]]["ticket_id"] for p in plants if p["src"] is not None}
    pool = sorted(r["ticket_id"] for r in clean
                  if r["kind"] == "plain" and r["ticket_id"] not in sources and r["ticket_id"] not in first_ids)
    label = {r["ticket_id"]: r["label"] for r in all_rows}
    out = {}
    for k, tid in enumerate(rng.sample(pool, n)):
        true = label[tid]
        wrong = rng.choice(CONFUSE[true] if k % 2 == 0 and CONFUSE[true] else [x for x in LABELS if x != true])
        out[tid] = (true, wrong)
    return out


def write_csv(path: Path, rows: list[dict], columns=COLUMNS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([r[c] for c in columns])


def write_json(path: Path, defects: dict) -> None:
    path.write_text("{\n" + ",\n".join(f' "{k}": {json.dumps(v)}' for k, v in defects.items()) + "\n}\n",
                    encoding="utf-8")


def write_jsonl(path: Path, records: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def main(check: bool = False, out: Path = DATA) -> None:
    rng = random.Random(SEED)
    clean, pii_rows, plants = make_raw(rng)
    all_rows = clean + pii_rows + plants
    stamp(all_rows, rng, start_id=100)
    rng.shuffle(all_rows)

    def ids(rows):
        return sorted(r["ticket_id"] for r in rows)

    def pair(tag):
        return sorted([p["ticket_id"], clean[p["src"]]["ticket_id"]] for p in plants if tag in p["tags"])

    def tagged(tag):
        return sorted(r["ticket_id"] for r in pii_rows + plants if tag in r["tags"])

    defects = {"exact_duplicates": pair("exact_duplicates"), "normalised_duplicates": pair("normalised_duplicates"),
               "near_duplicates": pair("near_duplicates"), "conflicts": pair("conflicts"),
               "empty_or_trivial": tagged("empty_or_trivial"), "over_long": tagged("over_long"),
               "pii_email": tagged("pii_email"), "pii_phone": tagged("pii_phone"), "pii_card": tagged("pii_card"),
               "clean": ids(clean)}
    first_ids = [r["ticket_id"] for r in all_rows if r["ticket_id"] in set(defects["clean"])][:20]
    wrong = plant_mislabelled(all_rows, clean, plants, set(first_ids))
    # among the "clean" rows (no defect in the text): [id, true label, label given in tickets_raw.csv]
    defects["mislabelled"] = sorted([t, true, given] for t, (true, given) in wrong.items())
    write_csv(out / "tickets_raw.csv", [{**r, "label": wrong[r["ticket_id"]][1]} if r["ticket_id"] in wrong else r
                                        for r in all_rows])
    write_json(out / "planted_defects.json", defects)

    prod, n_typo = make_prod(rng, [r["text"] for r in all_rows])
    stamp(prod, rng, start_id=500000, year_from=2026)
    write_csv(out / "production_samples.csv", prod)

    pre = make_pretrain(4000, [r["text"] for r in all_rows + prod])
    (out / "pretrain_corpus.txt").write_text("\n".join(t.replace("\n", " ") for t in pre) + "\n", encoding="utf-8")

    clean_ids = set(defects["clean"])
    first = [r for r in all_rows if r["ticket_id"] in clean_ids][:20]
    ex = out / "examples"
    ex.mkdir(parents=True, exist_ok=True)
    write_jsonl(ex / "tickets.instruction.jsonl",
                [{"instruction": INSTRUCTION, "input": r["text"], "output": r["label"]} for r in first])
    write_jsonl(ex / "tickets.chat.jsonl", [{"messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": r["text"]},
        {"role": "assistant", "content": r["label"]}]} for r in first])
    hard, amb = verify(clean, pii_rows, plants, prod, n_typo, all_rows, defects)

    # the reply task: the same rows with a reference reply in the house format (ftplay/formats.py)
    reply_defects = make_replies(clean, pii_rows, plants, prod)
    write_csv(out / "replies_raw.csv", all_rows, COLUMNS + ["reply"])
    write_csv(out / "replies_production.csv", prod, COLUMNS + ["reply"])
    write_json(out / "planted_reply_defects.json", reply_defects)
    clean_replies = set(reply_defects["clean"])
    first = [r for r in all_rows if r["ticket_id"] in clean_replies][:20]
    system = prompts.reply_system_text(formats.HOUSE)
    write_jsonl(ex / "replies.instruction.jsonl",
                [{"instruction": system, "input": r["text"], "output": r["reply"], "label": r["label"]} for r in first])
    write_jsonl(ex / "replies.chat.jsonl", [{"label": r["label"], "messages": [
        {"role": "system", "content": system}, {"role": "user", "content": r["text"]},
        {"role": "assistant", "content": r["reply"]}]} for r in first])
    verify_replies(all_rows, prod, defects, reply_defects)

    # what the embedded stand-in of the hosted model is trained on (ftplay/hosted_standin.py): its own sample
    hosted = make_hosted_sample(HOSTED_ROWS, [r["text"] for r in all_rows + prod])
    write_csv(out / "hosted_sample.csv", [{"text": h["text"], "label": h["label"],
                                           "reply": reply(h["label"], h["facts"], h["name"])} for h in hosted],
              ["text", "label", "reply"])
    from collections import Counter
    print(f"raw rows: {len(all_rows)} (clean {len(clean)}; hard share {hard:.2f}, ambiguous share {amb:.2f})")
    print("raw labels:", dict(Counter(r["label"] for r in all_rows).most_common()))
    print(f"production rows: {len(prod)} (typo rows {n_typo})")
    print("production labels:", dict(Counter(r["label"] for r in prod).most_common()))
    print("defects:", {k: len(v) for k, v in defects.items()})
    print("reply defects:", {k: len(v) for k, v in reply_defects.items()})
    if check:
        tfidf_check([r for r in all_rows if r["ticket_id"] in clean_ids], prod)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="also the TF-IDF + LogisticRegression sanity check")
    ap.add_argument("--out", type=Path, default=DATA, help="folder to write (default data/; another one to compare)")
    args = ap.parse_args()
    main(args.check, args.out)
