"""Tests for ftplay.data and ftplay.quality: loading, checks, split, audits, on fixtures and real data."""
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from ftplay import data, prompts, quality
from ftplay.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
MALFORMED = Path(__file__).parent / "malformed"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
RAW, PLANTED = DATA / "tickets_raw.csv", DATA / "planted_defects.json"
needs_sample = pytest.mark.skipif(not (RAW.exists() and PLANTED.exists()), reason="sample data not written yet")
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets absent")


def rows_of(*pairs):
    return [{"id": str(i), "text": t, "label": lab, "source": f"x:{i}"} for i, (t, lab) in enumerate(pairs)]


# =========================================================================== normalisation and checks
def test_normalise_definitions():
    assert quality.normalise_ci("  Hello\n  World!! ") == "hello world!!"
    assert quality.normalise("  Hello\n  World!! Order #1234_x.") == "hello world order 0000 x"
    assert quality.normalise("I haven't") == "i haven t"


def test_exact_duplicates_and_conflicts():
    rows = rows_of(("Card charged twice!", "billing"), ("card  charged twice", "billing"),
                   ("card charged twice", "refund"), ("App crashes", "bug"), ("app crashes.", "bug"))
    assert quality.find_exact_duplicates(rows) == [[0, 1], [3, 4]]
    assert quality.find_conflicts(rows) == [[0, 1, 2]]


@pytest.mark.parametrize("text,trivial", [
    ("", True), ("   ", True), ("?", True), ("ok", True), ("hello??", True), ("help", True),
    ("n/a", True), ("asdf", True), ("refund please", False), ("card stolen", False),
    ("My parcel never arrived.", False)])
def test_trivial(text, trivial):
    assert (quality.find_trivial(rows_of((text, "other"))) == [0]) is trivial


@pytest.mark.parametrize("text,expected", [
    ("mail me at jo.smith+x@mail.example.co.uk.", {"email": ["jo.smith+x@mail.example.co.uk"]}),
    ("call +1 650 555 0106 now", {"phone": ["+1 650 555 0106"]}),
    ("call (020) 7946 0961 please", {"phone": ["(020) 7946 0961"]}),
    ("text me at 555-0131.", {"phone": ["555-0131"]}),
    ("Phone: 555.123.4547", {"phone": ["555.123.4547"]}),
    ("ring 0113 496 0668 after 5", {"phone": ["0113 496 0668"]}),
    ("+44 20 7946 0088", {"phone": ["+44 20 7946 0088"]}),
    ("card 4111 1111 1111 1111 exp 12/27", {"card": ["4111 1111 1111 1111"]}),
    ("card 4000-0566-5566-5556", {"card": ["4000-0566-5566-5556"]}),
    ("card 5105105105105100", {"card": ["5105105105105100"]}),
    ("card 4111 1111 1111 1112", {}),                    # fails Luhn
    ("cancel purchase 113542617735902", {}),             # passes Luhn, no card network starts with 1
    ("order 732201349959 and #D-77105", {}),
    ("on 2024-01-15 at 10:30, card ending in 4242, version 4.2, €14.50", {}),
])
def test_find_pii(text, expected):
    assert quality.find_pii(text) == expected


def test_redact():
    text = "Reach me at a.b@example.com or +1 (212) 555-0122; card 4242 4242 4242 4242."
    assert quality.redact(text) == "Reach me at [EMAIL] or [PHONE]; card [CARD]."


def test_luhn():
    assert quality.luhn_ok("4242424242424242") and not quality.luhn_ok("4242424242424241")


def test_near_duplicates_small():
    rows = rows_of(("First time writing in. Notifications arrive twice for every message.", "bug"),
                   ("First time writing in. Notifications arrive twice for message.", "bug"),
                   ("Please cancel my subscription at the end of the month.", "cancellation"),
                   ("first time writing in notifications arrive twice for every message", "bug"))
    assert quality.find_near_duplicates(rows, 0.7) == [[0, 1, 3]]
    assert quality.find_near_duplicates(rows, 1.0) == [[0, 3]]


