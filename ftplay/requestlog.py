"""Request logs of a hosted model as training data: each request's ticket and the model's answer (a teacher label).

The commonest real starting point for replacing a hosted model is the log of what was sent to it and what it
answered. Two record shapes are read, one JSON object per line, each {"request": ..., "response": ...} (an
"id" beside them names the row):

- OpenAI Chat Completions: the request body ({"model", "messages": [...]}) and the `chat.completion` object
  ({"model", "choices": [{"message": {"role": "assistant", "content": ...}}]}).
- Anthropic Messages: the request body ({"model", "system", "messages": [...]}) and the `message` object
  ({"type": "message", "model", "content": [{"type": "text", "text": ...}]}).

The ticket is the request's last user turn (a string, or its text parts). The answer is the response's text;
for classification it must read as a label: the label alone, or {"label": ...} (structured output). An
answer that does not (a sentence, a refusal, an empty or cut-off answer) keeps its row with an empty label
and `answer_problem`, so curation counts and drops it and shows why. A record that is not a log record at
all (no response message, a tool call where text was expected, an error response, a second model in the
file) is a problem of the file, named by line and field like every other loader error.
"""
import json

PROVIDERS = ("openai", "anthropic")
MAX_LABEL_WORDS = 4   # "billing", "card payment", "lost or stolen card": more reads as a sentence, not a label


def provider(response):
    """'openai' or 'anthropic' by the response object's shape; None when it is neither."""
    if isinstance(response, dict):
        if "choices" in response:
            return "openai"
        if response.get("type") == "message" or isinstance(response.get("content"), list):
            return "anthropic"
    return None


