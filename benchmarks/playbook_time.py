"""The default playbook's wall time: per-notebook seconds against each notebook's budget, median of N runs.

Runs `ftplay run` (the default playbook: both tasks, every demonstration) --runs times, one after the
other, each into a fresh folder, with the embedded models already built (the cache `make setup` fills).
Prints a table per notebook (each run's seconds, the median, the budget in
stages.BUDGET_S), the output lines of the last run's executed notebooks against run_summary.OUTPUT_LINES_BUDGET, and,
as its last line, JSON {"total_s" (median of the runs' sums), "budget_s", "notebooks": {name: median s},
"runs": [{name: s}], "within_budget", "output_lines", "output_lines_budget", "output_lines_within_budget"}.

    .venv/bin/python benchmarks/playbook_time.py --runs 2
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ftplay import runner, stages  # noqa: E402
from ftplay.run_summary import OUTPUT_LINES_BUDGET, output_lines  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--params", default=None, help="a params YAML (default: none, the default playbook)")
    ap.add_argument("--keep", default="", help="folder to keep the runs in (default: a temporary one)")
    args = ap.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ftplay-playbook-time-"))
    runs, walls = [], []
    for i in range(args.runs):
        t0 = time.time()
        _, summary = runner.run(args.params, out=root / f"run{i + 1}", progress=lambda line: print(line, flush=True),
                                force=True)
        walls.append(round(time.time() - t0, 1))
        failed = {k: v for k, v in summary["notebooks"].items() if v["status"] != "ok"}
        if failed:
            sys.exit(f"run {i + 1} failed: {failed}")
        runs.append({k: v["seconds"] for k, v in summary["notebooks"].items()})
    last = root / f"run{args.runs}"
    lines = {str(p.relative_to(last)): output_lines(p) for p in sorted(last.rglob("notebooks/*.ipynb"))}
    names = list(runs[0])
    med = {n: round(statistics.median(r.get(n, 0) for r in runs), 1) for n in names}
    total = round(statistics.median(sum(r.values()) for r in runs), 1)
    print(f"\n{'notebook':<30} " + " ".join(f"run{i + 1:>5}" for i in range(len(runs))) + "   median   budget")
    for n in names:
        budget = stages.budget(n)
        print(f"{n:<30} " + " ".join(f"{r.get(n, 0):>8.1f}" for r in runs) + f" {med[n]:>8.1f} {budget or '-':>8}")
    print(f"{'total (notebooks)':<30} " + " ".join(f"{sum(r.values()):>8.1f}" for r in runs)
          + f" {total:>8.1f} {stages.BUDGET_TOTAL_S:>8}")
    print(f"wall time per run (notebooks, summary and report): {walls}")
    print(f"output lines of run {args.runs}'s executed notebooks: " + ", ".join(f"{k} {v}" for k, v in lines.items())
          + f"; {sum(lines.values())} in all (at most {OUTPUT_LINES_BUDGET})")
    print(json.dumps({"total_s": total, "budget_s": stages.BUDGET_TOTAL_S, "notebooks": med, "runs": runs,
                      "wall_s": walls, "within_budget": total <= stages.BUDGET_TOTAL_S,
                      "output_lines": sum(lines.values()), "output_lines_budget": OUTPUT_LINES_BUDGET,
                      "output_lines_within_budget": sum(lines.values()) <= OUTPUT_LINES_BUDGET}))


if __name__ == "__main__":
    main()
