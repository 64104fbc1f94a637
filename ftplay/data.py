"""Data stage: load ticket files strictly, curate them (dedupe, conflicts, PII, length), split and audit.

`load` reads CSV, instruction JSONL or chat JSONL into rows {"id", "text", "label", "source"} and reports
every bad line at once ("FILE:LINE: field 'x': what is wrong; expected ..."). `curate` runs the checks
in `ftplay.quality`, drops what cannot be trained on, makes a group-aware stratified split (or audits
the one given) and returns the rows plus a data card. The check definitions live in `ftplay.quality`.
"""
import csv
import io
import json
import logging
import math
import os
import random
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ftplay import prompts, rundir
from ftplay.errors import ConfigError, DataError, check
from ftplay.quality import (audit, components, find_conflicts, find_exact_duplicates,  # noqa: F401
                            find_near_duplicates, find_pii, find_trivial, luhn_ok, near_pairs,
                            normalise, normalise_ci, redact)

log = logging.getLogger(__name__)

TEXT_FIELD, LABEL_FIELD = "text", "label"
FORMATS = ("auto", "csv", "instruction", "chat")
ROLES = ("system", "user", "assistant")
MAX_PROBLEMS = 50          # per file; a file broken on every line is reported by its first 50 problems
TABLE_ROWS = 50            # worst offenders kept per table in `Curated.tables`