def _text(content):
    """A message content as text: a string, or the text of a list of parts; None when a part is not text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        parts = [p.get("text") if isinstance(p, dict) and p.get("type") in ("text", "input_text") else None
                 for p in content]
        return None if any(not isinstance(p, str) for p in parts) else "\n".join(parts)
    return None


def ticket(request, n, probs):
    """The request's last user turn as text, or None after naming what is wrong."""
    msgs = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(msgs, list) or not msgs:
        probs.add(n, "request.messages", "missing or empty", "the request body's list of messages")
        return None
    users = [(k, m) for k, m in enumerate(msgs) if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        probs.add(n, "request.messages", "no user turn", "a {\"role\": \"user\"} message with the ticket text")
        return None
    k, m = users[-1]
    text = _text(m.get("content"))
    if text is None:
        probs.add(n, f"request.messages[{k}].content", "is not text (an image, a tool result, or missing)",
                  "the ticket as a string or as text parts")
    return text


def answer(response, kind, n, probs):
    """(text, model) of the response's answer, or (None, None) after naming what is wrong."""
    if not isinstance(response, dict):
        probs.add(n, "response", "missing" if response is None else f"is a {type(response).__name__}",
                  "the provider's response object")
        return None, None
    if "error" in response and response["error"]:
        probs.add(n, "response.error", f"the request failed: {str(response['error'])[:80]}",
                  "only answered requests (drop failed ones from the export)")
        return None, None
    model = response.get("model")
    if kind == "openai":
        choices = response.get("choices")
        msg = choices[0].get("message") if isinstance(choices, list) and choices and isinstance(choices[0], dict) \
            else None
        if not isinstance(msg, dict):
            probs.add(n, "response.choices[0].message", "missing", "the assistant message the model answered with")
            return None, None
        if msg.get("tool_calls") and not msg.get("content"):
            probs.add(n, "response.choices[0].message.tool_calls", "a tool call where text was expected",
                      "a text answer; log the requests of a task that answers in text")
            return None, None
        if msg.get("refusal"):
            return "", model
        content = msg.get("content")
        if content is not None and not isinstance(content, str):
            probs.add(n, "response.choices[0].message.content", f"is a {type(content).__name__}", "a string")
            return None, None
        return content or "", model
    parts = response.get("content")
    if not isinstance(parts, list):
        probs.add(n, "response.content", "missing", "the message's list of content blocks")
        return None, None
    kinds = [p.get("type") if isinstance(p, dict) else type(p).__name__ for p in parts]
    if "tool_use" in kinds:
        probs.add(n, f"response.content[{kinds.index('tool_use')}]", "a tool call (tool_use) where text was expected",
                  "a text answer; log the requests of a task that answers in text")
        return None, None
    text = _text(parts) if parts else ""
    if text is None:
        probs.add(n, "response.content", f"has blocks {kinds}", "text blocks")
        return None, None
    return text, model


def label_of(text):
    """(label, problem) of an answer: the label alone (trailing punctuation and quotes stripped) or
    {"label": ...}; ("", why) for an answer that is not a label."""
    t = (text or "").strip()
    if not t:
        return "", "empty answer (or a refusal)"
    if t.startswith("{"):
        try:
            obj = json.loads(t)
        except json.JSONDecodeError:
            return "", "starts like JSON but does not parse (cut off?)"
        lab = obj.get("label") if isinstance(obj, dict) else None
        if not isinstance(lab, str) or not lab.strip():
            return "", "JSON without a string 'label'"
        t = lab.strip()
    t = t.rstrip(".!").strip().strip("\"'`").rstrip(".!").strip()
    if "\n" in t or len(t.split()) > MAX_LABEL_WORDS:
        return "", f"not a label: more than {MAX_LABEL_WORDS} words"
    return (t, None) if t else ("", "empty answer")


def read(path, text, probs, replies=False, no_label="-"):
    """Rows {"id", "text", "label", "source", "teacher"} of a log (`text`: the file's contents). A
    classification row whose answer is not a label has label "" and "answer_problem"; a reply row has
    "output" (the answer as written) and the label `no_label` (dataload.NO_LABEL: one group)."""
    rows, first = [], None
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            probs.add(n, "(json)", f"not valid JSON ({e.msg} at column {e.colno})", "one log record per line")
            continue
        if not isinstance(rec, dict) or "request" not in rec:
            keys = sorted(rec) if isinstance(rec, dict) else type(rec).__name__
            probs.add(n, "(record)", f"has keys {keys}", "{\"request\": ..., \"response\": ...} as in the lines before")
            continue
        kind = provider(rec.get("response"))
        failed = isinstance(rec.get("response"), dict) and rec["response"].get("error")
        if kind is None and rec.get("response") is not None and not failed:
            probs.add(n, "response", "neither a chat.completion (choices) nor a Messages response (content blocks)",
                      f"one of {', '.join(PROVIDERS)}'s response objects")
            continue
        text_in = ticket(rec["request"], n, probs)
        out, model = answer(rec.get("response"), kind, n, probs)
        if text_in is None or out is None:
            continue
        model = model or (rec["request"].get("model") if isinstance(rec["request"], dict) else None) or "unnamed"
        if first is None:
            first = (model, n)
        elif model != first[0]:
            probs.add(n, "response.model", f"{model!r}, but line {first[1]} has {first[0]!r}",
                      "one teacher per file: split the log by model and train on one")
            continue
        rid = rec.get("id")
        rid = str(rid) if isinstance(rid, (str, int)) and str(rid) else f"{path.stem}:{n}"
        row = {"id": rid, "text": text_in, "source": f"{path.name}:{n}", "teacher": f"{kind}:{model}"}
        if replies:
            if out.strip():
                rows.append({**row, "label": no_label, "output": out})
            else:
                rows.append({**row, "label": no_label, "output": "", "answer_problem": "empty answer (or a refusal)"})
            continue
        label, problem = label_of(out)
        bad = {"answer_problem": problem, "answer_raw": out[:200]} if problem else {}
        rows.append({**row, "label": label, **bad})
    if not rows and not probs.items:
        probs.add(1, "(file)", "no records", "one log record per line")
    return rows


# ----------------------------------------------------------------- a teacher's labels against human ones
def human_index(rows):
    """{("id", id) or ("text", normalised text): label} of a human-labelled file's rows."""
    from ftplay.quality import normalise

    out = {}
    for r in rows:
        out.setdefault(("id", r["id"]), r["label"])
        out.setdefault(("text", normalise(r["text"])), r["label"])
    return out


def attach(rows, index):
    """Give each row the human label of the same ticket ("human_label": by id, else by normalised text);
    returns how many got one. The texts compared are as loaded (before redaction), so call it first."""
    from ftplay.quality import normalise

    n = 0
    for r in rows:
        lab = index.get(("id", r["id"]), index.get(("text", normalise(r["text"]))))
        if lab is not None:
            r["human_label"] = lab
            n += 1
    return n


def agreement(rows, predicted=None):
    """Share of the human-labelled `rows` whose label (or `predicted`, a list beside `rows`) is the human one:
    {"rows", "right", "accuracy", "ci"} (95% Wilson), or None when no row has a human label."""
    from ftplay.numbers import wilson

    pairs = [(r["human_label"], r["label"] if predicted is None else p)
             for r, p in zip(rows, predicted if predicted is not None else rows) if r.get("human_label")]
    if not pairs:
        return None
    right = sum(h == p for h, p in pairs)
    return {"rows": len(pairs), "right": right, "accuracy": round(right / len(pairs), 4),
            "ci": [round(x, 4) for x in wilson(right, len(pairs))]}


def reading(card):
    """02's line on where the labels come from: people, or a hosted model's answers (and how right they are where
    people labelled the same tickets)."""
    t = card.get("teacher")
    if not t:
        return "labels: as given in the file (people's, not a request log's answers)"
    out = (f"labels: {t['model']}'s answers from its request log ({t['rows']} rows, {t['answers_not_labels']} "
           "answers that are not labels dropped)")
    h = card.get("human_labels") or {}
    th = h.get("teacher_heldout")
    if th:
        out += (f"; on the {th['rows']} held-out rows people also labelled it is right on {th['accuracy']:.1%} "
                f"({th['ci'][0]:.1%} to {th['ci'][1]:.1%}): training on its answers teaches its mistakes too")
    elif not h:
        out += "; no human labels given (HUMAN_LABELS_PATH), so how right the teacher is stays unmeasured"
    return out
