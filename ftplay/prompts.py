"""The one prompt: messages, rendered token ids and the trained-token mask, the label schema.

Training (02/03), the baselines and scoring (00/04), serving (05) and the exports (hosted, Axolotl)
all build a ticket's conversation here and render it with the base model's own chat template,
so the prompt a model is trained on is token for token the prompt it is scored and served with.

The trained tokens are the difference between the conversation rendered with and without its
final answer, cut after the first end-of-turn token: the answer and its end of turn, whatever the
family. A training sequence is always the serving prompt followed by those tokens, also where a
template renders earlier turns differently once an answer follows (Mistral v0.3 drops the system
prompt then: `prefix_preserving` says so). Where generation markers exist they are a second opinion, checked (`plan`):
- the tokenizer's own template has `{% generation %}` markers (the embedded model);
- TRL knows the family and ships a training variant with markers (`get_training_chat_template`,
  e.g. Qwen2.5), which must render the same ids as the original;
- otherwise (Llama 3.1, Mistral v0.3: original templates without markers) the difference alone.
Every rendering passes `TEMPLATE_KWARGS` (a fixed `date_string`), so a template that writes the
date (Llama 3.x) renders the same prompt at training time and on any later serving day.
"""
import json
from dataclasses import dataclass

from .errors import FtplayError

DEFAULT_SYSTEM_PROMPT = "You triage customer support tickets. Answer with exactly one category: {labels}."
# Llama 3.1's template prints "Today Date: {date_string}" (default "26 Jul 2024"); Llama 3.2's
# uses strftime_now() when date_string is unset. One fixed value everywhere, serving included.
TEMPLATE_KWARGS = {"date_string": "26 Jul 2024"}
MASK_METHODS = ("template markers", "trl training template", "render difference")


# ---------------------------------------------------------------- messages
REPLY_INTRO = "You answer customer support tickets."


def reply_system_text(fmt, system_prompt=None):
    """The reply task's system prompt: `system_prompt` when given, else REPLY_INTRO and the format's
    own description (ftplay/formats.py), so the prompt states the exact lines a reply must have."""
    return system_prompt or f"{REPLY_INTRO} {fmt.description}"


def reply_messages(text, fmt, reply=None, *, system_prompt=None, shots=()):
    """Chat messages for one ticket of the reply task: the format's system prompt, optional (text,
    reply) shots, the ticket, and the reply when given (a training example)."""
    return messages(text, (), reply, system_prompt=reply_system_text(fmt, system_prompt), shots=shots)


def system_text(labels, system_prompt=None):
    """The system prompt with `{labels}` replaced by the comma-separated label list. Plain
    replacement, not str.format: a prompt that shows JSON such as {"label": ...} stays as written."""
    return (system_prompt or DEFAULT_SYSTEM_PROMPT).replace("{labels}", ", ".join(labels))


def messages(text, labels, label=None, *, system_prompt=None, shots=()):
    """Chat messages for one ticket: system prompt, optional (text, label) shots, the ticket, and
    the answer when `label` is given (a training example)."""
    msgs = [{"role": "system", "content": system_text(labels, system_prompt)}]
    for shot_text, shot_label in shots:
        msgs += [{"role": "user", "content": shot_text}, {"role": "assistant", "content": shot_label}]
    msgs.append({"role": "user", "content": text})
    if label is not None:
        msgs.append({"role": "assistant", "content": label})
    return msgs


def instruction(row, labels, system_prompt=None):
    """Alpaca-style record (instruction = system prompt, input = ticket, output = label)."""
    return {"instruction": system_text(labels, system_prompt), "input": row["text"], "output": row["label"]}


def label_schema(labels, name="triage"):
    """OpenAI `response_format` restricting the answer to {"label": one of labels}."""
    return {"type": "json_schema", "json_schema": {
        "name": name, "strict": True, "schema": {
            "type": "object", "properties": {"label": {"type": "string", "enum": list(labels)}},
            "required": ["label"], "additionalProperties": False}}}


def parse_structured(raw, labels):
    """The label in a structured answer ({"label": ...}), or None when it is not one of `labels`."""
    try:
        label = json.loads(raw).get("label")
    except (ValueError, AttributeError):
        return None
    return label if label in labels else None


# ---------------------------------------------------------------- rendering
def render(tokenizer, msgs, add_generation_prompt=False, chat_template=None):
    """The conversation as text in the model's chat template (with TEMPLATE_KWARGS)."""
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=add_generation_prompt,
                                         chat_template=chat_template, **TEMPLATE_KWARGS)


