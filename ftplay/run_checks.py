"""A run refused before anything runs: bad inputs, a notebook without what it needs, an unreadable record,
other parameters than the run directory's, an adapter trained on another base. Each problem names the fix."""
import os
from pathlib import Path

from . import identity, records, rundir, stages
from .errors import ConfigError, FtplayError
from .params import RUN_IDENTITY, redact_url
from .run_plan import ROOT, effective, recorded_params


def check_inputs(todo):
    """Catch bad parameters before any long work: a MODEL that cannot be found, a data file that
    is missing or unreadable, training data with a single label. Uses each notebook's effective
    values (its defaults, overridden by the params file)."""
    from . import dataload, models

    problems, seen = [], set()
    for stem, path, values in todo:
        eff = effective(path, values)
        for name, value in eff.items():
            if (name, str(value)) in seen:
                continue
            seen.add((name, str(value)))
            if name == "MODEL":
                try:
                    ref = models.resolve(value)
                    problems += [f"{stem}: {p}" for p in tokenizer_problems(ref, name)]
                except ConfigError as e:
                    problems += [f"{stem}: {p}" for p in e.problems]
            elif name == "ENDPOINT_URL" and value:
                problems += [f"{stem}: {p}" for p in endpoint_problems(value, eff.get("ENDPOINT_MODEL"),
                                                                      eff.get("ENDPOINT_API_KEY_ENV"))]
            elif name.endswith("_PATH") and value and _existing(value) is None:
                problems.append(f"{stem}: {name}={value!r} does not exist; set {name} to an existing file "
                                "(relative paths are relative to the repository root)")
        train = eff.get("TRAIN_PATH")
        p = _existing(train)
        key = ("load", str(p), eff.get("TASK"), eff.get("OUTPUT_FIELD"))
        if p is not None and key not in seen:
            seen.add(key)
            try:
                reply = eff.get("TASK") == stages.REPLY
                rows = dataload.load(p, eff.get("FORMAT", "auto"), eff.get("TEXT_FIELD", "text"),
                                     eff.get("LABEL_FIELD", "label"),
                                     output_field=eff.get("OUTPUT_FIELD") if reply else None)
                labels = {r["label"] for r in rows}
                if len(labels) < 2 and not reply:   # a reply task may have no categories (one group)
                    problems.append(f"TRAIN_PATH={train!r} has {len(labels)} label(s) "
                                    f"{sorted(labels)}; a classifier needs at least 2: point TRAIN_PATH at the full "
                                    "export")
            except FtplayError as e:
                problems += e.problems[:20]
    if problems:
        raise ConfigError(problems, "cannot run the playbook")


def tokenizer_problems(ref, param="MODEL"):
    """A model folder whose tokenizer has ids beyond its embedding table (a tokenizer saved from another model,
    tokens added without resizing): every prompt holding such a token would die in 00 with `IndexError: index out
    of range in self`. Checked for folders a user points at (the built models are consistent by construction)."""
    if ref.kind != "local":
        return []
    import json

    try:
        config = json.loads((Path(ref.path) / "config.json").read_text())
        vocab = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
        from transformers import AutoTokenizer

        n = len(AutoTokenizer.from_pretrained(ref.path))
    except Exception as e:  # any library error reading it: named, with the library's words
        return [f"{param}={ref.requested!r}: its tokenizer cannot be read ({type(e).__name__}: {str(e)[:120]}); "
                "save the model's own tokenizer into the folder (tokenizer.save_pretrained)"]
    if isinstance(vocab, int) and n > vocab:
        return [f"{param}={ref.requested!r}: its tokenizer has {n:,} tokens but the model's embedding table {vocab:,} "
                f"(config.json vocab_size): the {n - vocab:,} beyond it would fail every prompt that uses them; save "
                "the tokenizer the model was trained with into the folder, or resize the embeddings "
                "(model.resize_token_embeddings(len(tokenizer))) and save both"]
    return []


ENDPOINT_TIMEOUT_S = 5.0