def test_audit_definitions_nest():
    train = rows_of(("How do I reset my PIN?", "pin"), ("Where is my card", "card"),
                    ("The app keeps crashing on start up today", "bug"))
    held = rows_of(("How do I reset my PIN?", "pin"), ("how do i  reset my pin?", "pin"),
                   ("How do I reset my PIN", "pin"), ("where is my card!", "other"),
                   ("The app keeps crashing on start up", "bug"), ("Totally new question here", "x"))
    a = quality.audit(train, held, 0.7)
    assert a["counts"] == {"identical": 1, "exact_ci": 2, "exact": 4, "near": 5, "conflicts": 1,
                           "near_label_differs": 1}
    assert [e["id"] for e in a["conflicts"]] == ["3"] and a["conflicts"][0]["train_label"] == "card"


# =========================================================================== loading
def test_load_csv_bom_crlf_multiline(tmp_path, caplog):
    p = tmp_path / "t.csv"
    p.write_bytes(b"\xef\xbb\xbfticket_id,text,label\r\nT1,\"two\r\nlines\",bug\r\nT2,,billing\r\n")
    rows = data.load(p)
    assert rows == [{"id": "T1", "text": "two\nlines", "label": "bug", "source": "t.csv:2"},
                    {"id": "T2", "text": "", "label": "billing", "source": "t.csv:4"}]
    assert "byte-order mark" in caplog.text


def test_load_custom_columns_and_ids(tmp_path):
    p = tmp_path / "export.csv"
    p.write_text("body,category\nhello there,billing\nbye now,other\n")
    with pytest.raises(DataError, match="set TEXT_FIELD"):
        data.load(p)
    rows = data.load(p, text_field="body", label_field="category")
    assert [(r["id"], r["text"], r["label"]) for r in rows] == [("export:2", "hello there", "billing"),
                                                                ("export:3", "bye now", "other")]


def test_a_tab_or_semicolon_export_is_read_by_its_delimiter_and_an_unreadable_one_names_it(tmp_path, caplog):
    """.tsv is tab-separated; a .csv whose header has the columns only when split by ';' (a European locale's
    spreadsheet) or a tab is read that way, said in the log; a comma inside a ';' field stays text."""
    caplog.set_level("INFO", logger="ftplay.dataload")
    tsv, semi, tabbed = tmp_path / "a.tsv", tmp_path / "b.csv", tmp_path / "c.csv"
    tsv.write_text("text\tlabel\nmy app, it crashes\tbug\n")
    semi.write_text('ticket_id;text;label\nT1;"card charged twice; refund?";billing\nT2;hi, there;other\n')
    tabbed.write_text("text\tlabel\nlogin fails; help\tbug\n")
    assert [(r["text"], r["label"]) for r in data.load(tsv)] == [("my app, it crashes", "bug")]
    assert [(r["id"], r["text"]) for r in data.load(semi)] == [("T1", "card charged twice; refund?"),
                                                               ("T2", "hi, there")]
    assert "read as semicolon-separated" in caplog.text
    assert data.load(tabbed)[0]["text"] == "login fails; help"
    bad = tmp_path / "d.csv"
    bad.write_text("body;category\nhello;bug\n")
    with pytest.raises(DataError, match=r"d.csv:1: field 'text': no column 'text' in the header \(read as "
                                        r"comma-separated; the header holds a semicolon\)"):
        data.load(bad)
    assert data.load(bad, text_field="body", label_field="category")[0]["label"] == "bug"


def test_all_problems_reported_at_once(tmp_path):
    p = tmp_path / "bad.jsonl"
    good = json.dumps({"instruction": "c", "input": "late parcel", "output": "shipping"})
    p.write_text("\n".join([good, "{oops", good, json.dumps({"input": "x y", "output": 3}), "[1]"]) + "\n")
    with pytest.raises(DataError) as e:
        data.load(p)
    assert [re.match(r"bad\.jsonl:(\d+): field '([^']+)'", q).groups() for q in e.value.problems] == \
        [("2", "(json)"), ("4", "output"), ("5", "(record)")]


