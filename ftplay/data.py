"""Data stage: curate loaded ticket rows (dedupe, conflicts, PII, length), split and audit.

`curate` loads the files (`ftplay.dataload`: strict, every bad line named), runs the checks in
`ftplay.quality` step by step, drops what cannot be trained on, makes a group-aware stratified split
(or audits the one given) and returns the rows plus a data card. `data.load` and the other file
functions are dataload's, the conversation, split-file and slice helpers `ftplay.datachat`'s, imported here
so that `from ftplay import data` reaches them.

Both tasks go through the same steps (`DataConfig.task`): for the reply task a row also has "output"
(the reference reply), conflicts and duplicates compare replies, PII is looked for in replies too,
trivial replies and replies not valid in REPLY_FORMAT are dropped, and the length is the whole
training conversation (system prompt, ticket, reply).
"""
import logging
import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ftplay import formats, label_issues, prompts, requestlog, rundir, stages
from ftplay.datachat import (  # noqa: F401
    conversation,
    drop_summary,
    holdout_slice,
    load_with,
    mask_check,
    subsample,
    system_prompt_for,
    token_counts,
    token_lengths,
    write_curated,
)
from ftplay.dataload import (  # noqa: F401
    FORMATS,
    LABEL_FIELD,
    NO_LABEL,
    OUTPUT_FIELD,
    TEXT_FIELD,
    from_chat,
    load,
    load_split,
    write_jsonl,
)
from ftplay.errors import ConfigError, DataError, check
from ftplay.numbers import percentile, spread
from ftplay.quality import (
    audit,
    find_conflicts,
    find_exact_duplicates,
    find_near_duplicates,
    find_pii,
    find_trivial,
    find_trivial_outputs,
    leak_text,
    redact,
)
from ftplay.splitting import cap_per_label, split  # noqa: F401  (data.split: the split 02 and 00 make)

log = logging.getLogger(__name__)

TABLE_ROWS = 50            # worst offenders kept per table in `Curated.tables`
EXAMPLES = {stages.CLASSIFY: {"instruction": "data/examples/tickets.instruction.jsonl",
                              "chat": "data/examples/tickets.chat.jsonl"},
            stages.REPLY: {"instruction": "data/examples/replies.instruction.jsonl",
                           "chat": "data/examples/replies.chat.jsonl"}}   # the same rows in both shapes, per task


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
    redact_pii: bool = True                       # replace emails/phones/cards by [EMAIL]/[PHONE]/[CARD] (counts kept)
    drop_truncated: bool = True                   # drop rows longer than max_seq_len (else keep, report)
    drop_near_duplicates: bool = True             # keep one row per near-duplicate group
    seed: int = 0                                 # split seed
    max_train_per_label: int = 0                  # keep at most N training rows per label (0: all)
    task: str = stages.CLASSIFY                   # classify (a label per ticket) | reply (a reply per ticket)
    output_field: str = OUTPUT_FIELD              # reply task: CSV column with the reference reply
    reply_format: str = "house"                   # reply task: the format a reply must be valid in (ftplay.formats)
    label_issues: str = "flag"                    # flag | drop | off: likely wrong labels (ftplay.label_issues)
    human_labels_path: str | None = None          # classify: human labels of (some of) the same tickets, to check a
                                                  # request log's teacher labels against (ftplay.requestlog)

    def __post_init__(self):
        p = []
        if self.task not in stages.TASKS:
            p.append(f"TASK={self.task!r} is not one of {', '.join(stages.TASKS)}; set TASK to one of them")
        if self.task == stages.REPLY:
            if not isinstance(self.output_field, str) or not self.output_field:
                p.append(f"OUTPUT_FIELD={self.output_field!r} must name the column with the reply, e.g. 'reply'")
            if self.reply_format not in formats.FORMATS:
                p.append(f"REPLY_FORMAT={self.reply_format!r} is not a known reply format; choose from "
                         f"{', '.join(formats.FORMATS)}")
        if self.label_issues not in label_issues.MODES:
            p.append(f"LABEL_ISSUES={self.label_issues!r} is not one of {', '.join(label_issues.MODES)}: 'flag' lists "
                     "likely wrong labels for review, 'drop' also removes them from training, 'off' skips the check")
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
        if self.human_labels_path and self.task == stages.REPLY:
            p.append("HUMAN_LABELS_PATH is for the classify task (labels to check a teacher's against); leave it "
                     "empty for the reply task")
        for name, optional in (("train_path", False), ("heldout_path", True), ("production_path", True),
                               ("human_labels_path", True)):
            value = getattr(self, name)
            if value is None and optional:
                continue
            if not isinstance(value, (str, os.PathLike)) or not str(value):
                p.append(f"{name.upper()}={value!r} must be a file path")
            elif not Path(value).is_file():
                p.append(f"{name.upper()}={str(value)!r}: no such file (looked in {Path.cwd()}); "
                         f"set {name.upper()} to an existing file" + (" or None" if optional else ""))
        check(p, ConfigError)


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
    task: str = stages.CLASSIFY
    reply_format: str = "house"

    def record_fields(self):
        """02's record fields: the data card (its task goes in the record's envelope) and the label list."""
        return {**{k: v for k, v in self.report.items() if k != "task"}, "labels_list": self.labels}