def endpoint_problems(url, model, key_env, timeout=ENDPOINT_TIMEOUT_S):
    """ENDPOINT_URL reached before anything runs: one GET of <url>/models with the key in $ENDPOINT_API_KEY_ENV.
    No answer within `timeout`, or a refused key, is a problem naming the parameter (00 would otherwise fail on
    it minutes in); any other answer (some providers have no /models) is left to 00. ENDPOINT_MODEL must be set."""
    import httpx

    out = [] if model else ["ENDPOINT_URL is set but ENDPOINT_MODEL is empty: set ENDPOINT_MODEL to the model name "
                            "at that endpoint (e.g. gpt-4o-mini)"]
    shown = redact_url(url)
    key = os.environ.get(key_env or "", "")
    try:
        r = httpx.get(url.rstrip("/") + "/models", timeout=timeout,
                      headers={"Authorization": f"Bearer {key}"} if key else {})
    except httpx.HTTPError as e:
        what = f"gave no answer within {timeout:g} s" if isinstance(e, httpx.TimeoutException) else "cannot be reached"
        return out + [f"ENDPOINT_URL={shown!r} {what} ({type(e).__name__}): check the URL and that the server is up, "
                      "or leave ENDPOINT_URL empty to skip the hosted comparison"]
    if r.status_code in (401, 403):
        why = f"the key in ${key_env}" if key else f"no key (${key_env} is not set in this environment)"
        out.append(f"ENDPOINT_URL={shown!r} refused {why} (HTTP {r.status_code}): set ENDPOINT_API_KEY_ENV to the "
                   "name of the environment variable holding a valid key, and export it")
    return out


def check_order(todo, run_dir=None):
    """A notebook run without what it cannot do without (03 without 02's split, 04 and 05 without
    03's adapter unless ADAPTER_DIR names one) is refused up front, naming what to run first,
    instead of failing inside the notebook with a missing file."""
    problems, planned = _unreadable_records(todo, run_dir), []
    for stem, path, values in todo:
        adapter_given = bool(effective(path, values).get("ADAPTER_DIR"))
        for need in stages.STAGES[stem].needs if stem in stages.STAGES else ():
            if need in planned or (need == stages.TRAIN and adapter_given):
                continue
            if run_dir is None or not records.path(run_dir, need).exists():
                where = f"{run_dir} has no {stages.record_name(need)}" if run_dir else "a fresh run directory"
                problems.append(f"{stem} needs {need}'s output and {where}: run {need[:2]} first "
                                f"(--only {need[:2]},{stem[:2]}{' --out ' + str(run_dir) if run_dir else ''})"
                                + (" or set ADAPTER_DIR" if need == stages.TRAIN else ""))
        planned.append(stem)
    if problems:
        raise ConfigError(sorted(set(problems), key=problems.index), "cannot run the playbook")


def _unreadable_records(todo, run_dir):
    """A record already in `run_dir` that this run does not rewrite must be readable: a notebook that reads
    it would stop inside, and the summary and report read them all at the end of the run."""
    rewritten = {stem for stem, _, _ in todo}
    problems = []
    for stage in stages.STEMS if run_dir else ():
        if stage in rewritten or not records.path(run_dir, stage).exists():
            continue
        try:
            records.read(run_dir, stage)
        except FtplayError as e:
            readers = [s for s in rewritten if stage in stages.STAGES.get(s, stages.Stage(s)).reads]
            who = (f"{readers[0]} reads {stage}'s record" if readers else
                   "the run's summary and report read every record")
            problems.append(f"{who}: {e.problems[0]} (--only {stage[:2]} --out {run_dir}), or delete it")
    return problems


def check_same_run(todo, run_dir, force=False):
    """A run into a directory whose finished notebooks ran with other parameters is refused (unless
    `force`), naming each parameter: the same notebook with another value of any parameter, or any
    notebook with another value of a parameter that defines the run's data and model (RUN_IDENTITY).
    Otherwise the records would describe two runs: summary.json naming one TRAIN_PATH, data/ holding
    another's rows. The same parameters (a rerun, --only to continue) pass."""
    if run_dir is None or force or not Path(run_dir, "notebooks").is_dir():
        return
    planned = {stem for stem, _, _ in todo}
    done = {s for s in stages.STEMS if records.path(run_dir, s).exists()}
    old = recorded_params(run_dir, stems=done, lenient=planned)
    problems = []
    for stem, path, values in todo:
        new = effective(path, values)
        for old_stem, before in old.items():
            shared = new.keys() & before.keys() - {"RUN_DIR"}
            for name in sorted(shared if old_stem == stem else shared & set(RUN_IDENTITY)):
                if rundir.is_secret(name) or _same(new[name], before[name]):
                    continue
                problems.append(f"{name}={new[name]!r} for {stem}, but {old_stem} in {run_dir} ran with "
                                f"{name}={before[name]!r}")
    if problems:
        problems = sorted(set(problems), key=problems.index)
        problems.append(f"a run with other parameters goes into a new --out; to run into {run_dir} anyway, add "
                        "--force (the notebooks not run again keep the results of their old parameters)")
        raise ConfigError(problems, "this run would mix two runs' results in one directory")


def _same(a, b):
    """Parameter values equal as recorded (a JSON round trip turns tuples into lists)."""
    def norm(v):
        return list(v) if isinstance(v, tuple) else v

    return norm(a) == norm(b)