MALFORMED_EXPECT = {                     # file -> (line, field named in the message)
    "csv_missing_text_column.csv": (1, "text"), "csv_missing_label_column.csv": (1, "label"),
    "csv_custom_columns_missing.csv": (1, "label"), "csv_ragged_row.csv": (3, "(row)"),
    "csv_unbalanced_quote.csv": (3, "(row)"), "csv_only_header.csv": (2, "(row)"),
    "csv_empty.csv": (1, "(file)"), "csv_whitespace_only.csv": (1, "(file)"),
    "csv_empty_label.csv": (3, "label"), "csv_whitespace_label.csv": (3, "label"),
    "csv_latin1.csv": (3, "(encoding)"), "csv_utf16.csv": (1, "(encoding)"),
    "csv_bom_crlf_empty_label.csv": (3, "label"), "csv_crlf_ragged.csv": (4, "(row)"),
    "csv_nul_byte.csv": (3, "(encoding)"), "csv_multiline_then_ragged.csv": (4, "(row)"),
    "instr_bad_json.jsonl": (2, "(json)"), "instr_missing_output.jsonl": (3, "output"),
    "instr_empty_output.jsonl": (2, "output"), "instr_output_number.jsonl": (2, "output"),
    "instr_output_null.jsonl": (2, "output"), "instr_input_list.jsonl": (2, "input"),
    "instr_empty_text.jsonl": (2, "input"), "instr_array_record.jsonl": (2, "(record)"),
    "instr_trailing_garbage.jsonl": (2, "(json)"), "instr_latin1.jsonl": (2, "(encoding)"),
    "instr_empty.jsonl": (1, "(file)"), "instr_nested_junk.jsonl": (2, "instruction"),
    "instr_deep_nesting.jsonl": (2, "(json)"),
    "chat_unknown_role.jsonl": (2, "messages[2].role"), "chat_no_assistant.jsonl": (2, "messages"),
    "chat_messages_not_list.jsonl": (2, "messages"), "chat_content_list.jsonl": (2, "messages[1].content"),
    "chat_missing_content.jsonl": (2, "messages[1].content"),
    "chat_empty_user_content.jsonl": (2, "messages[1].content"),
    "chat_label_number.jsonl": (2, "messages[2].content"), "chat_message_not_object.jsonl": (2, "messages[0]"),
    "chat_last_turn_user.jsonl": (2, "messages[3]"), "chat_no_user.jsonl": (2, "messages"),
    "chat_missing_role.jsonl": (2, "messages[1].role"), "chat_crlf_bad_json_line5.jsonl": (5, "(json)"),
    "chat_empty_messages.jsonl": (2, "messages"), "chat_utf16.jsonl": (1, "(encoding)"),
    "chat_truncated_utf8.jsonl": (3, "(encoding)"), "unknown_keys.jsonl": (1, "(record)"),
    "unknown_extension.txt": (1, "(format)"),
}


def test_every_malformed_fixture_has_an_expectation():
    assert sorted(p.name for p in MALFORMED.iterdir()) == sorted(MALFORMED_EXPECT)
    assert len(MALFORMED_EXPECT) >= 30


@pytest.mark.parametrize("name", sorted(MALFORMED_EXPECT))
def test_malformed_file_is_reported_with_file_line_field(name, tmp_path):
    line, fld = MALFORMED_EXPECT[name]
    with pytest.raises(DataError) as e:       # DataError only: no JSONDecodeError/UnicodeDecodeError/csv.Error
        data.load(MALFORMED / name)
    assert type(e.value) is DataError and e.value.__cause__ is None
    msg = str(e.value)
    assert f"{name}:{line}: field '{fld}':" in msg and "expected" in msg
    if "encoding" in fld and "utf16" not in name:
        assert "byte offset" in msg
    out = tmp_path / "out"
    cfg = data.DataConfig(train_path=str(MALFORMED / name), production_path=None)
    with pytest.raises(DataError):
        data.curate(cfg, out_dir=out)
    assert not out.exists() or not any(out.iterdir())