def _group_table(rows, groups, kind, extra=None):
    out = []
    for g in sorted(groups, key=lambda g: (-len(g), g[0])):
        out.append({"check": kind, "size": len(g), "ids": [rows[i]["id"] for i in g],
                    "labels": sorted({rows[i]["label"] for i in g}), "text": rows[g[0]]["text"],
                    "sources": [rows[i]["source"] for i in g][:5], **(extra(g) if extra else {})})
    return out[:TABLE_ROWS]


def curate(cfg, tokenizer=None, out_dir=None, system_prompt=None):
    """Load, check, drop, split (or audit the given split) and describe the data; see the module docstring.

    The checks run in this order, each one's worst offenders kept in `tables`: trivial texts (and
    replies), PII (before deduplication: redacted twins are twins), conflicting answers, exact
    duplicates, replies not valid in REPLY_FORMAT, length (before near duplicates: long pastes of logs
    look alike), near duplicates; then the split, label counts and leakage audits. With `out_dir`,
    writes train/heldout/production.jsonl (chat records with "id"; reply rows also "label"),
    data_card.json and tables.json only after everything succeeded, each atomically.
    `system_prompt`: None is the task's default (`system_prompt_for`).
    """
    reply = cfg.task == stages.REPLY
    system_prompt = system_prompt_for(cfg.task, system_prompt, cfg.reply_format) if reply else system_prompt
    rows = load_with(cfg)
    raw_train = [dict(r) for r in rows]
    heldout_in = load_with(cfg, cfg.heldout_path) if cfg.heldout_path else None
    if not reply:
        _refuse_listed_commas(raw_train + (heldout_in or []), cfg, system_prompt)
    production = load_with(cfg, cfg.production_path, "auto") if cfg.production_path else []
    card = _Card({"task": cfg.task, "rows_in": len(rows)}, {})
    if reply:
        card.report.update(reply_format=cfg.reply_format, output_field=cfg.output_field)
    rows = _teacher(rows, heldout_in, cfg, card)
    rows = _drop_trivial(rows, card)
    _find_pii(rows, cfg.redact_pii, card)
    rows = _drop_conflicts(rows, card)
    rows = _drop_exact_duplicates(rows, card)
    if reply:
        rows = _drop_invalid_format(rows, cfg, card)
    rows, counts = _drop_over_long(rows, cfg, tokenizer, system_prompt, card)
    sigs = {}                                   # MinHash signatures shared by the near-duplicate check and audits
    rows, near = _drop_near_duplicates(rows, cfg, sigs, card)
    labels = sorted({r["label"] for r in rows})
    _check_labels(cfg, rows, labels)
    card.report["rows_out"] = len(rows)
    _count_tokens(rows, counts, card)
    train, heldout = _split(rows, near, heldout_in, cfg, card)
    if reply:
        card.report["label_issues"] = {"mode": cfg.label_issues, "skipped": "the reply task's labels only group "
                                       "its rows for the split; what it learns is the reply"}
    else:
        train = _label_issues(train, heldout, cfg, card)
    if cfg.human_labels_path:
        card.report["human_labels"]["matched"] = {s: sum("human_label" in r for r in part)
                                                  for s, part in (("train", train), ("heldout", heldout))}
        card.report["human_labels"]["teacher_heldout"] = requestlog.agreement(heldout)
    _count_labels(train, heldout, production, labels, cfg, card)
    card.report["label_warnings"] = label_warnings(raw_train + (heldout_in or []), train, heldout, labels, cfg,
                                                   system_prompt, made_split=heldout_in is None)
    card.report["split"] = {"train": len(train), "heldout": len(heldout),
                            "fraction": round(len(heldout) / max(1, len(train) + len(heldout)), 4),
                            "made_here": heldout_in is None}
    _audit(train, heldout, production, cfg, sigs, card, given=None if heldout_in is None else raw_train)
    keys = ("id", "text", "label", "output") if reply else ("id", "text", "label")
    card.report["fingerprints"] = {s: rundir.fingerprint_rows([{k: r[k] for k in keys} for r in part])
                                   for s, part in (("train", train), ("heldout", heldout), ("production", production))}
    log.info("curated %d -> %d rows: %d train, %d held out; leakage %s", card.report["rows_in"],
             card.report["rows_out"], len(train), len(heldout), leak_text(card.report["leakage"]))
    result = Curated(train, heldout, production, labels, card.report, card.tables, cfg.task, cfg.reply_format)
    if out_dir is not None:
        write_curated(result, out_dir, system_prompt)
    return result