def check_adapters(todo, run_dir=None):
    """An adapter reused rather than trained by this run (ADAPTER_DIR, or the one 03 recorded in an
    existing run directory when 03 is not run again) must have been trained on MODEL: a changed base
    stops the run before anything runs, with the fix (see identity.check_base)."""
    trains = any(stem == stages.TRAIN for stem, _, _ in todo)
    reused = run_dir and not trains and records.path(run_dir, stages.TRAIN).exists()
    problems, seen = [], set()
    for stem, path, values in todo:
        eff = effective(path, values)
        if "ADAPTER_DIR" not in eff:
            continue
        if eff["ADAPTER_DIR"]:
            source = _existing(eff["ADAPTER_DIR"])
            if source is None:
                problems.append(f"{stem}: ADAPTER_DIR={eff['ADAPTER_DIR']!r} does not exist; set it to an adapter "
                                "folder, or leave it empty to use the one 03 trains")
                continue
        elif reused:
            source = Path(run_dir)  # 03's record there pins the base of the adapter 04 and 05 will use
        else:
            continue
        key = (str(source), str(eff.get("MODEL")))
        if key in seen:
            continue
        seen.add(key)
        try:
            base = identity.check_base(source, eff.get("MODEL", "embedded"))
        except ConfigError as e:
            problems += [f"{stem}: {p}" for p in e.problems]
            continue
        if base.changed:
            problems.append(f"{stem}: {base.message}")
    if problems:
        raise ConfigError(problems, "cannot run the playbook")


def _existing(value):
    """The path a *_PATH parameter names (absolute, or relative to the repository root), if it exists."""
    if not value:
        return None
    p = Path(str(value))
    p = p if p.is_absolute() else ROOT / p
    return p if p.exists() else None


RUN_MARKERS = ("summary.json", ".ftplay.lock")


def _creatable(p, out):
    """Make the folder `p` and its missing parents, then remove them again: a place that only refuses the mkdir
    itself (/proc, /sys, a read-only mount, which os.access does not see for root) is refused up front."""
    made = []
    try:
        for d in reversed([p, *p.parents]):
            if not d.exists():
                d.mkdir()
                made.append(d)
    except OSError as e:
        raise ConfigError([f"--out {out}: cannot make {d} ({e.strerror or type(e).__name__}): give a folder you can "
                           "write to"]) from None
    finally:
        for d in reversed(made):
            d.rmdir()


def check_out_dir(out, repo=None):
    """Refuse an --out that is not, and cannot become, a run directory, before anything is written: a file, a
    path under a file, a symlink loop, a place that cannot be written, the repository itself (or a folder holding
    it), a folder of tracked files, and a folder that holds files of its own but no run. An empty or new folder,
    or a run written before, passes. Returns the resolved path."""
    repo = Path(repo or ROOT)
    try:
        p = Path(out).expanduser().resolve(strict=False)
    except (RuntimeError, OSError) as e:   # a symlink loop
        raise ConfigError([f"--out {out}: cannot be resolved ({e}): give a plain folder"]) from None
    existing = next((a for a in (p, *p.parents) if a.exists() or a.is_symlink()), None)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == p else f"is under {existing}, which is a file"
        raise ConfigError([f"--out {out} {where}: give a folder (a new one is made)"])
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError([f"--out {out}: {existing} cannot be written here: give a folder you can write to"])
    if p == repo or repo.is_relative_to(p) or (p / ".git").exists() or (p / "pyproject.toml").exists():
        raise ConfigError([f"--out {out} is the repository or a project folder ({p}): its notebooks and data would "
                           "be overwritten with a run's; give a new folder, e.g. runs/mine"])
    if not p.is_dir():
        _creatable(p, out)
        return p
    if p.is_relative_to(repo):
        import subprocess

        try:
            tracked = subprocess.run(["git", "-C", str(repo), "ls-files", "--", str(p)], capture_output=True,
                                     text=True, timeout=30).stdout.split()
        except (OSError, subprocess.SubprocessError):
            tracked = []
        if tracked:
            raise ConfigError([f"--out {out} holds {len(tracked)} file(s) tracked by git (e.g. {tracked[0]}): a run "
                               "would overwrite them; give a new folder, e.g. runs/mine"])
    entries = sorted(x.name for x in p.iterdir())
    is_run = any(m in entries for m in RUN_MARKERS) or any(f"{s}.json" in entries for s in stages.STEMS)
    if entries and not is_run and set(entries) - {"notebooks"}:
        raise ConfigError([f"--out {out} already holds {len(entries)} entries that are not a run's "
                           f"({', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''}): give an empty or new "
                           "folder, or a run directory written by ftplay"])
    return p