@dataclass(frozen=True)
class DataConfig:
    """Where the data is and how strictly to curate it; paths are relative to the working directory."""
    train_path: str = "data/tickets_raw.csv"      # raw export, or the training file when heldout_path is given
    heldout_path: str | None = None               # given: audit this split instead of making one
    production_path: str | None = "data/production_samples.csv"  # audited against train, never trained on
    format: str = "auto"                          # auto | csv | instruction | chat
    text_field: str = TEXT_FIELD                  # CSV column with the ticket text
    label_field: str = LABEL_FIELD                # CSV column with the category
    heldout_fraction: float = 0.2                 # share of each label held out when we split
    near_dup_threshold: float = 0.65              # Jaccard of character 4-grams (see ftplay.quality)
    min_label_count: int = 10                     # labels with fewer rows after curation are reported
    max_seq_len: int = 512                        # tokens of the chat-template rendering
    redact_pii: bool = False                      # replace emails/phones/cards by [EMAIL]/[PHONE]/[CARD]
    drop_truncated: bool = True                   # drop rows longer than max_seq_len (else keep, report)
    drop_near_duplicates: bool = True             # keep one row per near-duplicate group
    seed: int = 0                                 # split seed
    max_train_per_label: int = 0                  # keep at most N training rows per label (0: all)

    def __post_init__(self):
        p = []
        if self.format not in FORMATS:
            p.append(f"FORMAT={self.format!r} is not one of {', '.join(FORMATS)}; set FORMAT to one of them")
        if not isinstance(self.heldout_fraction, (int, float)) or not 0 < self.heldout_fraction < 1:
            p.append(f"HELDOUT_FRACTION={self.heldout_fraction!r} must be a number in (0, 1), e.g. 0.2")
        if not isinstance(self.near_dup_threshold, (int, float)) or not 0 < self.near_dup_threshold <= 1:
            p.append(f"NEAR_DUP_THRESHOLD={self.near_dup_threshold!r} must be in (0, 1]; 0.65 groups "
                     "rewordings, 1.0 only identical character 4-gram sets")
        if isinstance(self.max_train_per_label, bool) or not isinstance(self.max_train_per_label, int) \
                or self.max_train_per_label < 0:
            p.append(f"MAX_TRAIN_PER_LABEL={self.max_train_per_label!r} must be 0 (all) or a positive integer")
        for name in ("min_label_count", "max_seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                p.append(f"{name.upper()}={value!r} must be a positive integer")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            p.append(f"SEED={self.seed!r} must be an integer")
        for name in ("text_field", "label_field"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                p.append(f"{name.upper()}={value!r} must be a non-empty column name, e.g. {name[:-6]!r}")
        for name in ("redact_pii", "drop_truncated", "drop_near_duplicates"):
            if not isinstance(getattr(self, name), bool):
                p.append(f"{name.upper()}={getattr(self, name)!r} must be True or False")
        for name, optional in (("train_path", False), ("heldout_path", True), ("production_path", True)):
            value = getattr(self, name)
            if value is None and optional:
                continue
            if not isinstance(value, (str, os.PathLike)) or not str(value):
                p.append(f"{name.upper()}={value!r} must be a file path")
            elif not Path(value).is_file():
                p.append(f"{name.upper()}={str(value)!r}: no such file (looked in {Path.cwd()}); "
                         f"set {name.upper()} to an existing file" + (" or None" if optional else ""))
        check(p, ConfigError)


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
                  "a .csv or .jsonl file, or set FORMAT to csv, instruction or chat")
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
            if isinstance(first, dict) and "messages" in first:
                return "chat"
            if isinstance(first, dict) and ({"instruction", "input", "output"} & first.keys()):
                return "instruction"
            keys = sorted(first) if isinstance(first, dict) else type(first).__name__
            probs.add(n, "(record)", f"cannot tell the format: the first record has keys {keys}",
                      "'messages' (chat) or 'instruction'/'input'/'output' (instruction), or set FORMAT")
            return None
    return "jsonl"  # empty: reported by the JSONL reader


def load(path, format="auto", text_field=TEXT_FIELD, label_field=LABEL_FIELD):
    """Rows {"id", "text", "label", "source"} from a CSV, instruction-JSONL or chat-JSONL file.

    Raises DataError listing every problem (up to MAX_PROBLEMS) as "FILE:LINE: field 'x': ...".
    A CSV row with an empty text is loaded (curation reports it as trivial); an empty label is not.
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
            rows = _load_csv(path, text, text_field, label_field, probs)
        elif fmt in ("instruction", "chat", "jsonl"):
            rows = _load_jsonl(path, text, fmt, probs)
    probs.raise_if_any()
    seen = {}
    for r in rows:
        if r["id"] in seen:
            log.warning("%s: id %r repeats (first at %s); ids are not unique", r["source"], r["id"], seen[r["id"]])
        seen.setdefault(r["id"], r["source"])
    log.info("loaded %d rows from %s (%s)", len(rows), path, fmt)
    return rows


def _load_csv(path, text, text_field, label_field, probs):
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows, header, line = [], None, 1
    try:
        for rec in reader:
            start, line = line, reader.line_num + 1
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            if header is None:
                header = [h.strip() for h in rec]
                missing = [(f, p) for f, p in ((text_field, "TEXT_FIELD"), (label_field, "LABEL_FIELD"))
                           if f not in header]
                for f, param in missing:
                    probs.add(start, f, f"no column {f!r} in the header; columns found: {', '.join(header)}",
                              f"a {f!r} column, or set {param} to the column that holds it")
                if missing:
                    return []
                ti, li = header.index(text_field), header.index(label_field)
                ii = header.index("ticket_id") if "ticket_id" in header else None
                continue
            if len(rec) != len(header):
                probs.add(start, "(row)", f"{len(rec)} fields but the header has {len(header)}",
                          f"{len(header)} comma-separated fields; quote a text that contains commas")
                continue
            label = rec[li].strip()
            if not label:
                probs.add(start, label_field, "empty label", "one of the category names")
                continue
            rid = rec[ii].strip() if ii is not None and rec[ii].strip() else f"{path.stem}:{start}"
            rows.append({"id": rid, "text": rec[ti], "label": label, "source": f"{path.name}:{start}"})
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


def _load_jsonl(path, text, fmt, probs):
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
        if parsed:
            rid = rec.get("id")
            rid = str(rid) if isinstance(rid, (str, int)) and str(rid) else f"{path.stem}:{n}"
            rows.append({"id": rid, "text": parsed[0], "label": parsed[1], "source": f"{path.name}:{n}"})
    if not rows and not probs.items:
        probs.add(1, "(file)", "no records", "one JSON object per line")
    return rows


# =========================================================================== conversions
def from_chat(messages):
    """(text, label) of a chat: the last user turn and the last assistant turn."""
    text = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    label = next(m["content"] for m in reversed(messages) if m["role"] == "assistant")
    return text, label.strip()


def write_jsonl(path, rows):
    """Write rows as JSONL atomically (temp file + os.replace): readers never see a partial file."""
    return rundir.write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def token_lengths(rows, tokenizer, labels, system_prompt=None):
    """Tokens of each row's full chat rendering (with its label), as training tokenizes it; None
    when there is no tokenizer."""
    if tokenizer is None:
        return None
    return [len(prompts.encode(tokenizer, prompts.render(tokenizer, prompts.messages(r["text"], labels, r["label"],
                                                                                        system_prompt=system_prompt))))
            for r in rows]


# =========================================================================== split
def split(rows, groups, fraction=0.2, seed=0):
    """Group-aware stratified split -> (train indices, heldout indices).

    `groups` lists row indices that must stay together (duplicates); other rows are singletons. Each
    group is placed with its majority label; per label, groups are shuffled by `seed` and placed largest
    first while the label's held-out rows stay within round(fraction * n), so singletons fill the
    target exactly (rows of other labels in a mixed group count toward their own label). Every label
    keeps at least one row in train.
    """
    members = {i: [i] for i in range(len(rows))}
    for g in groups:
        for i in g:
            members.pop(i, None)
        members[g[0]] = sorted(g)
    by_label = defaultdict(list)
    for gid, m in members.items():
        lab = Counter(rows[i]["label"] for i in m).most_common(1)[0][0]
        by_label[lab].append(gid)
    rng = random.Random(seed)
    n_label = Counter(r["label"] for r in rows)
    held_label = Counter()                                  # held-out rows per label so far
    train, held = [], []
    for lab in sorted(by_label):
        gids = sorted(by_label[lab])
        rng.shuffle(gids)
        gids.sort(key=lambda g: -len(members[g]))           # stable: shuffled within equal sizes
        n = n_label[lab]
        target = min(int(math.floor(fraction * n + 0.5)), n - 1)
        for g in gids:
            k = sum(rows[i]["label"] == lab for i in members[g])
            if held_label[lab] + k <= target:
                held += members[g]
                held_label.update(rows[i]["label"] for i in members[g])
            else:
                train += members[g]
    return sorted(train), sorted(held)


def cap_per_label(rows, n, seed=0):
    """At most `n` rows of each label, a seeded sample in the original order -> (rows, dropped).
    Quality over quantity: a few hundred to two thousand curated examples carry a narrow task."""
    by_label = defaultdict(list)
    for i, r in enumerate(rows):
        by_label[r["label"]].append(i)
    rng, keep = random.Random(seed), set()
    for lab in sorted(by_label):
        idx = by_label[lab]
        keep.update(idx if len(idx) <= n else rng.sample(idx, n))
    return [r for i, r in enumerate(rows) if i in keep], len(rows) - len(keep)


def subsample(rows, n, seed=0):
    """A seeded random `n` of `rows` in their original order (all when n is 0 or >= len): a test
    file sorted by label keeps every label in the sample, which its first n rows would not."""
    if not n or n >= len(rows):
        return list(rows)
    keep = set(random.Random(seed).sample(range(len(rows)), n))
    return [r for i, r in enumerate(rows) if i in keep]


def load_split(run_dir, name):
    """A split 02 wrote into <run_dir>/data (chat JSONL) as rows; [] when it holds no rows (e.g. no
    production samples were given)."""
    path = Path(run_dir) / "data" / f"{name}.jsonl"
    return load(path, "chat") if path.exists() and path.read_text().strip() else []


# =========================================================================== curation
@dataclass
class Curated:
    """Curated splits plus the data card (`report`) and worst-offender tables (name -> list of rows)."""
    train: list
    heldout: list
    production: list
    labels: list
    report: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)


def _group_table(rows, groups, kind, extra=None):
    out = []
    for g in sorted(groups, key=lambda g: (-len(g), g[0])):
        out.append({"check": kind, "size": len(g), "ids": [rows[i]["id"] for i in g],
                    "labels": sorted({rows[i]["label"] for i in g}), "text": rows[g[0]]["text"],
                    "sources": [rows[i]["source"] for i in g][:5], **(extra(g) if extra else {})})
    return out[:TABLE_ROWS]


def _pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(math.ceil(q / 100 * len(s))) - 1)] if s else None


def curate(cfg, tokenizer=None, out_dir=None, system_prompt=None):
    """Load, check, drop, split (or audit the given split) and describe the data; see the module docstring.

    With `out_dir`, writes train/heldout/production.jsonl (chat records with "id"), data_card.json and
    tables.json only after everything succeeded, each atomically.
    """
    rows = load(cfg.train_path, cfg.format, cfg.text_field, cfg.label_field)
    raw_train = [dict(r) for r in rows]
    heldout_in = load(cfg.heldout_path, cfg.format, cfg.text_field, cfg.label_field) if cfg.heldout_path else None
    production = (load(cfg.production_path, "auto", cfg.text_field, cfg.label_field)
                  if cfg.production_path else [])
    tables, report = {}, {"rows_in": len(rows)}

    # ---- trivial
    trivial = find_trivial(rows)
    tables["trivial"] = [{"id": rows[i]["id"], "text": rows[i]["text"], "label": rows[i]["label"],
                          "source": rows[i]["source"]} for i in trivial][:TABLE_ROWS]
    report["trivial"] = len(trivial)
    drop = set(trivial)
    rows = [r for i, r in enumerate(rows) if i not in drop]

    # ---- PII (before deduplication: redacted twins are twins)
    pii_rows = []
    for r in rows:
        found = find_pii(r["text"])
        if found:
            pii_rows.append({"id": r["id"], "source": r["source"], "kinds": sorted(found),
                             "matches": sum(len(v) for v in found.values())})
            if cfg.redact_pii:
                r["text"] = redact(r["text"])
    report["pii_rows"] = len(pii_rows)
    report["pii_kinds"] = dict(Counter(k for p in pii_rows for k in p["kinds"]))
    report["pii_redacted"] = cfg.redact_pii
    tables["pii"] = pii_rows[:TABLE_ROWS]

    # ---- conflicts: same normalised text, different labels -> drop every row of the group
    conflicts = find_conflicts(rows)
    tables["conflicts"] = _group_table(rows, conflicts, "conflict")
    report["conflicts"] = len(conflicts)
    report["conflict_rows"] = sum(len(g) for g in conflicts)
    drop = {i for g in conflicts for i in g}
    rows = [r for i, r in enumerate(rows) if i not in drop]

    # ---- exact duplicates: keep the first
    exact = find_exact_duplicates(rows)
    tables["exact_duplicates"] = _group_table(rows, exact, "exact_duplicate")
    report["exact_duplicates"] = len(exact)
    report["exact_duplicate_rows_dropped"] = sum(len(g) - 1 for g in exact)
    drop = {i for g in exact for i in g[1:]}
    rows = [r for i, r in enumerate(rows) if i not in drop]

    # ---- length (before near duplicates: long pastes of logs or quoted replies look alike)
    labels = sorted({r["label"] for r in rows})
    _check_labels(cfg, rows, labels)
    lengths = token_lengths(rows, tokenizer, labels, system_prompt)
    truncated = [i for i, n in enumerate(lengths or []) if n > cfg.max_seq_len]
    tables["truncated"] = sorted(({"id": rows[i]["id"], "tokens": lengths[i], "label": rows[i]["label"],
                                   "source": rows[i]["source"]} for i in truncated),
                                 key=lambda t: -t["tokens"])[:TABLE_ROWS]
    report["truncated"] = len(truncated)
    report["truncated_dropped"] = cfg.drop_truncated
    report["max_seq_len"] = cfg.max_seq_len
    if lengths:
        report["tokens"] = {"p50": _pct(lengths, 50), "p95": _pct(lengths, 95), "max": max(lengths)}
    else:
        report["tokens"] = None
        log.info("no tokenizer: token lengths and truncation not checked")
    if truncated and cfg.drop_truncated:
        drop = set(truncated)
        if len(drop) == len(rows):
            raise ConfigError(f"every row of TRAIN_PATH={cfg.train_path!r} is longer than MAX_SEQ_LEN={cfg.max_seq_len} "
                              f"tokens once the chat template and system prompt are applied (median {_pct(lengths, 50)}); "
                              "raise MAX_SEQ_LEN (a system prompt listing many labels is long) or set DROP_TRUNCATED=False")
        rows = [r for i, r in enumerate(rows) if i not in drop]

    # ---- near duplicates
    sigs = {}                                   # MinHash signatures shared by the checks below
    near = find_near_duplicates(rows, cfg.near_dup_threshold, sigs)
    tables["near_duplicates"] = _group_table(rows, near, "near_duplicate")
    report["near_duplicates"] = len(near)
    report["near_duplicate_rows"] = sum(len(g) for g in near)
    report["near_duplicate_label_mixed"] = sum(len({rows[i]["label"] for i in g}) > 1 for g in near)
    if cfg.drop_near_duplicates:
        # keep the first row of each label in a group: a near twin with another label ("changing my
        # address" / "changing my pin") is a contrast worth training on, and is reported, not dropped
        drop = {i for g in near for i in _extras(rows, g)}
        keep = {i: k for k, i in enumerate(i for i in range(len(rows)) if i not in drop)}
        near = [g for g in ([keep[i] for i in g if i in keep] for g in near) if len(g) > 1]
        rows = [r for i, r in enumerate(rows) if i not in drop]
    else:
        drop = ()
    report["near_duplicate_rows_dropped"] = len(drop)
    labels = sorted({r["label"] for r in rows})
    _check_labels(cfg, rows, labels)
    report["rows_out"] = len(rows)

    # ---- split or take the given one
    if heldout_in is None:
        tr, ho = split(rows, near, cfg.heldout_fraction, cfg.seed)
        train, heldout = [rows[i] for i in tr], [rows[i] for i in ho]
    else:
        train, heldout = rows, heldout_in
    if cfg.max_train_per_label:
        train, report["capped"] = cap_per_label(train, cfg.max_train_per_label, cfg.seed)
    counts = {s: Counter(r["label"] for r in part)
              for s, part in (("train", train), ("heldout", heldout), ("production", production))}
    report["labels"] = {lab: {s: counts[s][lab] for s in counts}
                        for lab in sorted(set(labels) | set(counts["heldout"]) | set(counts["production"]))}
    report["rare_labels"] = sorted(lab for lab in labels if counts["train"][lab] + counts["heldout"][lab]
                                   < cfg.min_label_count)
    report["unseen_labels"] = sorted((set(counts["heldout"]) | set(counts["production"])) - set(labels))
    for lab in report["rare_labels"]:
        log.warning("label %r has only %d rows (< MIN_LABEL_COUNT=%d): its held-out score is noise",
                    lab, counts["train"][lab] + counts["heldout"][lab], cfg.min_label_count)
    report["split"] = {"train": len(train), "heldout": len(heldout),
                       "fraction": round(len(heldout) / max(1, len(train) + len(heldout)), 4),
                       "made_here": heldout_in is None}

    # ---- audits
    # a given split is audited as given (the figures its authors would see) and after our curation
    leak = audit(train if heldout_in is None else raw_train, heldout, cfg.near_dup_threshold, sigs)
    report["leakage"] = leak["counts"]
    if heldout_in is not None:
        report["leakage_curated"] = audit(train, heldout, cfg.near_dup_threshold, sigs)["counts"]
    for k in ("exact", "exact_ci", "near", "conflicts"):
        tables[f"leakage_{k}"] = leak[k][:TABLE_ROWS]
    if production:
        prod = audit(train, production, cfg.near_dup_threshold, sigs)
        report["production_leakage"] = prod["counts"]
        for k in ("exact", "near", "conflicts"):
            tables[f"production_leakage_{k}"] = prod[k][:TABLE_ROWS]
    else:
        report["production_leakage"] = None
    report["fingerprints"] = {s: rundir.fingerprint_rows([{k: r[k] for k in ("id", "text", "label")} for r in part])
                              for s, part in (("train", train), ("heldout", heldout), ("production", production))}
    log.info("curated %d -> %d rows: %d train, %d held out; leakage %s", report["rows_in"], report["rows_out"],
             len(train), len(heldout), report["leakage"])
    result = Curated(train, heldout, production, labels, report, tables)
    if out_dir is not None:
        write_curated(result, out_dir, system_prompt)
    return result


def _extras(rows, group):
    """Members of a near-duplicate group after the first of each label (the ones to drop)."""
    seen = set()
    out = []
    for i in group:
        if rows[i]["label"] in seen:
            out.append(i)
        seen.add(rows[i]["label"])
    return out


def _check_labels(cfg, rows, labels):
    if len(labels) < 2:
        what = f"a single label {labels[0]!r}" if labels else "no rows left"
        raise ConfigError(f"TRAIN_PATH={cfg.train_path!r} has {what} after curation; a classifier needs "
                          "at least 2 labels; point TRAIN_PATH at the full export")
    need = 2 * len(labels)
    if len(rows) < need:
        raise ConfigError(f"TRAIN_PATH={cfg.train_path!r} has {len(rows)} usable rows after curation for "
                          f"{len(labels)} labels; need at least {need} (2 per label) to train and evaluate")


def write_curated(cur, out_dir, system_prompt=None):
    """Write the splits as chat JSONL ({"id", "messages"}), data_card.json and tables.json into out_dir."""
    out_dir = Path(out_dir)
    for name in ("train", "heldout", "production"):
        write_jsonl(out_dir / f"{name}.jsonl",
                    [{"id": r["id"], "messages": prompts.messages(r["text"], cur.labels, r["label"], system_prompt=system_prompt)}
                     for r in getattr(cur, name)])
    rundir.write_json(out_dir / "tables.json", cur.tables)
    rundir.write_json(out_dir / "data_card.json", {**cur.report, "labels_list": cur.labels})
    return out_dir


def holdout_slice(rows, fraction, seed=0):
    """(rest, slice): a seeded random `fraction` of rows set aside, e.g. for eval loss during training."""
    if not 0 <= fraction < 1:
        raise ConfigError(f"EVAL_FRACTION={fraction} must be in [0, 1)")
    idx = list(range(len(rows)))
    random.Random(seed).shuffle(idx)
    k = int(round(len(rows) * fraction))
    chosen = set(idx[:k])
    return [r for i, r in enumerate(rows) if i not in chosen], [r for i, r in enumerate(rows) if i in chosen]
