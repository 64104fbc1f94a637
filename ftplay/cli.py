"""`ftplay run | report | refit | build-model`: the command-line entry points."""
import argparse
import logging
import sys

from .errors import ConfigError, FtplayError


def parser():
    """The `ftplay` argument parser (also what tests check generated command lines against)."""
    ap = argparse.ArgumentParser(prog="ftplay", description="Run the fine-tuning playbook.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute the notebooks with papermill into a new run directory")
    r.add_argument("--params", help="YAML of NAME: value (and notebooks: {stem: {NAME: value}})")
    r.add_argument("--only", help="comma-separated notebook numbers, e.g. 02,03")
    r.add_argument("--out", help="run directory to use (default: runs/<timestamp>)")
    r.add_argument("--resume", action="store_true", help="go on in --out where a stopped run left off: run only the "
                   "notebooks of the plan that have no record there yet")
    r.add_argument("--force", action="store_true", help="run into an --out whose notebooks ran with other "
                   "parameters (refused otherwise: its records would describe two runs)")
    rp = sub.add_parser("report", help="answer the ship checklist from a run directory's JSON records")
    rp.add_argument("run_dir")
    rp.add_argument("--html", help="where to write the HTML page (default: <run_dir>/ship_report.html)")
    f = sub.add_parser("refit", help="re-run a run's notebooks on a new base model with the same parameters, "
                       "then print the old and new runs side by side")
    f.add_argument("--from", dest="old", required=True, help="the earlier run directory (written by `ftplay run`)")
    f.add_argument("--model", required=True, help="the new base: 'embedded:1', a model folder or a hub id")
    f.add_argument("--out", help="new run directory (default: runs/<timestamp>)")
    b = sub.add_parser("build-model", help="build the embedded tiny model (or, with --like, a tiny stand-in "
                       "of a real model family) and print its path")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--like", metavar="HUB_ID", help="e.g. Qwen/Qwen2.5-7B-Instruct: its tokenizer and chat "
                   "template on a tiny random body (ftplay/standins.py)")
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)  # one line per notebook is ours to print
    # the runner reads the training file once to check its labels before anything runs; the notebooks
    # that load it say how many rows they read
    logging.getLogger("ftplay.dataload").setLevel(logging.WARNING)
    try:
        if args.cmd == "build-model":
            from . import models, standins, tinymodel

            if not args.like and not 0 <= args.seed <= models.MAX_SEED:
                raise ConfigError(f"--seed {args.seed}: give an integer in [0, {models.MAX_SEED}]")
            print(standins.build(args.like) if args.like else tinymodel.build(tinymodel.TinySpec(seed=args.seed)))
            return 0
        if args.cmd == "report":
            return _report(args.run_dir, args.html)
        if args.cmd == "refit":
            return _refit(args.old, args.model, args.out)
        from . import run_summary, runner

        only = args.only.split(",") if args.only else None
        _, summary = runner.run(args.params, only, args.out, force=args.force, resume=args.resume)
        print(run_summary.format_summary(summary))
        failed = [s for s, v in summary["notebooks"].items() if v["status"] != "ok"]
        if failed:
            v = summary["notebooks"][failed[0]]
            print(f"\nftplay: notebook {failed[0]} failed at cell {v.get('cell')}: {v.get('error')}",
                  file=sys.stderr)
            return 1
        return 0
    except FtplayError as e:
        print(f"ftplay: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        from .kernels import STOPPED_BY

        print(f"ftplay: {_interrupted()}", file=sys.stderr)
        return 143 if STOPPED_BY == ["SIGTERM"] else 130


def _interrupted():
    """One line for Ctrl-C or SIGTERM: the notebook and cell it stopped in, and the command that goes on from there
    (--resume: every notebook of the plan without a record yet, in every task's folder)."""
    import shlex

    from . import runner
    from .kernels import STOPPED_BY

    how = "interrupted (Ctrl-C)" if STOPPED_BY in ([], ["Ctrl-C"]) else f"stopped ({STOPPED_BY[0]})"
    now = runner.CURRENT
    if "stem" not in now:
        return f"{how} before any notebook ran; nothing was written"
    cell = ""
    try:
        import nbformat

        nb = nbformat.read(str(now["notebook"]), as_version=4)
        running = [i for i, c in enumerate(nb.cells, 1)
                   if (c.metadata.get("papermill") or {}).get("status") == "running"]
        cell = f", cell {running[0]}" if running else ""
    except Exception:  # the executed copy may not be written yet: the notebook is still named
        pass
    top = now.get("top") or now["run_dir"]
    again = ["ftplay", "run"] + (["--params", str(now["params"])] if now.get("params") else []) + \
        (["--only", ",".join(now["only"])] if now.get("only") else []) + ["--out", str(top), "--resume"]
    return (f"{how} in {now['stem']}{cell}; what ran before it is in {top}: `{shlex.join(again)}` goes on from "
            f"{now['stem']}")


def _report(run_dir, html_path=None):
    from pathlib import Path

    from . import report, report_page, rundir, stages
    if not Path(run_dir).is_dir():
        raise ConfigError(f"{run_dir} is not a directory: pass a run directory (runs/<timestamp>)")
    if not any((Path(run_dir) / n).exists() for n in ["summary.json", *(stages.record_name(s) for s in stages.STEMS)]):
        raise ConfigError(f"{run_dir} is not a run directory: it has no summary.json and no notebook record "
                          "(01_decide_approach.json ...); pass a directory written by `ftplay run`")
    try:
        status = (rundir.read_json(Path(run_dir) / "summary.json", {}) or {}).get("notebooks")
        if status is not None and not isinstance(status, dict):
            raise ValueError(f"its 'notebooks' field is a {type(status).__name__}, not an object")
    except (ValueError, AttributeError) as e:  # not JSON, or JSON that is not an object
        raise FtplayError(f"{Path(run_dir) / 'summary.json'} is unreadable ({type(e).__name__}: {str(e)[:80]}): "
                          "`ftplay run` writes it at the end of a run; delete it to report from the notebooks' "
                          "records alone, or run again into this directory",
                          title="a run's summary is unreadable") from None
    _writable_file(html_path, "--html")
    rep = report.build(run_dir, status)
    try:
        out = report_page.write_html(run_dir, rep, html_path)
    except OSError as e:   # a full disk, a read-only place found only on writing
        raise ConfigError(f"{'--html ' + str(html_path) if html_path else run_dir}: cannot write the report there "
                          f"({e.strerror or type(e).__name__}); give a writable path") from None
    print(report_page.format_text(rep))
    print(f"\nwrote {out}")
    return 0


def _writable_file(path, flag):
    """A file path the command may write: not a folder, in a folder that exists and can be written (refused before
    anything is built, naming the flag)."""
    import os
    from pathlib import Path

    if not path:
        return
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{flag} {path} is a folder: give a file path, e.g. {p / 'ship_report.html'}")
    parent = p.parent
    if not parent.is_dir():
        above = next((a for a in (parent, *parent.parents) if a.exists()), None)
        what = f"{above} is a file" if above is not None and not above.is_dir() else f"{parent} does not exist"
        raise ConfigError(f"{flag} {path}: {what}; give a path in an existing folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {parent} cannot be written by this user; give a writable path")


def _refit(old, model, out=None):
    from . import refit, run_summary

    run_dir, summary, cmp = refit.refit(old, model, out)
    print(run_summary.format_summary(summary))
    print()
    print(refit.format_compare(cmp))
    print(f"\nwrote {run_dir}/refit_compare.json")
    failed = [s for s, v in summary["notebooks"].items() if v["status"] != "ok"]
    if failed:
        v = summary["notebooks"][failed[0]]
        print(f"\nftplay: notebook {failed[0]} failed at cell {v.get('cell')}: {v.get('error')}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