@dataclass
class _Card:
    """The data card being written: figures (`report`) and worst-offender tables."""
    report: dict
    tables: dict


def _without(rows, drop):
    return [r for i, r in enumerate(rows) if i not in drop]


def _teacher(rows, heldout_in, cfg, card):
    """A request log's rows (they carry "teacher"): the teacher named in the card, answers that are not a label
    dropped and counted (with HUMAN_LABELS_PATH also labels the humans never use). The human labels are
    attached here, before redaction changes the texts they are matched by."""
    human = None
    if cfg.human_labels_path:
        hrows = load(cfg.human_labels_path, "auto", cfg.text_field, cfg.label_field)
        human = requestlog.human_index(hrows)
        card.report["human_labels"] = {"path": str(cfg.human_labels_path), "rows": len(hrows),
                                       "labels": sorted({r["label"] for r in hrows})}
        for part in (rows, heldout_in or []):
            requestlog.attach(part, human)
    teachers = sorted({r["teacher"] for r in rows if "teacher" in r})
    if not teachers:
        return rows
    known = set(card.report["human_labels"]["labels"]) if human else None
    bad = {}
    for i, r in enumerate(rows):
        why = r.get("answer_problem") or (None if known is None or r["label"] in known else
                                          f"{r['label']!r} is not a label the human labels use")
        if why:
            bad[i] = why
    card.report["teacher"] = {"model": teachers[0], "rows": len(rows), "answers_not_labels": len(bad)}
    card.tables["teacher_answers"] = [{"id": rows[i]["id"], "source": rows[i]["source"],
                                       "answer": rows[i].get("answer_raw", rows[i]["label"]), "why": why}
                                      for i, why in list(bad.items())[:TABLE_ROWS]]
    if bad:
        log.warning("%d of %d answers of %s are not labels: dropped (02's table 'teacher_answers')",
                    len(bad), len(rows), teachers[0])
    return _without(rows, set(bad))


def _drop_trivial(rows, card):
    """Rows whose text (or, for the reply task, whose reply) says nothing: dropped."""
    trivial = find_trivial(rows)
    card.tables["trivial"] = [{"id": rows[i]["id"], "text": rows[i]["text"], "label": rows[i]["label"],
                               "source": rows[i]["source"]} for i in trivial][:TABLE_ROWS]
    card.report["trivial"] = len(trivial)
    rows = _without(rows, set(trivial))
    if rows and "output" in rows[0]:
        bare = find_trivial_outputs(rows)
        card.tables["trivial_outputs"] = [{"id": rows[i]["id"], "output": rows[i]["output"], "label": rows[i]["label"],
                                           "source": rows[i]["source"]} for i in bare][:TABLE_ROWS]
        card.report["trivial_outputs"] = len(bare)
        rows = _without(rows, set(bare))
    return rows


def _find_pii(rows, redact_pii, card):
    """Report rows with e-mails, phones, card numbers in the text (or the reply); redact them in place when asked."""
    pii_rows = []
    for r in rows:
        where = {f: found for f in ("text", "output") if f in r and (found := find_pii(r[f]))}
        if where:
            kinds = {k for found in where.values() for k in found}
            pii_rows.append({"id": r["id"], "source": r["source"], "kinds": sorted(kinds),
                             "matches": sum(len(v) for found in where.values() for v in found.values()),
                             **({"in": sorted(where)} if "output" in r else {})})
            if redact_pii:
                r.update({f: redact(r[f]) for f in where})
    card.report["pii_rows"] = len(pii_rows)
    card.report["pii_kinds"] = dict(Counter(k for p in pii_rows for k in p["kinds"]))
    card.report["pii_redacted"] = redact_pii
    if rows and "output" in rows[0]:
        card.report["pii_output_rows"] = sum("output" in p["in"] for p in pii_rows)
    card.tables["pii"] = pii_rows[:TABLE_ROWS]


