"""Rows as the model trains on them: the task's system prompt, each row's conversation, tokens and loss mask.

02's task-aware helpers, split from `ftplay.data` (which re-exports them, so `data.conversation` still
works): rows read as a DataConfig says, the chat each row trains as (ticket and label, or ticket and
reply), its token counts, the check that the loss mask trains exactly the answer, the curated splits
written as chat JSONL with the data card, what curation dropped, in words, and the seeded slices later
stages take of a split (an eval-loss slice of train, a sample of a test file).
"""
import random
from pathlib import Path

from ftplay import formats, prompts, rundir, stages
from ftplay.dataload import load, write_jsonl
from ftplay.errors import ConfigError


def load_with(cfg, path=None, format=None):
    """Rows of `path` (default TRAIN_PATH) read as `cfg` says: its format and columns, with "output"
    (the reply) for the reply task."""
    return load(path or cfg.train_path, format or cfg.format, cfg.text_field, cfg.label_field,
                cfg.output_field if cfg.task == stages.REPLY else None)


def system_prompt_for(task, system_prompt="", reply_format="house"):
    """The system prompt a task trains and serves with: `system_prompt` when given; else classification's
    default (which lists the labels) or the reply format's own (prompts.reply_system_text)."""
    if task == stages.REPLY:
        return prompts.reply_system_text(formats.get(reply_format), system_prompt or None)
    return system_prompt or prompts.DEFAULT_SYSTEM_PROMPT


def conversation(row, labels, system_prompt=None, reply_format="house"):
    """A row's training conversation: the ticket and its reply for a reply-task row (one with "output"),
    else the ticket and its label."""
    if "output" in row:
        return prompts.reply_messages(row["text"], formats.get(reply_format), row["output"],
                                      system_prompt=system_prompt)
    return prompts.messages(row["text"], labels, row["label"], system_prompt=system_prompt)


def token_counts(rows, tokenizer, labels, system_prompt=None, reply_format="house"):
    """(sequence, prompt, answer) tokens of each row as training tokenizes it (prompts.training_example:
    the serving prompt, then the answer and its end of turn, the trained tokens); None without a tokenizer."""
    if tokenizer is None:
        return None
    how, out = prompts.plan(tokenizer), []
    for r in rows:
        ids, mask = prompts.training_example(tokenizer, conversation(r, labels, system_prompt, reply_format), how)
        out.append((len(ids), mask.index(1) if 1 in mask else len(ids), sum(mask)))
    return out


def token_lengths(rows, tokenizer, labels, system_prompt=None, reply_format="house"):
    """Tokens of each row as training tokenizes it (prompts.training_example: the serving prompt and
    the answer, which for Mistral v0.3 is longer than its template's rendering of the conversation);
    None when there is no tokenizer."""
    counts = token_counts(rows, tokenizer, labels, system_prompt, reply_format)
    return None if counts is None else [c[0] for c in counts]


# =========================================================================== writing the curated splits
def write_curated(cur, out_dir, system_prompt=None):
    """Write the splits as chat JSONL ({"id", "messages"}; reply rows {"id", "label", "messages"} ending in
    the reply), data_card.json and tables.json into out_dir."""
    out_dir = Path(out_dir)
    for name in ("train", "heldout", "production"):
        write_jsonl(out_dir / f"{name}.jsonl",
                    [{"id": r["id"], **({"label": r["label"]} if "output" in r else {}),
                      **({"human_label": r["human_label"]} if "human_label" in r else {}),
                      "messages": conversation(r, cur.labels, system_prompt, cur.reply_format)}
                     for r in getattr(cur, name)])
    rundir.write_json(out_dir / "tables.json", cur.tables)
    rundir.write_json(out_dir / "data_card.json", {**cur.report, "labels_list": cur.labels})
    return out_dir