def encode(tokenizer, text):
    """Token ids of rendered text. The template writes BOS itself where the family has one, so the
    tokenizer must not add another (add_special_tokens=False); checked."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    check_bos(ids, tokenizer)
    return ids


def prompt_ids(tokenizer, msgs):
    """Token ids of the prompt a model answers (the generation prompt appended)."""
    return encode(tokenizer, render(tokenizer, msgs, add_generation_prompt=True))


def check_bos(ids, tokenizer):
    """Fail loudly on a sequence that starts with two BOS tokens (a template that writes BOS,
    tokenized again with add_special_tokens=True: unsloth#10312 found it in 11 of 30 chat models)."""
    bos = tokenizer.bos_token_id
    if bos is not None and len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
        raise FtplayError(f"the sequence starts with two BOS tokens ({tokenizer.bos_token!r} x2): the chat "
                          "template already writes BOS, so tokenize its text with add_special_tokens=False",
                          "double BOS")
    return ids


def end_of_turn_ids(tokenizer):
    """Ids that end an assistant turn, as vLLM stops on them: the tokenizer's EOS plus the model
    folder's generation_config eos ids (Llama 3.1: <|end_of_text|>, <|eom_id|>, <|eot_id|>; Qwen2.5:
    <|im_end|>, <|endoftext|>). Without that file, the usual end-of-turn tokens the tokenizer has
    as added (special) tokens."""
    from pathlib import Path

    ids = {tokenizer.eos_token_id} - {None}
    gen = Path(str(getattr(tokenizer, "name_or_path", ""))) / "generation_config.json"
    if gen.is_file():
        eos = json.loads(gen.read_text(encoding="utf-8")).get("eos_token_id")
        return ids | set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    added = {t.content: i for i, t in tokenizer.added_tokens_decoder.items()}
    return ids | {added[t] for t in ("<|eot_id|>", "<|im_end|>", "</s>", "<|end_of_text|>", "<|eom_id|>") if t in added}


# ---------------------------------------------------------------- training masks
@dataclass(frozen=True)
class Plan:
    """How a tokenizer's conversations become trained tokens (see the module docstring)."""
    method: str                 # one of MASK_METHODS
    mask_template: str | None   # TRL's training variant, used for the mask only
    stop_ids: frozenset         # end-of-turn ids: the trained answer ends at the first of them


def _has_markers(template):
    return bool(template) and "{% generation %}" in template.replace("{%-", "{%").replace("-%}", "%}")


def plan(tokenizer):
    """The Plan for this tokenizer's chat template."""
    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    stop = frozenset(end_of_turn_ids(tokenizer))
    if _has_markers(template):
        return Plan("template markers", None, stop)
    try:
        from trl.chat_template_utils import get_training_chat_template

        swapped = get_training_chat_template(tokenizer)
    except (ImportError, ValueError, TypeError, AttributeError):  # TRL does not know it: the difference alone
        swapped = None
    if swapped:
        return Plan("trl training template", swapped, stop)
    return Plan("render difference", None, stop)


def training_example(tokenizer, msgs, how=None):
    """(input_ids, mask) of a conversation whose last turn is the answer: the serving prompt
    (prompt_ids) followed by the answer as the original template renders it; mask 1 on the answer
    and its end-of-turn token only (what follows the generation prompt, up to the first stop id).
    Generation markers (the template's own, or TRL's training variant) are checked against that
    mask: same ids, every answer token marked. TRL's Qwen2.5 variant also marks the newline before
    the answer (the generation prompt already holds it) and the one after <|im_end|> (a served model
    never generates it): those stay untrained."""
    if msgs[-1]["role"] != "assistant":
        raise FtplayError("a training conversation must end with the assistant's answer", "bad example")
    how = how or plan(tokenizer)
    ids = encode(tokenizer, render(tokenizer, msgs))
    prompt = prompt_ids(tokenizer, msgs[:-1])
    if ids[:len(prompt)] == prompt:
        answer = ids[len(prompt):]
    else:
        # Mistral v0.3's template writes the system prompt into the LAST user turn only: once the
        # answer follows, that turn is no longer last and the system prompt vanishes from the
        # rendering. Training on that would train a prompt serving never sends. So the sequence is
        # the serving prompt plus the answer's tokens, read off the last exchange rendered alone.
        tail = [m for m in msgs if m["role"] != "system"][-2:]
        t_ids, t_prompt = encode(tokenizer, render(tokenizer, tail)), prompt_ids(tokenizer, tail[:-1])
        if t_ids[:len(t_prompt)] != t_prompt:
            raise FtplayError(
                "the chat template renders the prompt differently once the answer is added, so the trained "
                f"tokens cannot be found; the prompt ends {tokenizer.decode(t_prompt[-8:])!r}, the conversation "
                f"has {tokenizer.decode(t_ids[max(0, len(t_prompt) - 8): len(t_prompt)])!r} there",
                "template not prefix-preserving")
        answer = t_ids[len(t_prompt):]
        ids = prompt + answer
    cut = next((i + 1 for i, t in enumerate(answer) if t in how.stop_ids), len(answer))
    mask = [0] * len(prompt) + [1] * cut + [0] * (len(answer) - cut)
    if how.method != "render difference" and ids[:len(prompt)] == prompt:
        out = tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
                                            chat_template=how.mask_template, **TEMPLATE_KWARGS)
        if list(out["input_ids"]) != ids:
            raise FtplayError(f"the {how.method} renders other tokens than the model's own template: training on "
                              "it would train a prompt that serving never sends", "training template differs")
        unmarked = [tokenizer.decode([t]) for t, m, g in zip(ids, mask, out["assistant_masks"]) if m and not g]
        if unmarked:
            raise FtplayError(f"the {how.method}'s generation block leaves answer tokens {unmarked} outside it",
                              "training template differs")
    return ids, mask