def _drop_invalid_format(rows, cfg, card):
    """Replies that are not valid in REPLY_FORMAT (formats.valid: an exact format parses; an as-reference
    one is complete by its own parts): training on them teaches the format's mistakes."""
    fmt = formats.get(cfg.reply_format)
    bad = [i for i, r in enumerate(rows) if not formats.valid(fmt, r["output"], r["output"])]
    card.tables["invalid_format"] = [
        {"id": rows[i]["id"], "label": rows[i]["label"], "source": rows[i]["source"], "output": rows[i]["output"],
         "parts": ", ".join(p for p, ok in formats.parts_present(fmt, rows[i]["output"]).items() if ok) or "none"}
        for i in bad][:TABLE_ROWS]
    card.report["invalid_format"] = len(bad)
    return _without(rows, set(bad))

def _drop_conflicts(rows, card):
    """Same normalised text, different labels: every row of the group goes (nobody knows which is right)."""
    conflicts = find_conflicts(rows)
    card.tables["conflicts"] = _group_table(rows, conflicts, "conflict")
    card.report["conflicts"] = len(conflicts)
    card.report["conflict_rows"] = sum(len(g) for g in conflicts)
    return _without(rows, {i for g in conflicts for i in g})


def _drop_exact_duplicates(rows, card):
    """Keep the first of each group of exact duplicates."""
    exact = find_exact_duplicates(rows)
    card.tables["exact_duplicates"] = _group_table(rows, exact, "exact_duplicate")
    card.report["exact_duplicates"] = len(exact)
    card.report["exact_duplicate_rows_dropped"] = sum(len(g) - 1 for g in exact)
    return _without(rows, {i for g in exact for i in g[1:]})


def _drop_over_long(rows, cfg, tokenizer, system_prompt, card):
    """Rows longer than MAX_SEQ_LEN tokens in the chat rendering (for the reply task: system prompt, ticket
    and reply): reported, dropped if DROP_TRUNCATED. -> (rows, {id: (sequence, prompt, answer) tokens})."""
    labels = sorted({r["label"] for r in rows})
    _check_labels(cfg, rows, labels)
    counts = token_counts(rows, tokenizer, labels, system_prompt, cfg.reply_format)
    lengths = None if counts is None else [c[0] for c in counts]
    by_id = {} if counts is None else {id(r): c for r, c in zip(rows, counts)}
    truncated = [i for i, n in enumerate(lengths or []) if n > cfg.max_seq_len]
    card.tables["truncated"] = sorted(({"id": rows[i]["id"], "tokens": lengths[i], "label": rows[i]["label"],
                                        "source": rows[i]["source"]} for i in truncated),
                                      key=lambda t: -t["tokens"])[:TABLE_ROWS]
    card.report["truncated"] = len(truncated)
    card.report["truncated_dropped"] = cfg.drop_truncated
    card.report["max_seq_len"] = cfg.max_seq_len
    if lengths:
        card.report["tokens"] = spread(lengths)
    else:
        card.report["tokens"] = None
        log.info("no tokenizer: token lengths and truncation not checked")
    if not (truncated and cfg.drop_truncated):
        return rows, by_id
    if len(truncated) == len(rows):
        raise ConfigError(f"every row of TRAIN_PATH={cfg.train_path!r} is longer than MAX_SEQ_LEN={cfg.max_seq_len} "
                          "tokens once the chat template and system prompt are applied "
                          f"(median {percentile(lengths, 50)}); "
                          "raise MAX_SEQ_LEN (a system prompt listing many labels is long) or set DROP_TRUNCATED=False")
    return _without(rows, set(truncated)), by_id


def _count_tokens(rows, counts, card):
    """Prompt and answer tokens of the curated rows (median, p95, max): what 06 prices a request at and
    how many new tokens a reply needs (the answer counts its end-of-turn token, as generation does)."""
    for name, k in (("prompt_tokens", 1), ("output_tokens", 2)):
        vals = [counts[id(r)][k] for r in rows if id(r) in counts]
        card.report[name] = spread(vals)