def drop_summary(r):
    """What curation dropped and why, one row per check in the order they ran (`r`: the data card)."""
    teacher = r.get("teacher") or {}
    steps = [("teacher answer not a label", teacher.get("answers_not_labels"), teacher.get("answers_not_labels"),
              f"{teacher.get('model')}'s answer was a sentence, a refusal, empty or a label nobody uses"),
             ("trivial text", r["trivial"], r["trivial"], "nothing to learn from: empty, one word, a few characters"),
             ("trivial reply", r.get("trivial_outputs"), r.get("trivial_outputs"), "'ok', 'Done.': no reply to learn"),
             ("personal data", r["pii_rows"], 0, "redacted in place" if r["pii_redacted"] else
              "kept, not redacted: set REDACT_PII=True, or say why in PII_ACCEPTED"),
             ("conflicting answers", r["conflict_rows"], r["conflict_rows"],
              "the same input taught two answers: every copy goes, nobody knows which is right"),
             ("exact duplicates", r["exact_duplicates"], r["exact_duplicate_rows_dropped"],
              "the first copy stays; copies would weigh one ticket several times and leak across the split"),
             ("reply not in the format", r.get("invalid_format"), r.get("invalid_format"),
              f"not valid in REPLY_FORMAT={r.get('reply_format')!r}: training on it teaches the format's mistakes"),
             ("longer than MAX_SEQ_LEN", r["truncated"], r["truncated"] if r["truncated_dropped"] else 0,
              f"over {r['max_seq_len']} tokens: training would cut the answer off" if r["truncated_dropped"] else
              "kept (DROP_TRUNCATED=False): training cuts them"),
             ("near duplicates", r["near_duplicate_rows"], r["near_duplicate_rows_dropped"],
              "rewordings: the first of each label stays"),
             ("label looks wrong", (r.get("label_issues") or {}).get("flagged"),
              (r.get("label_issues") or {}).get("dropped"),
              "listed for review below (LABEL_ISSUES: flag); 'drop' removes the training rows"
              if (r.get("label_issues") or {}).get("mode") == "flag" else
              "training rows dropped (LABEL_ISSUES: drop); held-out rows kept")]
    return [{"check": c, "rows found": found, "rows dropped": dropped, "why": why}
            for c, found, dropped, why in steps if found is not None]


def mask_check(tokenizer, msgs, input_ids, mask):
    """Whether a training example (prompts.training_example: mask 1 where a token carries loss) trains exactly
    the answer (the last assistant turn) and the end-of-turn token after it, nothing before or after."""
    trained = [t for t, m in zip(input_ids, mask) if m]
    first = next((i for i, m in enumerate(mask) if m), len(mask))
    answer = msgs[-1]["content"]
    return {"answer_chars": len(answer), "sequence_tokens": len(input_ids), "trained_tokens": len(trained),
            "trained_text_is_the_answer": tokenizer.decode(trained[:-1]).strip() == answer.strip(),
            "ends_with_end_of_turn": bool(trained) and trained[-1] in prompts.end_of_turn_ids(tokenizer),
            "one_contiguous_block": all(mask[first:first + len(trained)]),
            "end_of_turn_token": tokenizer.decode(trained[-1:]) if trained else None}


# =========================================================================== slices of a split
def subsample(rows, n, seed=0):
    """A seeded random `n` of `rows` in their original order (all when n is 0 or >= len): a test
    file sorted by label keeps every label in the sample, which its first n rows would not."""
    if not n or n >= len(rows):
        return list(rows)
    keep = set(random.Random(seed).sample(range(len(rows)), n))
    return [r for i, r in enumerate(rows) if i in keep]


def holdout_slice(rows, fraction, seed=0):
    """(rest, slice): a seeded random `fraction` of rows set aside, e.g. for eval loss during training."""
    if not 0 <= fraction < 1:
        raise ConfigError(f"EVAL_FRACTION={fraction} must be in [0, 1)")
    idx = list(range(len(rows)))
    random.Random(seed).shuffle(idx)
    k = int(round(len(rows) * fraction))
    chosen = set(idx[:k])
    return [r for i, r in enumerate(rows) if i not in chosen], [r for i, r in enumerate(rows) if i in chosen]
