"""`ftplay run`: the command-line entry point of the main job."""
import argparse
import logging
import sys

from .errors import FtplayError


def parser():
    """The `ftplay` argument parser (also what tests check generated command lines against)."""
    ap = argparse.ArgumentParser(prog="ftplay", description="Run the fine-tuning playbook.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute the notebooks with papermill into a new run directory")
    r.add_argument("--params", help="YAML of NAME: value (and notebooks: {stem: {NAME: value}})")
    r.add_argument("--only", help="comma-separated notebook numbers, e.g. 02,03")
    r.add_argument("--out", help="run directory to use (default: runs/<timestamp>)")
    b = sub.add_parser("build-model", help="build the embedded tiny model and print its path")
    b.add_argument("--seed", type=int, default=0)
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)  # one line per notebook is ours to print
    try:
        if args.cmd == "build-model":
            from . import tinymodel

            print(tinymodel.build(tinymodel.TinySpec(seed=args.seed)))
            return 0
        from . import runner

        only = args.only.split(",") if args.only else None
        _, summary = runner.run(args.params, only, args.out)
        print(runner.format_summary(summary))
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


if __name__ == "__main__":
    sys.exit(main())