def _drop_near_duplicates(rows, cfg, sigs, card):
    """(rows, near-duplicate groups among them): with DROP_NEAR_DUPLICATES, the first row of each label
    in a group stays; a near twin with another label ("changing my address" / "changing my pin") is a
    contrast worth training on, and is reported, not dropped."""
    near = find_near_duplicates(rows, cfg.near_dup_threshold, sigs)
    card.tables["near_duplicates"] = _group_table(rows, near, "near_duplicate")
    card.report["near_duplicates"] = len(near)
    card.report["near_duplicate_rows"] = sum(len(g) for g in near)
    card.report["near_duplicate_label_mixed"] = sum(len({rows[i]["label"] for i in g}) > 1 for g in near)
    drop = set()
    if cfg.drop_near_duplicates:
        drop = {i for g in near for i in _extras(rows, g)}
        keep = {i: k for k, i in enumerate(i for i in range(len(rows)) if i not in drop)}
        near = [g for g in ([keep[i] for i in g if i in keep] for g in near) if len(g) > 1]
        rows = _without(rows, drop)
    card.report["near_duplicate_rows_dropped"] = len(drop)
    return rows, near


def _split(rows, near, heldout_in, cfg, card):
    """(train, heldout): our group-aware split, or the given held-out file; then MAX_TRAIN_PER_LABEL."""
    if heldout_in is None:
        tr, ho = split(rows, near, cfg.heldout_fraction, cfg.seed)
        train, heldout = [rows[i] for i in tr], [rows[i] for i in ho]
    else:
        train, heldout = rows, heldout_in
    if cfg.max_train_per_label:
        train, card.report["capped"] = cap_per_label(train, cfg.max_train_per_label, cfg.seed)
    return train, heldout


def _label_issues(train, heldout, cfg, card):
    """Likely wrong labels among the training and held-out rows (one check over both: more rows, better
    out-of-fold probabilities); with LABEL_ISSUES=drop the flagged training rows go. Held-out rows stay:
    dropping them would score the model on the rows a classifier finds easy."""
    if cfg.label_issues == "off":
        card.report["label_issues"] = {"mode": "off"}
        return train
    both = train + heldout
    issues, summary = label_issues.find(both, cfg.seed)
    summary["mode"] = cfg.label_issues
    in_train = {i["index"] for i in issues if i["index"] < len(train)}
    summary["flagged_train"], summary["flagged_heldout"] = len(in_train), len(issues) - len(in_train)
    truth = label_issues.planted(cfg.train_path) if cfg.heldout_path is None else None
    if truth is not None:
        summary["planted"] = label_issues.against(issues, truth, {r["id"] for r in both})
    summary["dropped"] = len(in_train) if cfg.label_issues == "drop" else 0
    card.report["label_issues"] = summary
    card.tables["label_issues"] = [{k: v for k, v in i.items() if k != "index"} for i in issues][:TABLE_ROWS]
    log.debug("%s", label_issues.reading(summary))   # 02 prints it; a log line would say it twice
    return _without(train, in_train) if cfg.label_issues == "drop" else train


def _count_labels(train, heldout, production, labels, cfg, card):
    """Rows per label and split; labels too rare to score, labels never trained on."""
    counts = {s: Counter(r["label"] for r in part)
              for s, part in (("train", train), ("heldout", heldout), ("production", production))}
    card.report["labels"] = {lab: {s: counts[s][lab] for s in counts}
                             for lab in sorted(set(labels) | set(counts["heldout"]) | set(counts["production"]))}
    card.report["rare_labels"] = sorted(lab for lab in labels if counts["train"][lab] + counts["heldout"][lab]
                                        < cfg.min_label_count)
    card.report["unseen_labels"] = sorted((set(counts["heldout"]) | set(counts["production"])) - set(labels))
    for lab in card.report["rare_labels"]:
        log.warning("label %r has only %d rows (< MIN_LABEL_COUNT=%d): its held-out score is noise",
                    lab, counts["train"][lab] + counts["heldout"][lab], cfg.min_label_count)


def _refuse_listed_commas(rows, cfg, system_prompt):
    """A label with a comma in a prompt that lists the labels separated by commas ('billing, feature,request')
    reads as two labels: refused, naming the first row of each such label and the fix."""
    if "{labels}" not in (system_prompt or prompts.DEFAULT_SYSTEM_PROMPT):
        return
    first = {}
    for r in rows:
        if "," in r["label"]:
            first.setdefault(r["label"], [r["source"], 0])[1] += 1
    check([f"{src}: field {cfg.label_field!r}: label {lab!r} ({n} row(s)) contains a comma, and the system prompt "
           f"lists the labels separated by commas, so the model reads it as {lab.count(',') + 1} labels; rename it "
           f"in the file (e.g. {lab.replace(',', '_')!r}), or write a SYSTEM_PROMPT without {{labels}}"
           for lab, (src, n) in first.items()], DataError, "labels the prompt cannot list")