# =========================================================================== conversions
def test_conversion_round_trip(tmp_path):
    labels = ["billing", "bug"]
    rows = rows_of(("My card was charged twice, see #123.", "billing"), ("App crashes\non start", "bug"))
    msgs = prompts.messages(rows[0]["text"], labels, "billing")
    assert msgs[0] == {"role": "system", "content": prompts.DEFAULT_SYSTEM_PROMPT.format(labels="billing, bug")}
    assert data.from_chat(msgs) == (rows[0]["text"], "billing")
    assert len(prompts.messages("x", labels)) == 2
    data.write_jsonl(tmp_path / "i.jsonl", [prompts.instruction(r, labels) for r in rows])
    inst = data.load(tmp_path / "i.jsonl")                        # auto-detected as instruction
    data.write_jsonl(tmp_path / "c.jsonl", [{"messages": prompts.messages(r["text"], labels, r["label"])}
                                            for r in inst])
    chat = data.load(tmp_path / "c.jsonl")                        # auto-detected as chat
    data.write_jsonl(tmp_path / "i2.jsonl", [prompts.instruction(r, labels) for r in chat])
    back = data.load(tmp_path / "i2.jsonl", format="instruction")
    assert [(r["text"], r["label"]) for r in back] == [(r["text"], r["label"]) for r in rows]
    assert (tmp_path / "i.jsonl").read_bytes() == (tmp_path / "i2.jsonl").read_bytes()


@pytest.mark.skipif(not (DATA / "examples").is_dir(), reason="examples not written yet")
def test_example_files_agree():
    chat = data.load(DATA / "examples" / "tickets.chat.jsonl")
    inst = data.load(DATA / "examples" / "tickets.instruction.jsonl")
    assert len(chat) == len(inst) > 0
    assert [(r["text"], r["label"]) for r in chat] == [(r["text"], r["label"]) for r in inst]


def test_write_jsonl_is_atomic(tmp_path):
    p = tmp_path / "rows.jsonl"
    data.write_jsonl(p, [{"a": 1}])
    with pytest.raises(TypeError):
        data.write_jsonl(p, [{"a": 2}, {"b": object()}])
    assert p.read_text() == '{"a": 1}\n' and [q.name for q in tmp_path.iterdir()] == ["rows.jsonl"]


# =========================================================================== config
def test_config_reports_every_problem(tmp_path):
    with pytest.raises(ConfigError) as e:
        data.DataConfig(train_path=str(tmp_path / "nope.csv"), format="xml", heldout_fraction=1.5,
                        max_seq_len=0, production_path=None)
    msg = str(e.value)
    assert "4 problem(s)" in msg
    for name in ("TRAIN_PATH", "FORMAT", "HELDOUT_FRACTION", "MAX_SEQ_LEN"):
        assert name in msg


def test_single_label_is_a_config_error(tmp_path):
    p = tmp_path / "one.csv"
    p.write_text("text,label\n" + "".join(f"ticket number {w} is late,shipping\n"
                                          for w in ("alpha", "bravo", "charlie", "delta")))
    with pytest.raises(ConfigError, match="TRAIN_PATH=.* single label 'shipping'.*at least 2 labels"):
        data.curate(data.DataConfig(train_path=str(p), production_path=None))


# =========================================================================== the project's sample data
@pytest.fixture(scope="module")
def sample():
    rows = data.load(RAW)
    planted = json.loads(PLANTED.read_text())
    return rows, {r["id"]: i for i, r in enumerate(rows)}, planted


def _together(groups, a, b):
    where = {i: k for k, g in enumerate(groups) for i in g}
    return a in where and where[a] == where.get(b)


@needs_sample
def test_planted_duplicates_and_conflicts_found(sample):
    rows, idx, planted = sample
    exact = quality.find_exact_duplicates(rows)
    near = quality.find_near_duplicates(rows, data.DataConfig.near_dup_threshold)
    conflicts = quality.find_conflicts(rows)
    for kind in ("exact_duplicates", "normalised_duplicates"):
        assert all(_together(exact, idx[a], idx[b]) for a, b in planted[kind]), kind
    found = sum(_together(near, idx[a], idx[b]) for a, b in planted["near_duplicates"])
    assert found >= 0.95 * len(planted["near_duplicates"])         # measured: 60/60 (59/60 at 0.7)
    assert all(_together(conflicts, idx[a], idx[b]) for a, b in planted["conflicts"])
    # clean rows that are not one side of a planted pair must not be flagged
    involved = {x for k in ("exact_duplicates", "normalised_duplicates", "near_duplicates", "conflicts")
                for pair in planted[k] for x in pair}
    flagged = {i for g in exact + near + conflicts for i in g}
    clean = [idx[c] for c in planted["clean"] if c not in involved]
    false_pos = sum(i in flagged for i in clean)
    assert false_pos <= 0.02 * len(clean)                         # measured: 0 of 955


