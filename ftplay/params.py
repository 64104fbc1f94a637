"""Notebook parameters: what each parameters cell declares, and the types and ranges checked before a run.

`ftplay run` checks every value a params file gives, for every notebook of the plan, before anything
runs: its type against the notebook's annotation (`check_types`), its range against `RANGES`
(`check_ranges`). Every numeric parameter of every notebook has an entry in `RANGES` (a test parses
the parameters cells), so a new one cannot slip through unchecked.
"""
import functools
import re
from pathlib import Path

from . import formats, label_issues, recipes, stages
from .config import GATE_RANGES, SCORING_METHODS
from .config import RANGES as SCORING_RANGES
from .errors import ConfigError
from .ranges import OPEN_SHARE, POSITIVE_SHARE, SEED, SHARE, Range, above, at_least


def declared_parameters(path):
    """{NAME: {inferred_type_name, default, help}} from a notebook's `parameters` cell."""
    p = Path(path)
    return _inspect(str(p), p.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _inspect(path, _mtime):
    import papermill as pm

    return pm.inspect_notebook(path)


# Every numeric notebook parameter, by name (a name means the same thing in every notebook that
# declares it). The training, scoring and gate knobs' rules are their configs' own (recipes.TrainConfig,
# config.ScoringConfig and gate.GateConfig check with the same Range objects); data.DataConfig and
# cost.CostInputs check the others.
# Here they only move the check before anything runs.
RANGES = {**recipes.RANGES, **SCORING_RANGES, **GATE_RANGES,
    # data and prompts (00, 02)
    "HELDOUT_FRACTION": OPEN_SHARE, "NEAR_DUP_THRESHOLD": POSITIVE_SHARE, "MIN_LABEL_COUNT": at_least(1),
    "MAX_TRAIN_PER_LABEL": at_least(0), "SEED": SEED,
    "N_SHOTS": Range(0, 100),   # each shot is a whole example in the prompt: hundreds overflow any context
    "MAX_ROWS": at_least(0),
    # scoring (00, 04)
    "MIN_SLICE": at_least(1),
    "MAX_NEW_TOKENS": Range(8, 2048, also=(0,)),

    # training (03)
    "EVAL_FRACTION": Range(0, 1, hi_open=True), "NUM_GPUS": at_least(1),
    # serving (05)
    # a load test's size is bounded like N_BOOT: a typo (1e9 requests, a million connections) would run for days
    # or exhaust the machine's sockets before anything said why; an answer cap beyond 2,048 sizes the server's
    # context (serve_tasks.model_len_for) past what a triage label needs by a thousandfold
    "PORT": Range(0, 65535), "LOAD_TEST_REQUESTS": Range(1, 100_000), "LOAD_TEST_CONCURRENCY": Range(1, 1024),
    "MAX_TOKENS": Range(1, 2048), "REPLY_MAX_TOKENS": Range(8, 2048), "STARTUP_TIMEOUT_S": above(0),
    "STRUCTURED_ROWS": at_least(0),
    # decision and costs (01, 06)
    "MONTHLY_REQUESTS": at_least(0), "TOKENS_PER_REQUEST": at_least(0), "LABELED_EXAMPLES": at_least(0),
    "CURRENT_QUALITY": SHARE, "TARGET_QUALITY": SHARE, "INPUT_TOKENS_PER_REQUEST": at_least(0),
    "OUTPUT_TOKENS_PER_REQUEST": at_least(0), "REPLY_OUTPUT_TOKENS_PER_REQUEST": at_least(0),
    "HOSTED_PRICE_IN_PER_M": at_least(0),
    "HOSTED_PRICE_OUT_PER_M": at_least(0), "GPU_PRICE_PER_HOUR": at_least(0), "SERVING_TOKENS_PER_S": above(0),
    "SERVING_UTILISATION": POSITIVE_SHARE, "MIN_GPUS_ALWAYS_ON": at_least(0), "TRAINING_GPU_HOURS": at_least(0),
    "MODEL_PARAMS_B": above(0), "TRAIN_EXAMPLES": at_least(0), "TOKENS_PER_EXAMPLE": at_least(0),
    "GPU_PEAK_TFLOPS": above(0), "MFU_ASSUMED": POSITIVE_SHARE, "TRAINING_RUNS": at_least(1),
    "HOSTED_FT_PRICE_PER_M_TRAIN_TOKENS": at_least(0), "HOSTED_FT_PRICE_IN_PER_M": at_least(0),
    "HOSTED_FT_PRICE_OUT_PER_M": at_least(0), "MODAL_GPU_PRICE_PER_S": at_least(0),
    "MODAL_SERVING_UTILISATION": POSITIVE_SHARE, "CPU_PRICE_PER_HOUR": at_least(0), "TARGET_ACCURACY": POSITIVE_SHARE,
    "ESCALATION_SHARE": Range(0, 1, hi_open=True), "MAX_PAYBACK_MONTHS": above(0),
}
# Text parameters that take one of a few values, checked with the numbers (check_ranges).
RECIPES = ("auto", "seed", "embedded")   # 03's RECIPE: auto picks embedded or seed by the model's kind
CHOICES = {
    "SCORING_METHOD": SCORING_METHODS,  # config.ScoringConfig's, which scoring.LabelScorer takes
    # each checked where it is used too, but only once its notebook runs (SERVE_BACKEND minutes into a run):
    # listed here, a wrong one stops the run before the first notebook
    "ENGINE": recipes.ENGINES,
    "RECIPE": RECIPES,
    "SECOND_ADAPTER": ("", *recipes.EXPERIMENTS),
    "SERVE_BACKEND": ("auto", "cpu", "cuda"),           # serve.BACKENDS (tests/test_runner.py holds them equal)
    "FORMAT": ("auto", "csv", "instruction", "chat", "log"),   # dataload.FORMATS (the same test)
    "TASK": tuple(stages.TASKS),
    "REPLY_FORMAT": tuple(formats.FORMATS),
    "LABEL_ISSUES": label_issues.MODES,                  # data.DataConfig checks it too
}
# Numeric parameters with no range, each with why (none today: a new one goes in RANGES or here).
UNBOUNDED = {}

# Parameters that define a run's data and model: every notebook of one run directory must agree on
# them, or its records describe two different runs (run_checks.check_same_run).
RUN_IDENTITY = ("MODEL", "TASK", "OUTPUT_FIELD", "REPLY_FORMAT", "TRAIN_PATH", "HELDOUT_PATH", "PRODUCTION_PATH",
                "FORMAT", "TEXT_FIELD", "LABEL_FIELD", "HELDOUT_FRACTION", "NEAR_DUP_THRESHOLD", "MAX_TRAIN_PER_LABEL",
                "REDACT_PII", "DROP_TRUNCATED", "SYSTEM_PROMPT", "SCORING_METHOD", "LABEL_ISSUES",
                "HUMAN_LABELS_PATH")


def is_numeric(type_name):
    """Whether a parameters-cell annotation (as papermill reports it) is a number, optional or not."""
    t = (type_name or "").replace(" ", "")
    t = t[len("Optional["):-1] if t.startswith("Optional[") and t.endswith("]") else t
    return t in ("int", "float")


# ---------------------------------------------------------------- checks
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def shown(name, value):
    """`value` as a message may show it: a secret-named parameter's (API_KEY) never, whatever its type."""
    from .rundir import is_secret

    return "'***'" if is_secret(name) else repr(value)


def redact_url(url):
    """`url` with the password of its userinfo replaced by *** (http://user:***@host/v1)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        u = urlsplit(url)
    except ValueError:
        return "***"
    if u.password is None:
        return url
    host = u.hostname or ""
    netloc = f"{u.username}:***@{host}" + (f":{u.port}" if u.port else "")
    return urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


def check_secrets(todo):
    """Secrets that would end up in a file: a key in a URL's userinfo (http://user:sk-...@host/v1, recorded with
    the parameters in summary.json, the executed notebook and its HTML), and a key pasted into a *_ENV parameter,
    which names the environment variable holding the key. Refused before anything runs, the value not echoed."""
    problems, seen = [], set()
    for stem, _path, values in todo:
        for name, value in values.items():
            if not isinstance(value, str) or (name, value) in seen:
                continue
            seen.add((name, value))
            if name.endswith("_ENV") and value and not ENV_NAME.fullmatch(value):
                problems.append(f"{name} holds something that is not the name of an environment variable (a key "
                                f"pasted in?): put the key in an environment variable and set {name} to its name, "
                                "e.g. OPENAI_API_KEY; the value is not shown here")
            elif name.endswith("_URL") and "@" in value and redact_url(value) != value:
                problems.append(f"{name}={redact_url(value)!r} carries a password in the URL, which the run would "
                                "record in its notebooks and summary: drop it from the URL and give the key through "
                                "ENDPOINT_API_KEY_ENV (the name of an environment variable)")
    if problems:
        raise ConfigError(problems, "cannot run the playbook")


def check_types(todo):
    """Every value a params file gives, against the type its notebook's parameters cell declares
    (int, float, bool, str, list[str], Optional[...]), for every notebook of the plan, before
    anything runs: one error listing each parameter, the value and the fix."""
    problems, seen = [], set()
    for stem, path, values in todo:
        declared = declared_parameters(path)
        for name, value in values.items():
            want = (declared.get(name) or {}).get("inferred_type_name") or "None"
            if (name, repr(value), want) in seen or fits(value, want):
                continue
            seen.add((name, repr(value), want))
            hint = ""
            if isinstance(value, str) and fits(literal(value), want):
                hint = (" (YAML read it as text: write 0.002, not 2e-3)" if "e" in value.lower() else
                        " (written in quotes: drop them)")
            problems.append(f"{stem}: {name}={shown(name, value)} ({type(value).__name__}) must be {want}{hint}; "
                            "fix it in the params file")
    if problems:
        raise ConfigError(problems, "cannot run the playbook")


def check_ranges(todo):
    """Every number a params file gives, against its range in RANGES, and every text of CHOICES against its
    values, for every notebook of the plan, before anything runs (after check_types: only values of the right
    type are looked at). One error naming each notebook, parameter, value, rule and a value that works."""
    problems, seen = [], set()
    for stem, path, values in todo:
        declared = declared_parameters(path)
        for name, value in values.items():
            choice = name in CHOICES and isinstance(value, str)   # a value of another type is check_types' to name
            if choice and value not in CHOICES[name] and (name, repr(value)) not in seen:
                seen.add((name, repr(value)))
                problems.append(f"{stem}: {name}={value!r} is not one of {', '.join(map(repr, CHOICES[name]))}; set "
                                f"{name} in the params file to one of them")
                continue
            rule = RANGES.get(name)
            if rule is None or not isinstance(value, (int, float)) or isinstance(value, bool) or rule.holds(value):
                continue
            if (name, repr(value)) in seen:
                continue
            seen.add((name, repr(value)))
            default = literal((declared.get(name) or {}).get("default", "None"))
            example = f" such as {default!r}, its default" if isinstance(default, (int, float)) and \
                not isinstance(default, bool) and rule.holds(default) else ""
            problems.append(f"{stem}: {name}={value!r} must be {rule}; set {name} in the params file to a value "
                            f"{rule}{example}")
    if problems:
        raise ConfigError(problems, "cannot run the playbook")


def fits(value, want):
    """Whether `value` has the type papermill reports for a parameter (`want`: its annotation)."""
    want = want.replace(" ", "")
    if want.startswith("Optional[") and want.endswith("]"):
        return value is None or fits(value, want[len("Optional["):-1])
    if want == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if want == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if want == "bool":
        return isinstance(value, bool)
    if want == "str":
        return isinstance(value, str)
    if want in ("list", "list[str]"):
        return isinstance(value, list) and (want == "list" or all(isinstance(v, str) for v in value))
    return True  # an annotation this check does not know: the notebook's own validation decides


def literal(text):
    """A parameters-cell default (source text) as a Python value; the text itself when not a literal."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