def prefix_preserving(tokenizer):
    """Whether the template renders a conversation ending in an answer as its serving prompt plus
    the answer (False for Mistral v0.3: the system prompt is dropped; see training_example)."""
    msgs = messages("x", ["y"], "y")
    return encode(tokenizer, render(tokenizer, msgs))[:len(p := prompt_ids(tokenizer, msgs[:-1]))] == p


def template_name(tokenizer):
    """Which known template the tokenizer carries: a file stem of TRL's originals (`llama3_1`,
    `qwen2_5`, ...) or of ftplay/templates (`mistral_v0_3`), `ftplay_chatml` for the embedded
    model's, else None (a template nobody here has seen: still trained by render difference)."""
    from pathlib import Path

    text = tokenizer.chat_template
    if not isinstance(text, str):
        return None
    from . import tinymodel

    if text == tinymodel.CHAT_TEMPLATE:
        return "ftplay_chatml"
    dirs = [Path(__file__).parent / "templates"]
    try:
        import trl

        dirs.append(Path(trl.__file__).parent / "chat_templates")
    except ImportError:
        pass
    for d in dirs:
        for f in sorted(d.glob("*.jinja")):
            if not f.stem.endswith("_training") and f.read_text(encoding="utf-8") == text:
                return f.stem
    return None


def describe(tokenizer):
    """What a run records about the template: its identity, how training masks it, and whether a
    rendered training conversation equals the serving prompt plus the answer."""
    import hashlib

    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else json.dumps(
        tokenizer.chat_template, sort_keys=True)
    how = plan(tokenizer)
    return {"serving_template": template_name(tokenizer),
            "template_hash": hashlib.sha256((template or "").encode()).hexdigest()[:16], "mask_method": how.method,
            "training_template_hash": hashlib.sha256(how.mask_template.encode()).hexdigest()[:16]
            if how.mask_template else None,
            "prefix_preserving": prefix_preserving(tokenizer),
            "stop_tokens": [tokenizer.convert_ids_to_tokens(i) for i in sorted(how.stop_ids)],
            "bos_token": tokenizer.bos_token, "template_kwargs": dict(TEMPLATE_KWARGS)}


def answer_ids(tokenizer, label, how=None):
    """The tokens a model produces for `label` after the generation prompt, end-of-turn included,
    exactly as training tokenizes them in context (the family's spacing before an answer changes
    a label's tokens: 'billing' alone and after Mistral's '[/INST]' are different tokens)."""
    ids, mask = training_example(tokenizer, messages("x", [label], label), how)
    return [t for t, m in zip(ids, mask) if m]


def greedy_config(tokenizer, max_new_tokens):
    """transformers GenerationConfig for greedy answers that stop at end of turn, replacing the
    model's sampling defaults (Qwen2.5 ships repetition_penalty 1.05, Llama 3.1 temperature 0.6),
    so transformers answers what a temperature-0 request to vLLM answers."""
    from transformers import GenerationConfig

    # transformers fills every field left unset (None) from the model's generation_config, so the
    # penalty must be set to 1.0 explicitly (vLLM requests say the same: serve_client.Client.extra_body)
    return GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, repetition_penalty=1.0,
                            temperature=1.0, top_p=1.0, top_k=50,  # neutral: no "flags ignored" warning
                            eos_token_id=sorted(end_of_turn_ids(tokenizer)), pad_token_id=tokenizer.pad_token_id)