@needs_sample
def test_planted_trivial_and_pii_found(sample):
    rows, idx, planted = sample
    assert {rows[i]["id"] for i in quality.find_trivial(rows)} == set(planted["empty_or_trivial"])
    for kind in ("email", "phone", "card"):
        found = {r["id"] for r in rows if kind in quality.find_pii(r["text"])}
        truth = set(planted[f"pii_{kind}"])
        assert truth <= found, kind                                # recall 100%
        assert len(found - truth) <= 0.05 * len(found), kind       # precision >= 95% (measured 100%)


class _WordTokenizer:
    """Stand-in for a HF tokenizer: one token per whitespace-separated word of the rendering,
    which wraps each message in two marker words (the generation prompt opens the answer's)."""
    bos_token_id = eos_token_id = chat_template = None
    added_tokens_decoder = {}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False, **kw):
        return " ".join(f"<m> {m['content']} </m>" for m in messages) + (" <m>" if add_generation_prompt else "")

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": list(range(len(text.split())))}


@needs_sample
def test_curate_sample_split_and_truncation(tmp_path):
    planted = json.loads(PLANTED.read_text())
    cfg = data.DataConfig(train_path=str(RAW), max_seq_len=300,
                          production_path=str(DATA / "production_samples.csv"))
    cur = data.curate(cfg, tokenizer=_WordTokenizer(), out_dir=tmp_path)
    rep = cur.report
    assert rep["trivial"] == len(planted["empty_or_trivial"])
    assert {t["id"] for t in cur.tables["truncated"]} == set(planted["over_long"])
    assert rep["truncated"] == len(planted["over_long"]) and rep["tokens"]["max"] > 300
    kept = {r["id"] for r in cur.train + cur.heldout}
    assert not kept & set(planted["over_long"]) and not kept & set(planted["empty_or_trivial"])
    assert not kept & {x for pair in planted["conflicts"] for x in pair}
    # stratified within one row per label, nothing leaks across our own split
    for lab, n in rep["labels"].items():
        total = n["train"] + n["heldout"]
        assert abs(n["heldout"] - 0.2 * total) <= 1, lab
    assert rep["leakage"] == {"identical": 0, "exact_ci": 0, "exact": 0, "near": 0, "conflicts": 0,
                              "near_label_differs": 0}
    assert rep["rows_out"] == len(cur.train) + len(cur.heldout) == rep["split"]["train"] + rep["split"]["heldout"]
    assert len(cur.labels) == 9 and rep["rare_labels"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data_card.json", "heldout.jsonl", "production.jsonl",
                                                          "tables.json", "train.jsonl"]
    assert len(data.load(tmp_path / "train.jsonl")) == len(cur.train)
    # deterministic by seed
    again = data.curate(cfg, tokenizer=_WordTokenizer())
    assert again.report["fingerprints"] == rep["fingerprints"]
    other = data.curate(data.DataConfig(train_path=str(RAW), seed=1, production_path=None))
    assert other.report["fingerprints"]["heldout"] != rep["fingerprints"]["heldout"]


@needs_sample
def test_redaction_removes_planted_pii():
    cur = data.curate(data.DataConfig(train_path=str(RAW), redact_pii=True, production_path=None))
    assert cur.report["pii_rows"] > 0
    for r in cur.train + cur.heldout:
        assert quality.find_pii(r["text"]) == {}


