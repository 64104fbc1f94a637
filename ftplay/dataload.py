"""Data files: read CSV, instruction JSONL or chat JSONL strictly into rows, every bad line named; write JSONL.

`load` reads a file into rows {"id", "text", "label", "source"} and reports every bad line at once
("FILE:LINE: field 'x': what is wrong; expected ..."), before anything is written. For the reply task
(`output_field` given) every row also has "output", the reference reply. Curation (`ftplay.data`)
starts from these rows.
"""
import csv
import io
import json
import logging
from pathlib import Path

from ftplay import requestlog, rundir, stages
from ftplay.errors import DataError, check

log = logging.getLogger(__name__)

TEXT_FIELD, LABEL_FIELD, OUTPUT_FIELD = "text", "label", "reply"
NO_LABEL = "-"             # the reply task's label of a row whose file has none: one group for split and slices
FORMATS = ("auto", "csv", "instruction", "chat", "log")  # log: a hosted model's request log (ftplay.requestlog)
ROLES = ("system", "user", "assistant")
MAX_PROBLEMS = 50          # per file; a file broken on every line is reported by its first 50 problems
CSV_FIELD_LIMIT = 2**31 - 1  # characters a CSV field may hold: the largest a C long takes on every platform


# =========================================================================== loading
class _Problems:
    """Collects 'FILE:LINE: field ...' problems for one file."""

    def __init__(self, path):
        self.name, self.items, self.dropped = str(path), [], 0

    def add(self, line, fld, what, expected):
        if len(self.items) >= MAX_PROBLEMS:
            self.dropped += 1
            return
        self.items.append(f"{self.name}:{line}: field '{fld}': {what}; expected {expected}")

    def raise_if_any(self):
        if self.dropped:
            self.items.append(f"{self.name}: ... and {self.dropped} more problem(s) of the same kinds")
        check(self.items, DataError, f"cannot load {self.name}")


def _decode(path, probs):
    """File bytes -> text: UTF-8 (a BOM is dropped with a warning), CRLF/CR normalised to LF."""
    raw = Path(path).read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        probs.add(1, "(encoding)", "the file starts with a UTF-16 byte-order mark",
                  "UTF-8; re-save the file as UTF-8")
        return None
    if raw.startswith(b"\xef\xbb\xbf"):
        log.warning("%s: starts with a UTF-8 byte-order mark; ignoring it", path)
        raw = raw[3:]
    bad = False
    for n, line in enumerate(raw.split(b"\n"), 1):
        if b"\x00" in line:
            bad = True
            probs.add(n, "(encoding)", f"NUL byte at byte offset {line.index(0)} of the line",
                      "text; the file is binary or UTF-16 without a byte-order mark")
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            bad = True
            probs.add(n, "(encoding)", f"byte 0x{line[e.start]:02x} at byte offset {e.start} of the line "
                      f"(column {len(line[:e.start].decode('utf-8', 'replace')) + 1}) is not valid UTF-8",
                      "UTF-8 text; re-export the file as UTF-8 (such bytes usually come from Latin-1 or "
                      "Windows-1252 exports)")
    if bad:
        return None
    text = raw.decode("utf-8")
    if "\r" in text:
        log.info("%s: CRLF/CR line ends normalised to LF", path)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _sniff(path, text, probs):
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix not in (".jsonl", ".json", ".ndjson"):
        probs.add(1, "(format)", f"cannot tell the format from the extension {suffix!r}",
                  "a .csv or .jsonl file, or set FORMAT to csv, instruction, chat or log")
        return None
    for n, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                first = json.loads(line)
            except json.JSONDecodeError as e:
                probs.add(n, "(json)", f"not valid JSON ({e.msg} at column {e.colno})",
                          "one JSON object per line")
                return None
            except RecursionError:
                probs.add(n, "(json)", "nested too deeply", "one flat JSON object per line")
                return None
            if isinstance(first, dict) and {"request", "response"} <= first.keys():
                return "log"
            if isinstance(first, dict) and "messages" in first:
                return "chat"
            if isinstance(first, dict) and ({"instruction", "input", "output"} & first.keys()):
                return "instruction"
            keys = sorted(first) if isinstance(first, dict) else type(first).__name__
            probs.add(n, "(record)", f"cannot tell the format: the first record has keys {keys}",
                      "'messages' (chat), 'instruction'/'input'/'output' (instruction) or 'request'/'response' "
                      "(a request log), or set FORMAT")
            return None
    return "jsonl"  # empty: reported by the JSONL reader


