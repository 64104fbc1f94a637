"""Tests for ftplay.requestlog: a hosted model's request log read as training data, its teacher labels checked."""
import json
from pathlib import Path

import pytest

from ftplay import data, requestlog
from ftplay.errors import DataError

DATA = Path(__file__).resolve().parent.parent / "data"
SYSTEM = "Classify the ticket. Answer with one of: billing, shipping."


def _openai(tid, text, answer, model="gpt-4o-2024-08-06", **message):
    return {"id": tid, "request": {"model": "gpt-4o", "messages": [{"role": "system", "content": SYSTEM},
                                                                   {"role": "user", "content": text}]},
            "response": {"object": "chat.completion", "model": model,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": answer, **message}}]}}


def _anthropic(tid, text, answer, model="claude-sonnet-4-5"):
    return {"id": tid, "request": {"model": model, "system": SYSTEM, "max_tokens": 16,
                                   "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]},
            "response": {"type": "message", "role": "assistant", "model": model,
                         "content": [{"type": "text", "text": answer}], "stop_reason": "end_turn"}}


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.mark.parametrize("make", [_openai, _anthropic])
def test_a_log_reads_as_rows_with_teacher_labels(tmp_path, make):
    p = _write(tmp_path / "log.jsonl", [make("a", "My invoice is wrong", "billing"),
                                        make("b", "Where is my parcel?", '{"label": "shipping"}'),
                                        make("c", "Refund?", "Sure! I think this ticket is about a refund."),
                                        make("d", "Hello", " Billing. ")])
    rows = data.load(p)
    assert [(r["id"], r["text"], r["label"]) for r in rows] == [
        ("a", "My invoice is wrong", "billing"), ("b", "Where is my parcel?", "shipping"), ("c", "Refund?", ""),
        ("d", "Hello", "Billing")]
    assert rows[2]["answer_problem"].startswith("not a label") and rows[2]["answer_raw"].startswith("Sure!")
    assert {r["teacher"] for r in rows} == {("openai:gpt-4o-2024-08-06" if make is _openai
                                            else "anthropic:claude-sonnet-4-5")}
    assert rows[0]["source"] == "log.jsonl:1"


@pytest.mark.parametrize("answer, label, problem", [
    ("billing", "billing", None), ('{"label": "refund"}', "refund", None), ("'bug'.", "bug", None),
    ("", "", "empty answer (or a refusal)"), ('{"label": "bi', "", "starts like JSON but does not parse (cut off?)"),
    ('{"category": "bug"}', "", "JSON without a string 'label'"), ("lost or stolen card", "lost or stolen card", None),
    ("this is a billing question", "", "not a label: more than 4 words"),
    ("bug\nbilling", "", "not a label: more than 4 words")])
def test_label_of(answer, label, problem):
    assert requestlog.label_of(answer) == (label, problem)


@pytest.mark.parametrize("bad, where", [
    ({"id": "x", "request": {"messages": [{"role": "user", "content": "hi"}]},
      "response": {"object": "chat.completion", "model": "m", "choices": []}},
     "teacher.jsonl:2: field 'response.choices[0].message'"),
    (_openai("x", "hi", None, tool_calls=[{"id": "t", "type": "function"}]),
     "teacher.jsonl:2: field 'response.choices[0].message.tool_calls': a tool call where text was expected"),
    ({**_anthropic("x", "hi", "bug"), "response": {"type": "message", "model": "claude-sonnet-4-5",
                                                  "content": [{"type": "tool_use", "name": "f", "input": {}}]}},
     "teacher.jsonl:2: field 'response.content[0]': a tool call (tool_use)"),
    (_openai("x", "hi", "bug", model="gpt-4o-mini"),
     "teacher.jsonl:2: field 'response.model': 'gpt-4o-mini', but line 1 has"),
    ({"id": "x", "request": {"messages": [{"role": "user", "content": "hi"}]}, "response": {"error": {"code": 429}}},
     "teacher.jsonl:2: field 'response.error': the request failed: {'code': 429}"),
    ({"id": "x", "request": {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
      "response": _openai("x", "hi", "bug")["response"]},
     "teacher.jsonl:2: field 'request.messages[0].content': is not text"),
    ({"id": "x", "request": {"messages": [{"role": "system", "content": "s"}]},
      "response": _openai("x", "h", "b")["response"]},
     "teacher.jsonl:2: field 'request.messages': no user turn"),
    ({"messages": []}, "teacher.jsonl:2: field '(record)': has keys ['messages']"),
])
def test_a_malformed_log_names_file_line_and_field(tmp_path, bad, where):
    p = _write(tmp_path / "teacher.jsonl", [_openai("a", "My invoice", "billing"), bad])
    with pytest.raises(DataError) as e:
        data.load(p)
    assert "teacher.jsonl" in str(e.value) and where in str(e.value)


def test_an_error_response_says_the_request_failed(tmp_path):
    p = _write(tmp_path / "t.jsonl", [_openai("a", "x", "bug"), {**_openai("b", "y", "bug"), "response": {
        "object": "chat.completion", "model": "gpt-4o-2024-08-06", "error": {"message": "rate limited"}}}])
    with pytest.raises(DataError, match=r"t.jsonl:2: field 'response.error': the request failed: .*rate limited"):
        data.load(p)


def test_a_refusal_is_a_dropped_answer_not_a_broken_file(tmp_path):
    p = _write(tmp_path / "t.jsonl", [_openai("a", "x", None, refusal="I can't help with that")])
    row, = data.load(p)
    assert row["label"] == "" and row["answer_problem"] == "empty answer (or a refusal)"


def _log_and_humans(tmp_path, n=30):
    """A log of 3 labels x n tickets whose teacher is wrong on every 10th and answers a sentence on one; human
    labels for every ticket."""
    words = {"billing": "invoice charge payment receipt", "shipping": "parcel courier delivery box",
             "account": "login password email username"}
    filler = "monday tuesday friday morning evening urgent again still since yesterday today week team".split()
    recs, humans = [], []
    for lab, ws in words.items():
        for k in range(n):
            w = ws.split()
            text = " ".join([w[k % 4], filler[k % 13], w[(k + 1) % 4], filler[(k * 5 + 3) % 13], filler[(k * 7) % 13]])
            teacher = lab if k % 10 else next(x for x in words if x != lab)
            tid = f"{lab[:2]}{k}"
            recs.append(_openai(tid, text, "I am not sure, sorry." if (lab, k) == ("account", 5) else teacher))
            humans.append(f"{tid},{text},{lab}")
    log = _write(tmp_path / "log.jsonl", recs)
    hum = tmp_path / "humans.csv"
    hum.write_text("ticket_id,text,label\n" + "\n".join(humans) + "\n", encoding="utf-8")
    return log, hum


def test_curate_drops_non_label_answers_and_checks_the_teacher_against_humans(tmp_path):
    log, hum = _log_and_humans(tmp_path)
    cur = data.curate(data.DataConfig(train_path=str(log), production_path=None, human_labels_path=str(hum)),
                      out_dir=tmp_path / "run" / "data")
    card = cur.report
    assert card["teacher"] == {"model": "openai:gpt-4o-2024-08-06", "rows": 90, "answers_not_labels": 1}
    assert cur.tables["teacher_answers"][0]["answer"] == "I am not sure, sorry."
    assert card["human_labels"]["rows"] == 90 and card["human_labels"]["labels"] == ["account", "billing", "shipping"]
    assert card["human_labels"]["matched"] == {"train": len(cur.train), "heldout": len(cur.heldout)}
    t = card["human_labels"]["teacher_heldout"]
    wrong = sum(r["label"] != r["human_label"] for r in cur.heldout)
    assert t["rows"] == len(cur.heldout) and t["right"] == len(cur.heldout) - wrong and wrong > 0
    assert t["ci"][0] < t["accuracy"] < t["ci"][1]
    row = next(r for r in data.drop_summary(card) if r["check"] == "teacher answer not a label")
    assert row["rows found"] == row["rows dropped"] == 1
    back = data.load_split(tmp_path / "run", "heldout")
    assert [r["human_label"] for r in back] == [r["human_label"] for r in cur.heldout]


def test_curate_drops_answers_the_humans_never_use(tmp_path):
    log, hum = _log_and_humans(tmp_path, n=12)
    lines = log.read_text().splitlines()
    rec = json.loads(lines[0])
    rec["response"]["choices"][0]["message"]["content"] = "urgent"
    log.write_text("\n".join([json.dumps(rec)] + lines[1:]) + "\n")
    cur = data.curate(data.DataConfig(train_path=str(log), production_path=None, human_labels_path=str(hum)))
    assert cur.report["teacher"]["answers_not_labels"] == 2
    assert "'urgent' is not a label the human labels use" in {r["why"] for r in cur.tables["teacher_answers"]}
    assert "urgent" not in cur.labels


def test_agreement():
    rows = [{"label": "a", "human_label": "a"}, {"label": "b", "human_label": "a"}, {"label": "a"}]
    got = requestlog.agreement(rows)
    assert (got["rows"], got["right"], got["accuracy"]) == (2, 1, 0.5)
    assert requestlog.agreement(rows, ["a", "a", "b"])["right"] == 2
    assert requestlog.agreement([{"label": "a"}]) is None


def test_the_sample_log_is_the_exports_tickets_answered_by_the_standin():
    """data/request_log.jsonl (tools/make_request_log.py): every ticket of the export, in order, one teacher;
    the Anthropic example holds its first 20 exchanges in the other shape, read to the same rows."""
    log = data.load(DATA / "request_log.jsonl")
    export = data.load(DATA / "tickets_raw.csv")
    assert [(r["id"], r["text"]) for r in log] == [(r["id"], r["text"]) for r in export]
    assert {r["teacher"] for r in log} == {"openai:hosted-standin"}
    right = sum(a["label"] == b["label"] for a, b in zip(log, export))
    assert 0.5 < right / len(log) < 0.9          # a teacher with its own mistakes (measured: 886 of 1,381)
    ant = data.load(DATA / "examples" / "request_log.anthropic.jsonl")
    assert [(r["id"], r["text"], r["label"]) for r in ant] == [(r["id"], r["text"], r["label"]) for r in log[:20]]
    assert {r["teacher"] for r in ant} == {"anthropic:hosted-standin"}
