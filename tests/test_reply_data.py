"""The reply task's data: the sample replies the generator writes, loading replies, and curating them (02)."""
import csv
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from ftplay import data, formats, prompts, quality
from ftplay.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
RAW, PROD = DATA / "replies_raw.csv", DATA / "replies_production.csv"
PLANTED = json.loads((DATA / "planted_reply_defects.json").read_text())
TICKET_DEFECTS = json.loads((DATA / "planted_defects.json").read_text())
BITEXT = ROOT.parent / "shared" / "datasets" / "bitext_customer_support" / "all.csv"


def _csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


class _WordTokenizer:
    """Stand-in for a HF tokenizer: one token per whitespace-separated word of the rendering."""
    bos_token_id = eos_token_id = chat_template = None
    added_tokens_decoder = {}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False, **kw):
        return " ".join(f"<m> {m['content']} </m>" for m in messages) + (" <m>" if add_generation_prompt else "")

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": list(range(len(text.split())))}


# =========================================================================== the generator's replies
def test_reply_files_are_the_ticket_files_plus_a_reply():
    # the export's planted wrong labels (planted_defects.json "mislabelled") are in tickets_raw.csv only
    wrong = {t: true for t, true, _given in json.loads((DATA / "planted_defects.json").read_text())["mislabelled"]}
    for replies, tickets in ((RAW, DATA / "tickets_raw.csv"), (PROD, DATA / "production_samples.csv")):
        got, want = _csv(replies), _csv(tickets)
        want = [{**r, "label": wrong.get(r["ticket_id"], r["label"])} for r in want]
        assert len(got) == len(want) and list(got[0]) == list(want[0]) + ["reply"]
        assert [{k: r[k] for k in want[0]} for r in got] == want
    assert len(_csv(RAW)) == 1381 and len(_csv(PROD)) == 200


def test_every_clean_reply_is_valid_and_restates_its_ticket():
    rows = {r["ticket_id"]: r for r in _csv(RAW)}
    clean = [rows[i] for i in PLANTED["clean"]] + _csv(PROD)
    assert len(clean) == 1073 + 200
    topics = defaultdict(set)
    for k, r in enumerate(clean):
        ok, f = formats.parse(formats.HOUSE, r["reply"])
        assert ok, r["reply"]
        topics[r["label"]].add(f["topic"])
        text = r["text"].lower()
        assert not quality.find_pii(r["reply"])
        if k < 1073:   # raw rows (a production typo may mangle a name or fact the reply writes properly)
            assert f["name"] == "there" or f["name"].lower() in text, (f["name"], r["text"])
            assert f["details"] == "none" or all(fact.lower() in text for fact in f["details"].split("; ")), r
    assert all(len(t) == 1 for t in topics.values()) and len({t.pop() for t in topics.values()}) == 9
    named = sum(formats.parse(formats.HOUSE, r["reply"])[1]["name"] != "there" for r in clean)
    details = sum(formats.parse(formats.HOUSE, r["reply"])[1]["details"] != "none" for r in clean)
    assert (named, details) == (161, 554)   # measured: a name in 13% of the replies, facts in 44%


def test_planted_reply_defects_are_what_they_say():
    rows = {r["ticket_id"]: r for r in _csv(RAW)}
    assert {k: len(v) for k, v in PLANTED.items()} == {
        "exact_duplicates": 40, "normalised_duplicates": 30, "near_duplicates": 60, "conflicts": 25, "off_format": 20,
        "trivial_replies": 8, "over_long_replies": 5, "pii_leaked": 4, "pii_restated": 20, "clean": 1073}
    for k in ("exact_duplicates", "normalised_duplicates", "near_duplicates", "conflicts"):
        assert PLANTED[k] == TICKET_DEFECTS[k]          # inherited from the tickets
        same = [rows[a]["reply"] == rows[b]["reply"] for a, b in PLANTED[k]]
        assert all(same) if k != "conflicts" else not any(same), k
    assert not any(formats.valid(formats.HOUSE, rows[i]["reply"]) for i in PLANTED["off_format"])
    assert all(len(rows[i]["reply"].split()) >= 400 and formats.valid(formats.HOUSE, rows[i]["reply"])
               for i in PLANTED["over_long_replies"])
    for i in PLANTED["pii_restated"]:
        found = [v for vs in quality.find_pii(rows[i]["reply"]).values() for v in vs]
        assert found and all(v in rows[i]["text"] for v in found), i
    for i in PLANTED["pii_leaked"]:
        assert quality.find_pii(rows[i]["reply"]) and not quality.find_pii(rows[i]["text"]), i