def label_warnings(raw, train, heldout, labels, cfg, system_prompt=None, made_split=True):
    """What about the labels a reader must know, each {"label", "kind", "rows", "message"}: a label
    written with spaces around it in the file (stripped: "spaces"), a label with no held-out row because
    it has too few rows ("train_only": trained on, never scored), a label with a comma the prompt does
    not list ("comma")."""
    out = []
    spaced = defaultdict(list)
    for r in raw:
        if "label_raw" in r:
            spaced[r["label"]].append(r)
    for lab, rs in sorted(spaced.items()):
        out.append({"label": lab, "kind": "spaces", "rows": len(rs),
                    "message": f"label {lab!r}: {len(rs)} row(s) wrote it with spaces around it (first "
                               f"{rs[0]['source']}: {rs[0]['label_raw']!r}); they were stripped and count as {lab!r}"})
    n_train, n_held = Counter(r["label"] for r in train), Counter(r["label"] for r in heldout)
    for lab in labels if made_split else ():
        if n_train[lab] and not n_held[lab]:
            need = max(2, math.ceil(0.5 / cfg.heldout_fraction))  # round(fraction * n) >= 1, and one row stays in train
            out.append({"label": lab, "kind": "train_only", "rows": n_train[lab],
                        "message": f"label {lab!r} has {n_train[lab]} row(s) after curation, all in train: it is "
                                   f"trained on but never scored on held-out; give it at least {need} rows "
                                   f"(HELDOUT_FRACTION={cfg.heldout_fraction}) or merge it into another label"})
    if "{labels}" not in (system_prompt or prompts.DEFAULT_SYSTEM_PROMPT):
        for lab in (lab for lab in labels if "," in lab):
            out.append({"label": lab, "kind": "comma", "rows": n_train[lab] + n_held[lab],
                        "message": f"label {lab!r} contains a comma: fine with this SYSTEM_PROMPT, which does not "
                                   "list the labels, but ambiguous in any prompt that does"})
    for w in out:
        log.warning("%s", w["message"])
    return out


def format_label_warnings(warnings):
    """The label warnings as lines for a reader (02 shows them, the run summary repeats them)."""
    if not warnings:
        return "labels: no warnings (no stripped spaces, every label held out, no ambiguous names)"
    return "\n".join([f"labels: {len(warnings)} warning(s)"] + [f"  - {w['message']}" for w in warnings])


def _audit(train, heldout, production, cfg, sigs, card, given=None):
    """Held-out and production rows with a twin in training. A given split (`given`: its training rows
    as loaded) is audited as given, the figures its authors would see, and after our curation."""
    leak = audit(train if given is None else given, heldout, cfg.near_dup_threshold, sigs)
    card.report["leakage"] = leak["counts"]
    if given is not None:
        card.report["leakage_curated"] = audit(train, heldout, cfg.near_dup_threshold, sigs)["counts"]
    for k in ("exact", "exact_ci", "near", "conflicts"):
        card.tables[f"leakage_{k}"] = leak[k][:TABLE_ROWS]
    card.report["production_leakage"] = None
    if production:
        prod = audit(train, production, cfg.near_dup_threshold, sigs)
        card.report["production_leakage"] = prod["counts"]
        for k in ("exact", "near", "conflicts"):
            card.tables[f"production_leakage_{k}"] = prod[k][:TABLE_ROWS]


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
    if cfg.task == stages.REPLY:  # labels are only groups to split by; one group ('-') is fine
        if len(rows) < 2:
            raise ConfigError(f"TRAIN_PATH={cfg.train_path!r} has {len(rows)} usable row(s) after curation; need at "
                              "least 2 to train and evaluate; see the tables of what was dropped")
        return
    if len(labels) < 2:
        what = f"a single label {labels[0]!r}" if labels else "no rows left"
        raise ConfigError(f"TRAIN_PATH={cfg.train_path!r} has {what} after curation; a classifier needs "
                          "at least 2 labels; point TRAIN_PATH at the full export")
    need = 2 * len(labels)
    if len(rows) < need:
        raise ConfigError(f"TRAIN_PATH={cfg.train_path!r} has {len(rows)} usable rows after curation for "
                          f"{len(labels)} labels; need at least {need} (2 per label) to train and evaluate")