def load(path, format="auto", text_field=TEXT_FIELD, label_field=LABEL_FIELD, output_field=None):
    """Rows {"id", "text", "label", "source"} from a CSV, instruction-JSONL or chat-JSONL file. A label
    is stripped of surrounding spaces; a row whose label had some keeps it as written in "label_raw"
    (curation reports them).

    `output_field` given (the reply task): every row also has "output", the reference reply as written:
    the CSV column `output_field`, an instruction record's `output`, a chat record's last assistant turn
    (in JSONL any non-empty `output_field` selects this). The label is then a category to split and slice
    by: the CSV's `label_field` column, a JSONL record's optional "label" key; without either, NO_LABEL.

    Raises DataError listing every problem (up to MAX_PROBLEMS) as "FILE:LINE: field 'x': ...".
    A CSV row with an empty text is loaded (curation reports it as trivial); an empty label or reply is not.
    """
    path = Path(path)
    probs, rows, fmt = _Problems(path.name), [], format
    if not path.is_file():
        probs.add(0, "(file)", f"no such file {str(path)!r}", "an existing file; check the path")
        probs.raise_if_any()
    text = _decode(path, probs)
    if text is not None and not text.strip():
        probs.add(1, "(file)", "the file is empty",
                  "a header line such as 'text,label' and rows" if format == "csv" or path.suffix == ".csv"
                  else "one JSON object per line")
        text = None
    if text is not None:
        fmt = _sniff(path, text, probs) if format == "auto" else format
        if fmt == "csv":
            rows = _load_csv(path, text, text_field, label_field, probs, output_field)
        elif fmt == "log":
            rows = requestlog.read(path, text, probs, bool(output_field), NO_LABEL)
        elif fmt in ("instruction", "chat", "jsonl"):
            rows = _load_jsonl(path, text, fmt, probs, bool(output_field))
    probs.raise_if_any()
    seen = {}
    for r in rows:
        if r["id"] in seen:
            log.warning("%s: id %r repeats (first at %s); ids are not unique", r["source"], r["id"], seen[r["id"]])
        seen.setdefault(r["id"], r["source"])
    log.info("loaded %d rows from %s (%s)", len(rows), path, fmt)
    if output_field and rows and all(r["label"] == NO_LABEL for r in rows):
        log.info("%s: no categories: every row is in one group %r (the split is then random)", path.name, NO_LABEL)
    return rows


DELIMITERS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}


def delimiter(path, text, needed):
    """The delimiter of a delimited export: tab for .tsv, comma otherwise, unless the header line split that way
    lacks a `needed` column and split by another of DELIMITERS has them all (a ';' export from a European locale's
    spreadsheet, a .csv that is really tab-separated)."""
    first = next((line for line in text.split("\n") if line.strip()), "")
    usual = "\t" if Path(path).suffix.lower() == ".tsv" else ","

    def has_all(d):
        return all(f in [h.strip().strip('"') for h in first.split(d)] for f in needed)

    if has_all(usual):
        return usual
    found = [d for d in DELIMITERS if d != usual and d in first and has_all(d)]
    if found:
        log.info("%s: read as %s-separated (its header line has the columns that way)", Path(path).name,
                 DELIMITERS[found[0]])
        return found[0]
    return usual