@pytest.mark.slow
def test_the_generator_writes_the_committed_files_byte_for_byte(tmp_path):
    """Regenerating (stdlib python, its own seed; about 18 s) gives every committed data file, the ticket files
    included: the replies draw from their own random stream."""
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_sample_data.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True, text=True, timeout=300)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    model_written = {"request_log.jsonl", "request_log.anthropic.jsonl"}   # tools/make_request_log.py's (a model's)
    assert [str(p) for p in written] == sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*")
                                               if p.is_file() and p.name != "README.md" and p.name not in model_written)
    for rel in written:
        assert (tmp_path / rel).read_bytes() == (DATA / rel).read_bytes(), rel


def test_reply_examples_load_as_the_same_rows_with_the_reply_system_prompt():
    system = prompts.reply_system_text(formats.HOUSE)
    chat = [json.loads(line) for line in (DATA / "examples" / "replies.chat.jsonl").read_text().splitlines()]
    assert len(chat) == 20 and {c["messages"][0]["content"] for c in chat} == {system}
    inst = data.load(DATA / "examples" / "replies.instruction.jsonl", output_field="reply")
    loaded = data.load(DATA / "examples" / "replies.chat.jsonl", output_field="reply")
    raw = {r["text"]: r for r in data.load(RAW, output_field="reply")}
    for a, b in zip(inst, loaded):
        assert (a["text"], a["label"], a["output"]) == (b["text"], b["label"], b["output"])
        assert (raw[a["text"]]["label"], raw[a["text"]]["output"]) == (a["label"], a["output"])
        assert raw[a["text"]]["id"] in PLANTED["clean"]


# =========================================================================== loading replies
def test_load_reply_csv_and_jsonl(tmp_path):
    rows = data.load(RAW, output_field="reply")
    assert len(rows) == 1381 and all(r["output"] for r in rows)
    assert all("output" not in r for r in data.load(RAW))   # classification: unchanged
    no_label = tmp_path / "n.csv"
    no_label.write_text('text,answer\nwhere is my parcel,"Hello there,\nIt is on its way."\n')
    assert data.load(no_label, output_field="answer") == [{"id": "n:2", "text": "where is my parcel", "label": "-",
                                                            "source": "n.csv:2",
                                                            "output": "Hello there,\nIt is on its way."}]
    chat = tmp_path / "c.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "hi, card charged twice"},
                                             {"role": "assistant", "content": "  Sorry! We refund it.  "}]}) + "\n"
                    + json.dumps({"label": "billing", "messages": [{"role": "user", "content": "invoice please"},
                                                                   {"role": "assistant", "content": "Sent."}]}) + "\n")
    got = data.load(chat, output_field="reply")
    assert [(r["label"], r["output"]) for r in got] == [("-", "  Sorry! We refund it.  "), ("billing", "Sent.")]


