"""One error type for every problem a user can fix: it lists them all, each with its fix."""


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
