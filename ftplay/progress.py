"""Progress of long loops: a tqdm.auto bar in the notebook, and a line for `ftplay run`'s terminal."""
import os
import threading
import time
from pathlib import Path

ENV = "FTPLAY_PROGRESS"  # file `ftplay run` tails while a notebook executes (Watch); unset in JupyterLab
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
        self.desc, self.n, self.closed, self.reported = desc, 0, False, None
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
            if self.reported != self.n:  # the last update may have said it already
                self._report()

    def _report(self):
        self.last, self.reported = time.monotonic(), self.n
        if self.path:
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(line(self.desc, self.n, self.total, self.last - self.t0) + "\n")
            except OSError:  # the runner's file is a convenience: a loop never fails for it
                self.path = None


def bar(iterable=None, total=None, desc="", unit="it"):
    """Bar(iterable, total, desc, unit): use like tqdm.auto.tqdm."""
    return Bar(iterable, total, desc, unit)


# ---------------------------------------------------------------- the runner's side
class Watch:
    """While a notebook executes: name each cell that runs longer than CELL_S, print the progress lines the
    package's loops append to $FTPLAY_PROGRESS (Bar), and, when nothing was printed for
    QUIET_S, a line saying which cell still runs and for how long. The terminal is never silent longer."""

    CELL_S, QUIET_S, TICK_S = 3.0, 10.0, 0.5

    def __init__(self, stem, run_dir, say):
        self.stem, self.say = stem, say
        self.path = Path(run_dir) / ".progress"
        self.cell = None  # (number, of, title, started, announced)
        self.last_said = time.monotonic()
        self.stop = threading.Event()

    def engine(self):
        """A papermill engine name whose engine reports each cell's start to this watch."""
        import papermill.engines as pe

        watch = self

        class Engine(pe.NBClientEngine):
            @classmethod
            def execute_managed_notebook(cls, nb_man, kernel_name, **kw):
                start = nb_man.cell_start
                code = [i for i, c in enumerate(nb_man.nb.cells) if c.cell_type == "code"]

                def cell_start(cell, cell_index=None, **k):
                    if cell_index in code:
                        watch.started(code.index(cell_index) + 1, len(code), cell_title(nb_man.nb, cell_index))
                    return start(cell, cell_index, **k)

                nb_man.cell_start = cell_start
                return super().execute_managed_notebook(nb_man, kernel_name, **kw)

        pe.papermill_engines.register("ftplay", Engine)
        return "ftplay"

    def started(self, number, of, title):
        self.cell = [number, of, title, time.monotonic(), False]

    def _print(self, text):
        self.say(f"[ftplay] {self.stem}: {text}")
        self.last_said = time.monotonic()

    def _loop(self):
        seen = 0
        while not self.stop.wait(self.TICK_S):
            now, cell = time.monotonic(), self.cell
            if cell and not cell[4] and (now - cell[3] >= self.CELL_S or now - self.last_said >= self.QUIET_S):
                cell[4] = True
                self._print(f"cell {cell[0]}/{cell[1]} ({cell[2]}) running")
            try:
                text = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
            except OSError:
                text = ""
            end = text.rfind("\n") + 1  # whole lines only: a loop may be writing the next one
            for line in text[seen:end].splitlines():
                self._print(line)
            seen = max(seen, end)
            if cell and now - self.last_said >= self.QUIET_S:
                self._print(f"cell {cell[0]}/{cell[1]} ({cell[2]}) still running, {fmt_seconds(now - cell[3])}")

    def __enter__(self):
        self.path.unlink(missing_ok=True)
        os.environ[ENV] = str(self.path)  # the kernel inherits it: ftplay.progress writes there
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        os.environ.pop(ENV, None)
        self.path.unlink(missing_ok=True)


def cell_title(nb, index, code_first=False):
    """What a reader calls a cell: the heading of the markdown above it, else its first line of code
    (`code_first`: the code line, then the heading)."""
    first = next((line.strip() for line in nb.cells[index].source.splitlines()
                  if line.strip() and not line.startswith("#")), "")
    if code_first and first:
        return f"{first[:60]} ({cell_title(nb, index)})"
    for c in reversed(nb.cells[:index]):
        if c.cell_type == "markdown":
            heads = [line.lstrip("#").strip() for line in c.source.splitlines() if line.startswith("#")]
            if heads:
                return heads[-1][:60]
            break
    return first[:60]