def test_reply_loader_errors_name_file_line_and_field(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text('text,label,reply\nparcel late,shipping,"Hello there"\ncard charged,billing,"  "\nhelp,other,\n')
    with pytest.raises(DataError) as e:
        data.load(p, output_field="reply")
    assert e.value.problems == [
        "r.csv:3: field 'reply': empty reply; expected the reference reply the model should write",
        "r.csv:4: field 'reply': empty reply; expected the reference reply the model should write"]
    with pytest.raises(DataError, match=r"r.csv:1: field 'answer': no column 'answer' in the header; columns found: "
                                        r"text, label, reply; expected a 'answer' column, or set OUTPUT_FIELD"):
        data.load(p, output_field="answer")
    j = tmp_path / "r.jsonl"
    j.write_text(json.dumps({"input": "parcel late", "output": ""}) + "\n"
                 + json.dumps({"input": "card charged", "output": "Refunded.", "label": 3}) + "\n")
    with pytest.raises(DataError) as e:
        data.load(j, output_field="reply")
    assert e.value.problems == ["r.jsonl:1: field 'output': empty; expected a non-empty string",
                                "r.jsonl:2: field 'label': is int 3; expected a string"]


# =========================================================================== curating replies
def test_reply_duplicates_and_conflicts_compare_normalised_replies():
    rows = [{"id": str(i), "text": t, "label": "billing", "output": o, "source": f"x:{i}"} for i, (t, o) in enumerate([
        ("Charged twice!", "Hello there,\nWe refund $12."), ("charged twice", "hello there, we refund $99"),
        ("Charged twice", "Hello there,\nWe cancel the plan."), ("App crashes", "We fix it."),
        ("app crashes.", "We fix it.")])]
    assert quality.find_exact_duplicates(rows) == [[0, 1], [3, 4]]       # digits and punctuation aside, the same reply
    assert quality.find_conflicts(rows) == [[0, 1, 2]]                    # another reply to the same ticket
    assert quality.find_trivial_outputs(rows + [dict(rows[0], output="Done.")]) == [5]
    audit = quality.audit(rows[:1], [dict(rows[2], id="h")], 0.7)
    assert audit["counts"]["conflicts"] == 1 and audit["conflicts"][0]["train_id"] == "0"


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = data.DataConfig(train_path=str(RAW), production_path=str(PROD), task="reply", max_seq_len=300)
    return data.curate(cfg, tokenizer=_WordTokenizer(), out_dir=out / "data"), out


def test_curation_finds_every_planted_reply_defect(curated):
    cur, _ = curated
    rep, t = cur.report, cur.tables

    def ids(name):
        return {r["id"] for r in t[name]}

    assert rep["task"] == "reply" and rep["reply_format"] == "house" and rep["output_field"] == "reply"
    assert rep["trivial"] == len(TICKET_DEFECTS["empty_or_trivial"])
    assert ids("trivial_outputs") == set(PLANTED["trivial_replies"]) and rep["trivial_outputs"] == 8
    assert ids("invalid_format") == set(PLANTED["off_format"]) and rep["invalid_format"] == 20
    assert ids("truncated") == set(PLANTED["over_long_replies"]) | set(TICKET_DEFECTS["over_long"])
    assert rep["truncated"] == 5 + 8
    assert rep["conflicts"] == 25 and rep["conflict_rows"] == 50
    assert {frozenset(g["ids"]) for g in t["conflicts"]} == {frozenset(p) for p in PLANTED["conflicts"]}
    assert rep["exact_duplicates"] == 70 and rep["exact_duplicate_rows_dropped"] == 70
    assert rep["near_duplicates"] == 60 and rep["near_duplicate_rows_dropped"] == 60
    pii_tickets = {i for k in ("pii_email", "pii_phone", "pii_card") for i in TICKET_DEFECTS[k]}
    rows = data.load(RAW, output_field="reply")     # the table keeps the first 50; the counts are all of them
    planted_pii = set(PLANTED["pii_restated"] + PLANTED["pii_leaked"])
    assert {r["id"] for r in rows if quality.find_pii(r["output"])} == planted_pii
    assert {r["id"] for r in rows if quality.find_pii(r["text"])} == pii_tickets
    assert rep["pii_output_rows"] == 24 and rep["pii_rows"] == len(pii_tickets | set(PLANTED["pii_leaked"])) == 102
    assert all(set(r["in"]) <= {"text", "output"} for r in t["pii"])
    assert rep["rows_out"] == 1381 - 10 - 8 - 50 - 70 - 20 - 13 - 60 == 1150
    kept = {r["id"] for r in cur.train + cur.heldout}
    dropped = set(PLANTED["off_format"]) | set(PLANTED["trivial_replies"]) | set(PLANTED["over_long_replies"])
    assert not kept & (dropped | {i for pair in PLANTED["conflicts"] for i in pair})
    assert rep["leakage"]["exact"] == rep["leakage"]["near"] == rep["production_leakage"]["near"] == 0
    assert [d["rows dropped"] for d in data.drop_summary(rep)] == [10, 8, 0, 50, 70, 20, 13, 60]


def test_written_splits_carry_the_replies(curated):
    cur, run = curated
    for name in ("train", "heldout", "production"):
        rows = data.load_split(run, name)
        assert [(r["id"], r["text"], r["label"], r["output"]) for r in rows] == \
            [(r["id"], r["text"], r["label"], r["output"]) for r in getattr(cur, name)], name
    records = [json.loads(line) for line in (run / "data" / "train.jsonl").read_text().splitlines()]
    assert [r["messages"][-1] for r in records] == [{"role": "assistant", "content": r["output"]} for r in cur.train]
    assert {r["messages"][0]["content"] for r in records} == {prompts.reply_system_text(formats.HOUSE)}
    assert [r["label"] for r in records] == [r["label"] for r in cur.train]
    assert json.loads((run / "data" / "data_card.json").read_text())["task"] == "reply"
    for lab, n in cur.report["labels"].items():       # stratified by the ticket's category, as classification
        assert abs(n["heldout"] - 0.2 * (n["train"] + n["heldout"])) <= 1, lab


def test_redact_pii_redacts_replies_too(tmp_path):
    cfg = data.DataConfig(train_path=str(RAW), production_path=None, task="reply", redact_pii=True)
    cur = data.curate(cfg)
    rows = {r["id"]: r for r in cur.train + cur.heldout}
    restated = [rows[i] for i in PLANTED["pii_restated"] if i in rows]
    assert restated and all(re.search(r"\[(EMAIL|PHONE|CARD)\]", r["output"]) for r in restated)
    assert not any(quality.find_pii(r["output"]) or quality.find_pii(r["text"]) for r in rows.values())


def test_reply_output_tokens_on_the_embedded_tokenizer(tiny_tok):
    cfg = data.DataConfig(train_path=str(RAW), production_path=None, task="reply", redact_pii=False)
    rep = data.curate(cfg, tokenizer=tiny_tok).report
    assert rep["truncated"] == 13 and rep["rows_out"] == 1150
    assert rep["output_tokens"] == {"p50": 56, "p95": 68, "max": 86}
    assert rep["prompt_tokens"]["p50"] > 100 and rep["tokens"]["max"] > 512


def test_reply_config_is_validated():
    with pytest.raises(ConfigError) as e:
        data.DataConfig(train_path=str(RAW), production_path=None, task="summarise")
    assert "TASK='summarise' is not one of classify, reply" in str(e.value)
    with pytest.raises(ConfigError) as e:
        data.DataConfig(train_path=str(RAW), production_path=None, task="reply", output_field="", reply_format="json")
    assert "OUTPUT_FIELD=''" in str(e.value) and "REPLY_FORMAT='json' is not a known reply format" in str(e.value)


def test_mask_check_on_the_longest_reply(tiny_tok):
    rows = data.load(RAW, output_field="reply")
    row = max((r for r in rows if r["id"] in PLANTED["clean"]), key=lambda r: len(r["output"]))
    msgs = data.conversation(row, [], data.system_prompt_for("reply"))
    ids, mask = prompts.training_example(tiny_tok, msgs)
    check = data.mask_check(tiny_tok, msgs, ids, mask)
    assert check["trained_text_is_the_answer"] and check["ends_with_end_of_turn"] and check["one_contiguous_block"]
    assert check["trained_tokens"] > 60 and check["end_of_turn_token"] == "<|im_end|>"
    leaky = list(mask)                               # one prompt token trained: the check says so
    leaky[3] = 1
    assert not data.mask_check(tiny_tok, msgs, ids, leaky)["trained_text_is_the_answer"]
    assert not data.mask_check(tiny_tok, msgs, ids, leaky)["one_contiguous_block"]


# =========================================================================== real replies: Bitext
@pytest.mark.shared
@pytest.mark.skipif(not BITEXT.exists(), reason="../shared/datasets/bitext_customer_support absent")
def test_bitext_replies_curate_with_sane_numbers(tmp_path):
    cfg = data.DataConfig(train_path=str(BITEXT), production_path=None, task="reply", output_field="response",
                          reply_format="bitext")
    cur = data.curate(cfg, out_dir=tmp_path / "data")
    rep = cur.report
    assert rep["rows_in"] > 4000 and len(cur.labels) == 27              # 27 intents, the label column
    assert 0 < rep["invalid_format"] <= 0.01 * rep["rows_in"]          # replies cut off mid-instruction
    assert rep["trivial_outputs"] == 0 and rep["exact_duplicates"] == 0
    assert rep["pii_output_rows"] <= 5                                 # its placeholders are not PII
    assert 0 < rep["conflict_rows"] < 0.1 * rep["rows_in"]             # the same query with two generated replies
    assert 0.5 * rep["rows_in"] < rep["rows_out"] < rep["rows_in"]
    assert rep["leakage"]["near"] == 0
    held = data.load_split(tmp_path, "heldout")
    assert len(held) == rep["split"]["heldout"] and all(r["output"] for r in held)


def test_reply_rows_without_categories_split_as_one_group(tmp_path):
    rows = [r for r in data.load(RAW, output_field="reply") if r["id"] in set(PLANTED["clean"][:100])]
    p = tmp_path / "r.jsonl"
    p.write_text("".join(json.dumps({"messages": data.conversation(r, [])}) + "\n" for r in rows))
    cfg = data.DataConfig(train_path=str(p), production_path=None, task="reply")
    cur = data.curate(cfg, out_dir=tmp_path / "run" / "data")
    assert cur.labels == ["-"] and (len(cur.train), len(cur.heldout)) == (80, 20)
    assert [r["output"] for r in data.load_split(tmp_path / "run", "heldout")] == [r["output"] for r in cur.heldout]
