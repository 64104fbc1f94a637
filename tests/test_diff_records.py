"""tools/diff_records.py: the record diff a refactor's note shows (issue 26: records unchanged by the move)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import diff_records  # noqa: E402


def _run(root, name, **fields):
    d = root / name
    (d / "reply").mkdir(parents=True)
    rec = {"n": 3, "written_at": f"2026-12-07T12:00:0{len(name)}", "seconds": len(name), "adapter_dir": str(d / "a"),
           "heldout": {"systems": {"base": {"macro_f1": 0.5, "rows_per_s": 10.0 * len(name)}}}, **fields}
    (d / "04_evaluate.json").write_text(json.dumps(rec))
    (d / "reply" / "00_baseline_prompting.json").write_text(json.dumps({"best": "zero_shot"}))
    return d


def test_timings_times_and_the_run_folder_are_not_differences(tmp_path):
    a, b = _run(tmp_path, "a"), _run(tmp_path, "bb")
    assert diff_records.main([str(a), str(b)]) == 0


def test_a_changed_value_an_added_field_and_a_missing_record_are(tmp_path, capsys):
    a = _run(tmp_path, "a")
    b = _run(tmp_path, "b", n=4, schema=2)
    (b / "reply" / "00_baseline_prompting.json").unlink()
    assert diff_records.main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "n: 3 -> 4" in out and f"only in {b}: schema" in out
    assert "reply/00_baseline_prompting.json: missing in" in out
