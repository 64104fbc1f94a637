"""Diff every record of two playbook runs, field by field, timestamps and durations aside.

    .venv/bin/python tools/diff_records.py runs/before runs/after

Compares each <stem>.json of the two run directories (and of their task subfolders, e.g. reply/), leaf by leaf.
Left out: when a record was written, how long things took (seconds, rates, latencies, startup times), the
package versions, and the run directory itself inside paths (each run has its own). Prints, per record, the
fields only one run has and the values that differ; exit status 1 when any record differs.
"""
import json
import re
import sys
from pathlib import Path

VOLATILE = re.compile(r"(^|_)(seconds|secs|written_at|versions|startup_s|wall_s|elapsed|duration|tokens_per_s|"
                      r"rows_per_s|requests_per_s|per_s|latency\w*|ttft\w*|tpot\w*|peak_memory_mb|log)$|_s$|_ms$")
FLOAT_DIGITS = 9   # floats equal to this many significant digits are the same value


def leaves(value, path=()):
    """(path, value) of every leaf of a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, path + (str(k),))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, path + (str(i),))
    else:
        yield path, value


def volatile(path):
    return any(VOLATILE.search(p) for p in path if not p.isdigit())


def normal(value, run_dir):
    """A leaf as compared: the run directory in a path written as <run>, floats rounded."""
    if isinstance(value, str):
        return value.replace(str(run_dir.resolve()), "<run>").replace(str(run_dir), "<run>")
    if isinstance(value, float):
        return float(f"{value:.{FLOAT_DIGITS}g}")
    return value


def record_files(run_dir):
    return sorted(p.relative_to(run_dir) for p in run_dir.glob("**/[0-9][0-9]_*.json")
                  if "notebooks" not in p.parts and "html" not in p.parts)


def diff(a_dir, b_dir):
    """{record: {"only_a": [...], "only_b": [...], "changed": [(field, a, b)]}} of the records that differ."""
    out = {}
    for rel in sorted(set(record_files(a_dir)) | set(record_files(b_dir))):
        pa, pb = a_dir / rel, b_dir / rel
        if not pa.exists() or not pb.exists():
            out[str(rel)] = {"missing_in": str(b_dir if pa.exists() else a_dir)}
            continue
        la = {p: normal(v, a_dir) for p, v in leaves(json.loads(pa.read_text())) if not volatile(p)}
        lb = {p: normal(v, b_dir) for p, v in leaves(json.loads(pb.read_text())) if not volatile(p)}
        d = {"only_a": sorted(".".join(p) for p in la.keys() - lb.keys()),
             "only_b": sorted(".".join(p) for p in lb.keys() - la.keys()),
             "changed": [(".".join(p), la[p], lb[p]) for p in sorted(la.keys() & lb.keys()) if la[p] != lb[p]],
             "fields": len(la.keys() & lb.keys())}
        out[str(rel)] = d
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        sys.exit(__doc__)
    a, b = map(Path, argv)
    differs = False
    for rel, d in diff(a, b).items():
        if "missing_in" in d:
            print(f"{rel}: missing in {d['missing_in']}")
            differs = True
            continue
        n = len(d["only_a"]) + len(d["only_b"]) + len(d["changed"])
        differs |= n > 0
        print(f"{rel}: {d['fields']} fields compared, {n} differ")
        for f in d["only_a"][:20]:
            print(f"  only in {a}: {f}")
        for f in d["only_b"][:20]:
            print(f"  only in {b}: {f}")
        for f, va, vb in d["changed"][:40]:
            print(f"  {f}: {str(va)[:80]!s} -> {str(vb)[:80]!s}")
        for what, k in (("only_a", 20), ("only_b", 20), ("changed", 40)):
            if len(d[what]) > k:
                print(f"  ... {len(d[what]) - k} more {what}")
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())
