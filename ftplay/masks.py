"""The loss mask: each conversation tokenized with only its answer trained, and the checks that refuse a broken one."""
from . import prompts
from .errors import FtplayError


def tokenize_chat(tokenizer, messages_list, max_seq_len):
    """input_ids and labels (-100 except on the answer and its end-of-turn token) for each
    conversation, in the base model's own template (prompts.training_example: its generation
    markers, TRL's training variant, or the rendering difference). Raises naming the cause when
    the mask is broken."""
    rows, truncated = [], 0
    how = prompts.plan(tokenizer)
    for msgs in messages_list:
        ids, mask = prompts.training_example(tokenizer, msgs, how)
        if len(ids) > max_seq_len:
            truncated += 1
            if not any(mask[:max_seq_len]):
                continue  # the cut removed the whole answer: nothing left to learn from this one
            ids, mask = ids[:max_seq_len], mask[:max_seq_len]
        labels = [t if m else -100 for t, m in zip(ids, mask)]
        rows.append({"input_ids": ids, "labels": labels})
    if messages_list and not rows:
        raise FtplayError(f"every example is longer than MAX_SEQ_LEN={max_seq_len} tokens, answer included; "
                          "raise MAX_SEQ_LEN in the parameters cell", "nothing to train on")
    check_mask(tokenizer, rows)
    return rows, truncated


def mask_report(tokenizer, messages_list, max_seq_len):
    """What the loss mask trains, checked per conversation against its own answer: the trained tokens
    must decode to the whole answer followed by an end-of-turn token, and no prompt token may be
    trained (a reply is ~60 tokens where a label is 2: a mask cut short or run long would still train
    something). Conversations longer than `max_seq_len` are cut in training and counted apart.
    Returns {"examples", "checked", "cut", "whole_answer_trained", "ends_with_end_of_turn",
    "prompt_tokens_trained", "answer_tokens": {"p50", "max"}}; FtplayError naming the first bad one."""
    how = prompts.plan(tokenizer)
    lengths, whole, ends, prompt_trained, cut, bad = [], 0, 0, 0, 0, None
    for msgs in messages_list:
        ids, mask = prompts.training_example(tokenizer, msgs, how)
        if len(ids) > max_seq_len:
            cut += 1
            continue
        trained = [t for t, m in zip(ids, mask) if m]
        lengths.append(len(trained))
        n_prompt = len(prompts.prompt_ids(tokenizer, msgs[:-1]))
        prompt_trained += sum(mask[:n_prompt])
        end = bool(trained) and trained[-1] in how.stop_ids
        said = tokenizer.decode(trained[:-1] if end else trained).strip()
        ok = end and said.split() == msgs[-1]["content"].split()   # spacing aside (a template may trim)
        ends += end
        whole += ok
        if not ok and bad is None:
            bad = (f"trained {said[:80]!r}{'' if end else ' (no end of turn)'}, "
                   f"the answer is {msgs[-1]['content'].strip()[:80]!r}")
    checked = len(lengths)
    problems = []
    if prompt_trained:
        problems.append(f"{prompt_trained} prompt tokens are trained: the mask must start after the generation prompt")
    if whole < checked:
        problems.append(f"{checked - whole} of {checked} examples do not train exactly their answer and its end of "
                        f"turn; first: {bad}")
    if problems:
        raise FtplayError(problems, "broken training labels")
    lengths.sort()
    return {"examples": len(messages_list), "checked": checked, "cut": cut, "whole_answer_trained": whole,
            "ends_with_end_of_turn": ends, "prompt_tokens_trained": prompt_trained,
            "answer_tokens": {"p50": lengths[len(lengths) // 2] if lengths else 0, "max": max(lengths, default=0)}}


def check_mask(tokenizer, rows):
    """Fail loudly instead of training on a broken loss mask."""
    problems = []
    if not any(label != -100 for r in rows for label in r["labels"]):
        problems.append("no token is trained: the assistant mask is all zero; check that every conversation "
                        "ends with a non-empty assistant answer and that the chat template renders it")
    eos = tokenizer.eos_token_id
    if eos is not None and rows and not any(eos in [label for label in r["labels"] if label != -100] for r in rows):
        why = " (pad equals EOS and was masked)" if tokenizer.pad_token_id == eos else ""
        problems.append(f"the end-of-turn token {tokenizer.eos_token!r} is never trained{why}: the model "
                        "would not learn to stop; the template's generation block (or the rendered answer) "
                        "must end with it")
    bos = tokenizer.bos_token_id
    if bos is not None and any(list(r["input_ids"][:2]) == [bos, bos] for r in rows):
        problems.append(f"a sequence starts with two BOS tokens ({tokenizer.bos_token!r} x2): the chat template "
                        "writes BOS and the tokenizer added another; tokenize rendered text with "
                        "add_special_tokens=False (prompts.encode)")
    # A prompt in the loss shows as training from the first token on. (Not "more than half of the tokens
    # trained": a long reply to a short question, Bitext's 400-token answers to 10-token queries, is that.)
    for r in rows[:50]:
        if len(r["labels"]) > 1 and r["labels"][0] != -100:
            problems.append("an example is trained from its first token: prompt tokens are in the loss; check "
                            "the template's generation markers")
            break
    if problems:
        raise FtplayError(problems, "broken training labels")