def test_split_keeps_groups_together_and_stratifies():
    rows = rows_of(*[(f"t{i}", "a" if i < 50 else "b") for i in range(80)])
    groups = [[0, 1, 2], [50, 51], [10, 60]]
    tr, ho = data.split(rows, groups, 0.2, seed=3)
    assert sorted(tr + ho) == list(range(80))
    for g in groups:
        assert set(g) <= set(tr) or set(g) <= set(ho)
    assert Counter(rows[i]["label"] for i in ho) == {"a": 10, "b": 6}
    assert data.split(rows, groups, 0.2, seed=3) == (tr, ho)


# =========================================================================== public data sets
@needs_shared
@pytest.mark.parametrize("name,expected", [
    ("banking77", {"identical": 0, "exact_ci": 7, "exact": 25}),
    ("bitext_customer_support", {"identical": 0, "exact_ci": 16, "exact": 42}),
])
def test_public_split_leakage(name, expected):
    cfg = data.DataConfig(train_path=str(SHARED / name / "train.csv"),
                          heldout_path=str(SHARED / name / "test.csv"), production_path=None)
    cur = data.curate(cfg)
    leak = cur.report["leakage"]
    assert {k: leak[k] for k in expected} == expected
    assert leak["conflicts"] == 0 and leak["near"] >= leak["exact"]
    assert cur.report["split"]["made_here"] is False
    assert cur.report["leakage_curated"]["exact"] <= leak["exact"]


def test_cap_per_label_keeps_a_seeded_sample_in_order():
    rows = [{"id": str(i), "label": "a" if i % 3 else "b"} for i in range(30)]
    kept, dropped = data.cap_per_label(rows, 5, seed=1)
    assert dropped == 20 and Counter(r["label"] for r in kept) == {"a": 5, "b": 5}
    assert [int(r["id"]) for r in kept] == sorted(int(r["id"]) for r in kept)
    assert kept == data.cap_per_label(rows, 5, seed=1)[0] and kept != data.cap_per_label(rows, 5, seed=2)[0]
    assert data.cap_per_label(rows, 100)[1] == 0
    with pytest.raises(ConfigError, match="MAX_TRAIN_PER_LABEL"):
        data.DataConfig(max_train_per_label=-1)


def test_curate_caps_only_the_training_split(tmp_path):
    full = data.curate(data.DataConfig(production_path=None))
    capped = data.curate(data.DataConfig(production_path=None, max_train_per_label=20), out_dir=tmp_path / "data")
    assert capped.heldout == full.heldout and max(Counter(r["label"] for r in capped.train).values()) == 20
    assert capped.report["capped"] == len(full.train) - len(capped.train) > 0
    assert data.load_split(tmp_path, "production") == []
    assert len(data.load_split(tmp_path, "train")) == len(capped.train)


def test_subsample_is_seeded_ordered_and_spans_a_sorted_file():
    rows = [{"id": str(i), "label": f"l{i // 100}"} for i in range(1000)]  # sorted by label, like BANKING77's test
    got = data.subsample(rows, 50, seed=0)
    assert len(got) == 50 and got == data.subsample(rows, 50, seed=0) != data.subsample(rows, 50, seed=1)
    assert [int(r["id"]) for r in got] == sorted(int(r["id"]) for r in got)
    assert len({r["label"] for r in got}) == 10 and data.subsample(rows, 0) == rows == data.subsample(rows, 5000)


# =========================================================================== long fields and label names
def _clean_rows(n_per_label, labels=("billing", "account", "bug")):
    """Rows of the sample export that carry no planted defect, n per label, as (text, label)."""
    clean = set(json.loads(PLANTED.read_text())["clean"])
    rows = [r for r in data.load(RAW) if r["id"] in clean]
    return [(r["text"], r["label"]) for lab in labels for r in [r for r in rows if r["label"] == lab][:n_per_label]]


def _write_csv(path, pairs):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(pairs)
    return path


