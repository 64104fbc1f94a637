#!/usr/bin/env python3
"""Write the sample request log: the stand-in for the hosted model asked to triage every ticket of the export.

    .venv/bin/python tools/make_request_log.py   # data/request_log.jsonl, data/examples/request_log.anthropic.jsonl
    .venv/bin/python tools/make_request_log.py --out /tmp/d && diff /tmp/d/request_log.jsonl data/request_log.jsonl

What a team replacing a hosted model starts from: what it sent and what it got back. Each line is an OpenAI
Chat Completions record {"id", "request", "response"}: the request as the team's code sent it (the default triage
system prompt listing the labels, the ticket as written, PII and duplicates included, as a real log has them)
and the `chat.completion` the stand-in answered (greedy, free text, no schema: some answers are JSON, some are
not labels at all, and many are wrong: the teacher's own mistakes). The example file holds the first 20 records
in Anthropic's Messages shape, so both readers have a sample. The stand-in is built offline and seeded
(ftplay/hosted_standin.py), so the same checkout writes the same bytes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ftplay import hosted_standin, prompts, requestlog  # noqa: E402

BATCH = 32
MAX_TOKENS = 16   # a label, or {"label": "..."}: 9 tokens at most with the embedded tokenizer
EXAMPLES = 20


def answers(model_dir, conversations):
    """The model's greedy answer to each conversation (left-padded batches, no sampling)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    for i in range(0, len(conversations), BATCH):
        texts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
                 for m in conversations[i: i + BATCH]]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=MAX_TOKENS, do_sample=False, pad_token_id=tok.pad_token_id)
        width = enc["input_ids"].shape[1]
        for row, mask in zip(gen, enc["attention_mask"]):
            new = row[width:]
            out.append((tok.decode(new, skip_special_tokens=True).strip(), int(mask.sum()),
                        int((new != tok.pad_token_id).sum())))
        print(f"\r{min(i + BATCH, len(conversations))}/{len(conversations)} answered", end="", file=sys.stderr)
    print(file=sys.stderr)
    return out


def openai_record(tid, msgs, answer, n_in, n_out, created):
    digest = hashlib.sha256(f"{tid}|{answer}".encode()).hexdigest()[:24]
    return {"id": tid,
            "request": {"model": hosted_standin.SERVED_NAME, "messages": msgs, "temperature": 0,
                        "max_tokens": MAX_TOKENS},
            "response": {"id": f"chatcmpl-{digest}", "object": "chat.completion", "created": created,
                         "model": hosted_standin.SERVED_NAME,
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": answer, "refusal": None}}],
                         "usage": {"prompt_tokens": n_in, "completion_tokens": n_out,
                                   "total_tokens": n_in + n_out}}}


def anthropic_record(rec):
    """The same exchange as the Messages API logs it: the system prompt beside the messages, text blocks."""
    msgs, resp = rec["request"]["messages"], rec["response"]
    usage = resp["usage"]
    return {"id": rec["id"],
            "request": {"model": hosted_standin.SERVED_NAME, "max_tokens": MAX_TOKENS,
                        "system": msgs[0]["content"],
                        "messages": [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]}
                                     for m in msgs[1:]]},
            "response": {"id": "msg_" + resp["id"].split("-", 1)[1], "type": "message", "role": "assistant",
                         "model": hosted_standin.SERVED_NAME,
                         "content": [{"type": "text", "text": resp["choices"][0]["message"]["content"]}],
                         "stop_reason": "end_turn", "stop_sequence": None,
                         "usage": {"input_tokens": usage["prompt_tokens"],
                                   "output_tokens": usage["completion_tokens"]}}}


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    tmp.replace(path)


def main(out: Path) -> None:
    import csv
    from datetime import datetime, timezone

    rows = list(csv.DictReader((ROOT / "data" / "tickets_raw.csv").open(encoding="utf-8", newline="")))
    labels = sorted({r["label"] for r in rows})
    conversations = [prompts.messages(r["text"], labels) for r in rows]
    got = answers(hosted_standin.build(), conversations)
    records = [openai_record(r["ticket_id"], m, a, n_in, n_out,
                             int(datetime.fromisoformat(r["created_at"]).replace(tzinfo=timezone.utc).timestamp()))
               for r, m, (a, n_in, n_out) in zip(rows, conversations, got)]
    write_jsonl(out / "request_log.jsonl", records)
    write_jsonl(out / "examples" / "request_log.anthropic.jsonl", [anthropic_record(r) for r in records[:EXAMPLES]])
    from collections import Counter

    kinds = Counter("json" if a.startswith("{") else "label" if a in labels else "other" for a, _, _ in got)
    truth = {r["ticket_id"]: r["label"] for r in rows}
    right = sum(requestlog.label_of(a)[0] == truth[r["ticket_id"]] for r, (a, _, _) in zip(rows, got))
    print(f"{len(records)} records; answers: {dict(kinds)}; the teacher agrees with the export's labels on "
          f"{right} ({right / len(rows):.1%})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "data", help="folder to write (default data/)")
    main(ap.parse_args().out)