def _load_csv(path, text, text_field, label_field, probs, output_field=None):
    # csv's default limit (131,072 characters a field) would report a long ticket (a pasted log) as a
    # malformed row; it is read, and 02's length check against MAX_SEQ_LEN drops or keeps it
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    sep = delimiter(path, text, [text_field, output_field or label_field])
    reader = csv.reader(io.StringIO(text, newline=""), strict=True, delimiter=sep)
    rows, header, line = [], None, 1
    try:
        for rec in reader:
            start, line = line, reader.line_num + 1
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            if header is None:
                header = [h.strip() for h in rec]
                need = [(text_field, "TEXT_FIELD")] + ([(output_field, "OUTPUT_FIELD")] if output_field else
                                                       [(label_field, "LABEL_FIELD")])
                missing = [(f, p) for f, p in need if f not in header]
                other = [DELIMITERS[d] for d in DELIMITERS if d != sep and d in rec[0]] if len(header) == 1 else []
                hint = f" (read as {DELIMITERS[sep]}-separated; the header holds a {other[0]})" if other else ""
                for f, param in missing:
                    probs.add(start, f, f"no column {f!r} in the header{hint}; columns found: {', '.join(header)}",
                              f"a {f!r} column, or set {param} to the column that holds it")
                if missing:
                    return []
                ti = header.index(text_field)
                li = header.index(label_field) if label_field in header else None  # optional for replies
                oi = header.index(output_field) if output_field else None
                ii = header.index("ticket_id") if "ticket_id" in header else None
                continue
            if len(rec) != len(header):
                probs.add(start, "(row)", f"{len(rec)} fields but the header has {len(header)}",
                          f"{len(header)} {DELIMITERS[sep]}-separated fields; quote a text that contains a "
                          f"{DELIMITERS[sep]}")
                continue
            label = rec[li].strip() if li is not None else NO_LABEL
            if not label:
                probs.add(start, label_field, "empty label", "one of the category names")
                continue
            if oi is not None and not rec[oi].strip():
                probs.add(start, output_field, "empty reply", "the reference reply the model should write")
                continue
            rid = rec[ii].strip() if ii is not None and rec[ii].strip() else f"{path.stem}:{start}"
            rows.append({"id": rid, "text": rec[ti], "label": label, "source": f"{path.name}:{start}",
                         **({"label_raw": rec[li]} if li is not None and rec[li] != label else {}),
                         **({"output": rec[oi]} if oi is not None else {})})
    except csv.Error as e:
        probs.add(line, "(row)", f"malformed CSV ({e}); a quote opened here is never closed",
                  "balanced double quotes; write a quote inside a quoted field as \"\"")
    if header is not None and not rows and not probs.items:
        probs.add(2, "(row)", "the file has a header but no data rows", "at least one row after the header")
    return rows


_MISSING = object()


def _expect_str(probs, n, fld, value, allow_empty=False):
    if value is _MISSING:
        probs.add(n, fld, "missing", "a string")
    elif value is None:
        probs.add(n, fld, "is null", "a string")
    elif not isinstance(value, str):
        probs.add(n, fld, f"is {type(value).__name__} {json.dumps(value)[:40]}", "a string")
    elif not allow_empty and not value.strip():
        probs.add(n, fld, "empty", "a non-empty string")
    else:
        return True
    return False


def _parse_instruction(rec, n, probs):
    ok = [_expect_str(probs, n, "instruction", rec["instruction"], allow_empty=True)
          if "instruction" in rec else True,
          _expect_str(probs, n, "input", rec["input"], allow_empty=True) if "input" in rec else True,
          _expect_str(probs, n, "output", rec.get("output", _MISSING))]
    if not all(ok):
        return None
    text = rec.get("input") or rec.get("instruction") or ""
    if not text.strip():
        probs.add(n, "input", "'input' and 'instruction' are both missing or empty", "the ticket text in 'input'")
        return None
    return text, rec["output"].strip()


