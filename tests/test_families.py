"""The playbook on a stand-in of each of the seed's model families: the family's real tokenizer and
original chat template through curation, Unsloth and TRL training, label scoring, the vLLM CPU server
(pre-flight, parity with transformers + PEFT, structured output, a mixed load test), with the family
and both templates named in the records. Held-out rows only: production rows go through the same
scoring code, and the embedded smoke run scores them. Short training: the weights are random, so this
proves the path, not the quality.

Llama 3.1 runs the whole default playbook (00-06, both tasks). Qwen 2.5 and Mistral v0.3 run the
notebooks whose work depends on the family (02, 03, 04, 05) on the triage task: 01, 00 and 06 add no
family-specific path (00 scores the base as 04 does), and the reply task's template and loss mask are
checked on all three by tests/test_train.py (tokenizer only). That keeps `make test` near its budget:
the two tasks on all three families took 18 minutes."""
import json
from pathlib import Path

import pytest

from ftplay import runner

SERVE_PY = Path(__file__).resolve().parent.parent / ".venv-serve" / "bin" / "python"
FAMILIES = {  # MODEL -> (family, serving template, training mask)
    "tiny:meta-llama/Llama-3.1-8B-Instruct": ("llama3.1", "llama3_1", "render difference"),
    "tiny:Qwen/Qwen2.5-7B-Instruct": ("qwen2.5", "qwen2_5", "trl training template"),
    "tiny:mistralai/Mistral-7B-Instruct-v0.3": ("mistral-v0.3", "mistral_v0_3", "render difference"),
}
SHORT = {
    # the stand-in for the hosted model is scored once, by the default playbook's smoke test
    "00_baseline_prompting": {"MAX_ROWS": 24, "N_BOOT": 50, "HOSTED_STANDIN": False},
    # no production rows: the same scoring code as the held-out rows, and they were 200 of 04's 240 rows, each
    # through the base, the adapter and the second adapter (04's scoring cell took 41 s of Llama's 61)
    "02_curate_data": {"PRODUCTION_PATH": ""},
    # the second adapter on the other engine: vLLM serves an Unsloth and a TRL adapter of each family
    "03_train_qlora": {"MAX_STEPS": 10, "SAVE_STEPS": 0, "LOAD_IN_4BIT": False, "LEARNING_RATE": 2e-3,
                       "SECOND_ADAPTER": "engine", "DEMO_QUANTIZATION": False},
    "04_evaluate": {"N_BOOT": 50, "MAX_ROWS": 40},
    "05_serve_vllm": {"LOAD_TEST_REQUESTS": 12, "LOAD_TEST_CONCURRENCY": 6, "STRUCTURED_ROWS": 24, "N_BOOT": 50,
                      "REPLY_MAX_TOKENS": 32},
}


@pytest.mark.notebook
@pytest.mark.serve
@pytest.mark.slow
@pytest.mark.skipif(not SERVE_PY.exists(), reason=".venv-serve is missing: run make setup")
@pytest.mark.parametrize("model", list(FAMILIES))
def test_the_playbook_runs_on_each_family(model, tmp_path):
    import yaml

    family, template, mask = FAMILIES[model]
    params = tmp_path / "params.yaml"
    whole = family == "llama3.1"
    # both tasks (the default playbook) on Llama: the reply task's long answers through the template, the mask,
    # vLLM (short replies, no production rows: random weights never stop, so every reply runs to its cap)
    tasks = {"tasks": {"reply": {"PRODUCTION_PATH": "", "MAX_NEW_TOKENS": 32,
                                 "notebooks": {"03_train_qlora": {"SECOND_ADAPTER": ""}}}}} if whole else {}
    params.write_text(yaml.safe_dump({"MODEL": model, "notebooks": SHORT, **tasks,
                                      **({} if whole else {"TASKS": ["classify"]})}))
    run_dir, summary = runner.run(params, out=tmp_path / "run", progress=lambda *_: None,
                                  only=None if whole else ["02", "03", "04", "05"])
    run_dir = Path(run_dir)
    failed = {k: v for k, v in summary["notebooks"].items() if v["status"] != "ok"}
    assert not failed, failed
    assert summary["model"] == {"base": model, "family": family, "serving_template": template,
                                "training_mask": mask, "prefix_preserving": family != "mistral-v0.3",
                                "training_template_hash": summary["model"]["training_template_hash"]}
    assert (summary["model"]["training_template_hash"] is not None) == (mask == "trl training template")
    trained = json.loads((run_dir / "03_train_qlora.json").read_text())
    assert trained["engine"] == "unsloth" and trained["second_adapter"]["engine"] == "trl"
    assert trained["second_adapter"]["changed"] == {"engine": ["unsloth", "trl"]}
    for adapter in (trained["adapter_dir"], trained["second_adapter"]["adapter_dir"]):
        meta = json.loads((Path(adapter) / "ftplay_adapter.json").read_text())
        assert meta["family"] == family and meta["template"]["serving_template"] == template
    served = json.loads((run_dir / "05_serve_vllm.json").read_text())
    assert all(f["ok"] for f in served["preflight"])
    assert served["parity"]["ok"], served["parity"]  # vLLM and transformers + PEFT, token for token
    assert set(served["parity"]["models"]) >= set(served["adapters_served"]) | {"base"}
    assert served["structured_output"]["valid_rate"] == 1.0
    assert served["load_test"]["errors"] == 0 and set(served["load_test"]["per_model"]) >= {"base", "triage"}
    if not whole:
        assert list(summary["notebooks"]) == ["02_curate_data", "03_train_qlora", "04_evaluate", "05_serve_vllm"]
        return
    assert set(served["load_test"]["per_model"]) >= {"reply"}
    reply = json.loads((run_dir / "reply" / "03_train_qlora.json").read_text())   # the reply task on this family
    assert reply["task"] == "reply" and reply["mask"]["whole_answer_trained"]
    assert reply["mask"]["prompt_tokens_trained"] == 0
    assert json.loads((Path(reply["adapter_dir"]) / "ftplay_adapter.json").read_text())["family"] == family
    assert "reply" in served["adapters_served"] and "reply" in served["parity"]["models"]
    scored = json.loads((run_dir / "reply" / "04_evaluate.json").read_text())
    assert scored["task"] == "reply" and scored["heldout"]["systems"]["finetuned"]["n"] > 0