@needs_sample
def test_a_field_longer_than_csvs_default_limit_loads_and_the_length_check_drops_it(tmp_path):
    long = "the export pasted a whole log here " * 6000          # 210,000 characters, over csv's 131,072
    p = _write_csv(tmp_path / "t.csv", _clean_rows(15) + [(long, "bug")])
    rows = data.load(p)
    assert len(rows) == 46 and rows[-1]["text"] == long and rows[-1]["source"] == "t.csv:47"
    cur = data.curate(data.DataConfig(train_path=str(p), production_path=None, max_seq_len=300),
                      tokenizer=_WordTokenizer())
    assert [t["source"] for t in cur.tables["truncated"]] == ["t.csv:47"] and cur.report["truncated"] == 1
    assert long not in {r["text"] for r in cur.train + cur.heldout}
    broken = tmp_path / "quote.csv"
    broken.write_text('text,label\n"a quote that never closes, billing\nnext row,bug\n')
    with pytest.raises(DataError, match="quote.csv:2: field '\\(row\\)': malformed CSV .*never closed"):
        data.load(broken)


@needs_sample
def test_label_warnings_name_stripped_spaces_and_labels_never_held_out(tmp_path):
    pairs = _clean_rows(12)
    pairs[0:3] = [(t, f"  {lab} ") for t, lab in pairs[0:3]]       # ' billing ' three times
    pairs[-1] = (pairs[-1][0], "gift_cards")                        # a label with one row
    p = _write_csv(tmp_path / "t.csv", pairs)
    assert data.load(p)[0]["label_raw"] == "  billing " and "label_raw" not in data.load(p)[3]
    cur = data.curate(data.DataConfig(train_path=str(p), production_path=None), out_dir=tmp_path / "out")
    assert cur.report["label_warnings"] == [
        {"label": "billing", "kind": "spaces", "rows": 3,
         "message": "label 'billing': 3 row(s) wrote it with spaces around it (first t.csv:2: '  billing '); they "
                    "were stripped and count as 'billing'"},
        {"label": "gift_cards", "kind": "train_only", "rows": 1,
         "message": "label 'gift_cards' has 1 row(s) after curation, all in train: it is trained on but never scored "
                    "on held-out; give it at least 3 rows (HELDOUT_FRACTION=0.2) or merge it into another label"}]
    assert cur.report["labels"]["gift_cards"] == {"train": 1, "heldout": 0, "production": 0}
    card = json.loads((tmp_path / "out" / "data_card.json").read_text())
    assert card["label_warnings"] == cur.report["label_warnings"]
    text = data.format_label_warnings(cur.report["label_warnings"])
    assert text.splitlines()[0] == "labels: 2 warning(s)" and "gift_cards" in text
    assert data.format_label_warnings([]).startswith("labels: no warnings")


@needs_sample
def test_a_label_with_a_comma_is_refused_where_the_prompt_lists_the_labels(tmp_path):
    pairs = _clean_rows(12)
    pairs[12:17] = [(t, "feature,request") for t, _ in pairs[12:17]]
    p = _write_csv(tmp_path / "t.csv", pairs)
    with pytest.raises(DataError) as e:
        data.curate(data.DataConfig(train_path=str(p), production_path=None), out_dir=tmp_path / "out")
    assert e.value.problems == [
        "t.csv:14: field 'label': label 'feature,request' (5 row(s)) contains a comma, and the system prompt lists the "
        "labels separated by commas, so the model reads it as 2 labels; rename it in the file (e.g. "
        "'feature_request'), or write a SYSTEM_PROMPT without {labels}"]
    assert not (tmp_path / "out").exists(), "nothing is written"
    cur = data.curate(data.DataConfig(train_path=str(p), production_path=None),
                      system_prompt='Classify the ticket; answer as JSON {"label": "..."}.')
    assert [(w["kind"], w["label"], w["rows"]) for w in cur.report["label_warnings"]] == [
        ("comma", "feature,request", 5)]
    assert prompts.messages("x", cur.labels, system_prompt='Classify the ticket; answer as JSON {"label": "..."}.'
                            )[0]["content"] == 'Classify the ticket; answer as JSON {"label": "..."}.'


def test_leak_text_says_what_leaked_or_none():
    """Issue 28: 00, 02 and 04 printed audit counts as a dict repr."""
    assert quality.leak_text({"identical": 0, "exact_ci": 0, "exact": 0, "near": 0}) == "none"
    assert quality.leak_text({"identical": 0, "exact": 2, "near_label_differs": 1}) == "exact 2, near label differs 1"