def _parse_chat(rec, n, probs):
    msgs = rec.get("messages")
    if not isinstance(msgs, list) or not msgs:
        what = "missing" if msgs is None else "an empty list" if msgs == [] else f"a {type(msgs).__name__}"
        probs.add(n, "messages", f"is {what}", "a list of {\"role\", \"content\"} objects")
        return None
    good = True
    for k, m in enumerate(msgs):
        fld = f"messages[{k}]"
        if not isinstance(m, dict):
            probs.add(n, fld, f"is a {type(m).__name__}", "an object with 'role' and 'content'")
            good = False
            continue
        if m.get("role") not in ROLES:
            probs.add(n, f"{fld}.role", f"unknown role {m.get('role')!r}" if "role" in m else "missing",
                      f"one of {', '.join(ROLES)}")
            good = False
        content = m.get("content", _MISSING)
        if isinstance(content, list):
            probs.add(n, f"{fld}.content", "is a list of content parts", "a plain string (text only)")
            good = False
        elif not _expect_str(probs, n, f"{fld}.content", content, allow_empty=m.get("role") == "system"):
            good = False
    if not good:
        return None
    roles = [m["role"] for m in msgs]
    if "user" not in roles:
        probs.add(n, "messages", "no user turn", "a {\"role\": \"user\"} message with the ticket text")
        return None
    if "assistant" not in roles:
        probs.add(n, "messages", "no assistant turn", "a final {\"role\": \"assistant\"} message with the label")
        return None
    if roles[-1] != "assistant":
        probs.add(n, f"messages[{len(msgs) - 1}]", f"the last turn is {roles[-1]!r}",
                  "the conversation to end with the assistant's label")
        return None
    return from_chat(msgs)


def _label_of(rec, n, probs):
    """A reply record's optional category: its "label" key (a non-empty string), else NO_LABEL."""
    if "label" not in rec:
        return NO_LABEL
    return rec["label"].strip() if _expect_str(probs, n, "label", rec["label"]) else None


def _load_jsonl(path, text, fmt, probs, replies=False):
    rows = []
    lines = text.split("\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            probs.add(n, "(json)", f"not valid JSON ({e.msg} at column {e.colno})", "one JSON object per line")
            continue
        except RecursionError:
            probs.add(n, "(json)", "nested too deeply", "one flat JSON object per line")
            continue
        if not isinstance(rec, dict):
            probs.add(n, "(record)", f"is a JSON {type(rec).__name__}", "a JSON object per line")
            continue
        if fmt == "jsonl":  # auto-detect saw no records; decide per record
            fmt = "chat" if "messages" in rec else "instruction"
        parsed = (_parse_chat if fmt == "chat" else _parse_instruction)(rec, n, probs)
        label = _label_of(rec, n, probs) if replies else None
        if parsed and (label or not replies):
            rid = rec.get("id")
            rid = str(rid) if isinstance(rid, (str, int)) and str(rid) else f"{path.stem}:{n}"
            raw = (next(m["content"] for m in reversed(rec["messages"]) if m["role"] == "assistant")
                   if fmt == "chat" else rec["output"])
            if replies:  # the answer is the reply, as written; the label a category
                rows.append({"id": rid, "text": parsed[0], "label": label, "source": f"{path.name}:{n}", "output": raw,
                             **({"label_raw": rec["label"]} if rec.get("label", label) != label else {})})
                continue
            rows.append({"id": rid, "text": parsed[0], "label": parsed[1], "source": f"{path.name}:{n}",
                         **({"label_raw": raw} if raw != parsed[1] else {}),
                         **({"human_label": rec["human_label"]} if isinstance(rec.get("human_label"), str) else {})})
    if not rows and not probs.items:
        probs.add(1, "(file)", "no records", "one JSON object per line")
    return rows


# =========================================================================== conversions and writing
def from_chat(messages):
    """(text, label) of a chat: the last user turn and the last assistant turn."""
    text = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    label = next(m["content"] for m in reversed(messages) if m["role"] == "assistant")
    return text, label.strip()


def write_jsonl(path, rows):
    """Write rows as JSONL atomically (temp file + os.replace): readers never see a partial file."""
    return rundir.write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def load_split(run_dir, name):
    """A split 02 wrote into <run_dir>/data (chat JSONL) as rows, with "output" when 02 curated the reply
    task (its data_card.json says "task"); [] when it holds no rows (e.g. no production samples were given)."""
    path = Path(run_dir) / "data" / f"{name}.jsonl"
    if not (path.exists() and path.read_text().strip()):
        return []
    card = Path(run_dir) / "data" / "data_card.json"
    task = json.loads(card.read_text(encoding="utf-8")).get("task") if card.exists() else None
    return load(path, "chat", output_field=OUTPUT_FIELD if task == stages.REPLY else None)
