"""One error type for every problem a user can fix: it lists them all, each with its fix."""
from dataclasses import MISSING, fields

EXPECTED = {int: "an int", float: "a number", bool: "True or False", str: "a string", tuple: "a list of names"}


class FtplayError(Exception):
    """A problem the user can fix; `problems` holds every one found, not just the first."""

    def __init__(self, problems, title="ftplay cannot continue"):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.title = title
        lines = [f"{title}: {len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class ConfigError(FtplayError):
    """Bad parameters: each problem names the parameter to change."""

    def __init__(self, problems, title="invalid parameters"):
        super().__init__(problems, title)


class DataError(FtplayError):
    """Bad data files: each problem names the file, line and field."""

    def __init__(self, problems, title="invalid data"):
        super().__init__(problems, title)


def check(problems, cls=ConfigError, title=None):
    """Raise `cls` listing every problem, if there is any."""
    if problems:
        raise cls(problems, title) if title else cls(problems)


def type_problems(cfg, parameters=None):
    """One problem per field of a config dataclass whose value is not of its declared type (int, float,
    bool, str, or tuple of str), naming the notebook parameter that sets it: `parameters` maps the
    fields whose parameter is not the field name upper-cased. An int is a float too; a bool is not a
    number; a list does for a tuple."""
    out = []
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if f.type is tuple:
            ok = isinstance(v, (tuple, list)) and all(isinstance(m, str) for m in v)
        elif f.type in EXPECTED:
            ok = isinstance(v, (int, float) if f.type is float else f.type) and \
                not (isinstance(v, bool) and f.type is not bool)
        else:
            continue  # optional and composite fields are checked by the config itself
        if not ok:
            name = (parameters or {}).get(f.name, f.name.upper())
            like = "" if f.default is MISSING else f" like {name}={f.default!r}"
            out.append(f"{name}={v!r} ({type(v).__name__}) must be {EXPECTED[f.type]}; set it in the parameters "
                       f"cell{like}")
    return out
