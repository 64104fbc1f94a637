"""Reply formats of the generation task: the parts a reply must have, how to write one, how to parse one.

A format is a list of named parts, each a regular expression. Two kinds:
- `exact` (the project's house format): the reply is exactly the parts, one per line, in order;
  named groups are the fields a reply restates (the customer's name, the topic, the ticket's details,
  the next step), compared field by field with the reference reply.
- `as_reference` (a format learnt from a dataset's own replies, e.g. Bitext's): a reply is valid
  when it has every part its reference reply has and ends with a complete sentence; no fields.
Notebooks 00/04 score replies with these (ftplay/replies.py), 02 checks the training replies
against them, and tools/sampledata writes the sample replies with `render`, so the format is
defined here once.
"""
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Part:
    name: str
    pattern: str       # a regular expression; named groups are fields
    what: str          # one line for people: what the part is

    @property
    def regex(self):
        return re.compile(self.pattern, re.MULTILINE | re.DOTALL if "(?s)" in self.pattern else re.MULTILINE)


@dataclass(frozen=True)
class Format:
    name: str
    parts: tuple
    kind: str                      # "exact" | "as_reference"
    fields: tuple = ()             # named groups compared with the reference's (exact formats)
    description: str = ""          # how a prompt describes the format to a model
    line_templates: tuple = field(default=())   # exact formats: each line with {field} slots (`render`)


HOUSE = Format(
    name="house",
    kind="exact",
    parts=(
        Part("greeting", r"^Hello (?P<name>[^,\n]+),$", "Hello <first name, or 'there'>,"),
        Part("topic", r"^Thank you for your message about (?P<topic>[^\n]+)\.$",
             "Thank you for your message about <topic>."),
        Part("details", r"^Details: (?P<details>[^\n]+)$", "Details: <the facts the ticket states, or 'none'>"),
        Part("next_step", r"^Next step: (?P<next_step>[^\n]+)$", "Next step: <what happens next>"),
        Part("sign_off", r"^Kind regards,\nSupport Team$", "Kind regards, / Support Team (two lines)"),
    ),
    fields=("name", "topic", "details", "next_step"),
    line_templates=("Hello {name},", "Thank you for your message about {topic}.", "Details: {details}",
                    "Next step: {next_step}", "Kind regards,", "Support Team"),
    description=("Reply in the house format, exactly these six lines:\n"
                 "Hello <the customer's first name, or 'there'>,\n"
                 "Thank you for your message about <the topic>.\n"
                 "Details: <the facts the ticket states, separated by '; ', or 'none'>\n"
                 "Next step: <what support does next>\n"
                 "Kind regards,\n"
                 "Support Team"),
)

# Bitext's replies (../shared/datasets/bitext_customer_support, `response`): no fixed lines, but a house
# style: {{placeholders}} instead of invented specifics (65% of rows), numbered steps (72%), a closing offer
# of help or a contact channel; 99.6% end with a complete sentence.
BITEXT = Format(
    name="bitext",
    kind="as_reference",
    parts=(
        Part("placeholder", r"\{\{[^{}\n]+\}\}", "a {{placeholder}} where a specific value goes"),
        Part("steps", r"^\s*\d+\.\s+\S", "numbered steps"),
        Part("closing", r"(?is)(?:assist|help|support|reach out|contact|live chat|phone)[^.!?]*[.!?]\W*\Z",
             "a closing offer of help or a contact channel"),
    ),
    description=("Reply in the support team's style: {{placeholders}} such as {{Order Number}} instead of "
                 "specific values, numbered steps when the customer must do something, and a closing "
                 "offer of further help."),
)

FORMATS = {f.name: f for f in (HOUSE, BITEXT)}
SENTENCE_END = re.compile(r"[.!?]\W*\Z")


def get(name):
    """The format called `name`; ValueError naming the known ones (the parameter is REPLY_FORMAT)."""
    if name not in FORMATS:
        raise ValueError(f"REPLY_FORMAT={name!r} is not a known reply format; choose from {', '.join(FORMATS)}")
    return FORMATS[name]


def render(fmt, **fields):
    """An exact format's reply with `fields` filled in (the sample data generator writes replies so)."""
    if fmt.kind != "exact":
        raise ValueError(f"format {fmt.name!r} has no fixed lines to render")
    return "\n".join(line.format(**fields) for line in fmt.line_templates)


def parts_present(fmt, text):
    """{part: bool}: which of the format's parts occur anywhere in `text`."""
    return {p.name: bool(p.regex.search(text or "")) for p in fmt.parts}


def parse(fmt, text):
    """(valid, fields) for an exact format: valid when `text` is exactly the parts in order (surrounding
    whitespace aside); fields are the named groups found (a part found out of place still gives its
    field, so a near miss is scored field by field). An `as_reference` format has no fields: use `valid`."""
    text = (text or "").strip()
    whole = "\n".join(p.pattern.strip("^$") for p in fmt.parts)
    m = re.fullmatch(whole, text)
    if m:
        return True, {k: v.strip() for k, v in m.groupdict().items()}
    found = {}
    for p in fmt.parts:
        pm = p.regex.search(text)
        if pm:
            found.update({k: v.strip() for k, v in pm.groupdict().items() if v is not None})
    return False, found


def valid(fmt, text, reference=None):
    """Whether `text` is a well-formed reply: an exact format parses; an `as_reference` format has every
    part `reference` has and ends with a complete sentence."""
    if fmt.kind == "exact":
        return parse(fmt, text)[0]
    have, need = parts_present(fmt, text), parts_present(fmt, reference or "")
    return bool((text or "").strip()) and bool(SENTENCE_END.search(text.strip())) and all(
        have[p] for p, n in need.items() if n)
