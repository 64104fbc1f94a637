"""Progress of long loops: a tqdm.auto bar in the notebook, and a line for `ftplay run`'s terminal."""
import os
import time

ENV = "FTPLAY_PROGRESS"  # file `ftplay run` tails while a notebook executes (runner.Watch); unset in JupyterLab
EVERY_S = 5.0            # at most one line per loop this often: the runner prints at least every 10 s


def fmt_seconds(s):
    """'42 s', '3 min 05 s', '1 h 02 min'."""
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def line(desc, n, total, elapsed):
    """'label scoring: 120/237 (51%), 12 s, about 11 s left' (no total: count and time only)."""
    if not total:
        return f"{desc}: {n} done, {fmt_seconds(elapsed)}"
    left = elapsed / n * (total - n) if n else None
    tail = f", about {fmt_seconds(left)} left" if left is not None and n < total else ""
    return f"{desc}: {n}/{total} ({100 * n // total}%), {fmt_seconds(elapsed)}{tail}"


class Bar:
    """tqdm.auto bar (TQDM_DISABLE=1 hides it) that also appends a progress line to $FTPLAY_PROGRESS every
    EVERY_S seconds and at the end. Iterate over it, or call update(n); close() when done (iteration and
    `with` do)."""

    def __init__(self, iterable=None, total=None, desc="", unit="it"):
        from tqdm.auto import tqdm

        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc, self.n, self.closed = desc, 0, False
        self.t0 = self.last = time.monotonic()
        # TQDM_DISABLE is passed explicitly: tqdm.notebook turns a missing `disable` into False before tqdm
        # reads the environment (tqdm 4.70), so under papermill the bars would freeze at 0% in the executed copy
        off = os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false")
        self.bar = tqdm(total=self.total, desc=desc, unit=unit, disable=off)
        self.path = os.environ.get(ENV)

    def __iter__(self):
        try:
            for x in self.iterable:
                yield x
                self.update(1)
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n=1):
        self.n += n
        self.bar.update(n)
        if time.monotonic() - self.last >= EVERY_S:
            self._report()

    def close(self):
        if not self.closed:
            self.closed = True
            self.bar.close()
            self._report()

    def _report(self):
        self.last = time.monotonic()
        if self.path:
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(line(self.desc, self.n, self.total, self.last - self.t0) + "\n")
            except OSError:  # the runner's file is a convenience: a loop never fails for it
                self.path = None


def bar(iterable=None, total=None, desc="", unit="it"):
    """Bar(iterable, total, desc, unit): use like tqdm.auto.tqdm."""
    return Bar(iterable, total, desc, unit)
