"""Stage names, the run-record reader and ftplay_adapter.json: what each returns and how each fails."""
import pytest

from ftplay import identity, records, rundir, stages
from ftplay.errors import ConfigError, FtplayError


def test_stages_are_named_once_and_numbered_as_they_run():
    assert stages.STEMS == ("00_baseline_prompting", "01_decide_approach", "02_curate_data", "03_train_qlora",
                            "04_evaluate", "05_serve_vllm", "06_compare_costs")
    assert stages.ORDER[-2:] == (stages.SERVE, stages.COSTS) and stages.ORDER == stages.STEMS  # numbered as they run
    assert all(set(s.reads) < set(stages.STEMS) for s in stages.STAGES.values())
    assert stages.record_name(stages.TRAIN) == "03_train_qlora.json"
    with pytest.raises(ValueError, match="'03_train' is not a stage of the playbook; stages: 00_baseline_prompting"):
        stages.record_name("03_train")


def test_read_returns_a_record_with_nested_access(tmp_path):
    rundir.record(tmp_path, stages.EVALUATE, {"heldout": {"n": 3, "systems": {"base": {"macro_f1": 0.5}}},
                                              "decision": None})
    rec = records.read(tmp_path, stages.EVALUATE)
    assert rec["heldout"]["n"] == 3 and rec.path == tmp_path / "04_evaluate.json" and rec.stem == "04_evaluate"
    assert rec.at("heldout", "systems", "base", "macro_f1") == 0.5
    assert rec.at("production", "systems", default={}) == {} and rec.at("decision", "ship") is None
    assert rec.need("heldout", "n") == 3
    with pytest.raises(FtplayError, match=r"04_evaluate.json has no field heldout.paired: .* run 04_evaluate again"):
        rec.need("heldout", "paired")


def test_read_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(FtplayError, match=r"02_curate_data.json is missing: run notebook 02_curate_data first"):
        records.read(tmp_path, stages.CURATE)
    assert records.read(tmp_path, stages.CURATE, missing_ok=True) is None
    empty = records.read_or_empty(tmp_path, stages.CURATE)
    assert empty == {} and not empty and empty.at("split", "train", default=0) == 0
    (tmp_path / "02_curate_data.json").write_text('{"rows_in": 3,\n')
    with pytest.raises(FtplayError, match=r"02_curate_data.json is not JSON \(line 2: .*\): "
                                          "run notebook 02_curate_data again"):
        records.read(tmp_path, stages.CURATE, missing_ok=True)  # a broken file is an error even when absence is not
    (tmp_path / "02_curate_data.json").write_text("[1, 2]")
    with pytest.raises(FtplayError, match="holds a JSON list, not a record"):
        records.read(tmp_path, stages.CURATE)
    assert records.read_all(tmp_path, (stages.DECIDE,)) == {stages.DECIDE: None}


def test_adapter_meta_is_written_and_read_in_one_place(tiny_ref, tiny_tok, tmp_path):
    meta = identity.write_adapter_meta(tmp_path, tiny_ref, tiny_tok, ("a", "b"), "Classify.")
    assert meta["base"] == {"requested": "embedded", "path": tiny_ref.path, "kind": "embedded",
                            "revision": tiny_ref.revision}
    assert (meta["labels"], meta["system_prompt"], meta["tokenizer_size"]) == (["a", "b"], "Classify.", len(tiny_tok))
    assert identity.read_adapter_meta(tmp_path) == meta
    assert identity.recorded_base(tmp_path) == (meta["base"], str(tmp_path / "ftplay_adapter.json"))
    assert identity.read_adapter_meta(tmp_path / "none", missing_ok=True) is None
    with pytest.raises(ConfigError, match="ftplay_adapter.json is missing: .* point ADAPTER_DIR at an adapter"):
        identity.read_adapter_meta(tmp_path / "none")
    (tmp_path / "ftplay_adapter.json").write_text("{")
    with pytest.raises(ConfigError, match="ftplay_adapter.json is not JSON"):
        identity.read_adapter_meta(tmp_path)


def test_a_record_of_the_wrong_shape_is_refused_not_read_as_done(tmp_path):
    """04_evaluate.json without its held-out scores but with decision ship: true read as a YES; a field of the
    wrong type ended in an AttributeError. Both are refused with the file and the fix."""
    rundir.record(tmp_path, stages.EVALUATE, {"decision": {"ship": True}, "schema": records.VERSION})
    with pytest.raises(FtplayError, match=r"04_evaluate.json lacks heldout, slices, leakage_recheck, adapter_dir, "
                                          r"baselines, lessons: .* run notebook 04_evaluate again"):
        records.read(tmp_path, stages.EVALUATE)
    rundir.record(tmp_path, stages.EVALUATE, {"decision": {"ship": True}})          # an older record: no schema
    with pytest.raises(FtplayError, match=r"04_evaluate.json lacks heldout: it is not a record notebook"):
        records.read(tmp_path, stages.EVALUATE)
    rundir.record(tmp_path, stages.COSTS, {"verdict": ["cheaper"], "options": []})
    with pytest.raises(FtplayError, match=r"06_compare_costs.json has verdict of type list, not dict"):
        records.read(tmp_path, stages.COSTS)
