"""Static checks of every notebook, and the whole playbook executed by papermill on the tiny model."""
import ast
import json
import math
from pathlib import Path

import nbformat
import pytest

from ftplay import cost_tables, hosted_standin, report, report_page, runner, stages, tokencount

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
EXPECTED = list(stages.STEMS)


def test_the_playbook_has_every_notebook():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parameterised(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "starts with an H1 title"
    assert "You will" in first.source, "says what the reader will do"
    code = [c for c in nb.cells if c.cell_type == "code"]
    for c in code:
        assert not c.get("outputs") and c.get("execution_count") is None, "committed without outputs"
        ast.parse(c.source)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged parameters"
    tree = ast.parse(params[0].source)
    for node in tree.body:
        # annotated, so `papermill --help-notebook` shows the type; papermill's parser reads no `|` in an
        # annotation, and a parameters cell has no imports: an optional one is written `X: "Optional[int]" = None`
        assert isinstance(node, ast.AnnAssign), f"annotated assignments only: {ast.unparse(node)[:80]}"
        ast.literal_eval(node.value)  # literal values only
    names = {n.target.id for n in tree.body}
    assert "RUN_DIR" in names
    lines = [line for line in params[0].source.splitlines() if line.strip()]
    assert all("#" in line for line in lines), "every parameter has a comment"


MARKDOWN_WORDS = 250   # about what one screen of JupyterLab shows at a readable width


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_markdown_cell_reads_on_one_screen(path):
    nb = nbformat.read(str(path), as_version=4)
    long = [(i, len(c.source.split())) for i, c in enumerate(nb.cells)
            if c.cell_type == "markdown" and len(c.source.split()) > MARKDOWN_WORDS]
    assert not long, f"markdown cells over {MARKDOWN_WORDS} words (cell, words): {long}: split or shorten them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_reads_every_parameter_with_its_help(path):
    """papermill's parser skips lines it cannot read (e.g. quotes inside a comment): then
    `--help-notebook` and the runner silently lose that parameter."""
    nb = nbformat.read(str(path), as_version=4)
    source = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    n_assign = len(ast.parse(source).body)
    declared = runner.declared_parameters(path)
    assert len(declared) == n_assign, f"papermill read {sorted(declared)}"
    assert all(v["help"] for v in declared.values())


SMOKE = {
    "MODEL": "embedded",
    "notebooks": {
        "00_baseline_prompting": {"MAX_ROWS": 40, "N_BOOT": 100},
        # the recipe's 3 epochs in 16-bit (321 steps, ~30 s here): 30 steps did not beat the base
        # (+0.013 macro-F1, CI -0.013 to +0.039), the full recipe does (+0.409, CI +0.331 to +0.475)
        "03_train_qlora": {"SAVE_STEPS": 0, "LOAD_IN_4BIT": False},
        "04_evaluate": {"N_BOOT": 100},
        "05_serve_vllm": {"LOAD_TEST_REQUESTS": 24, "LOAD_TEST_CONCURRENCY": 8, "API_KEY": "sk-planted-7f3a9c1e",
                          "STRUCTURED_ROWS": 24, "N_BOOT": 100},
    },
}


@pytest.fixture(scope="module")
def playbook_run(tmp_path_factory):
    import yaml

    tmp = tmp_path_factory.mktemp("playbook")
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(SMOKE))
    run_dir, summary = runner.run(params, out=tmp / "run", progress=lambda *_: None)
    return Path(run_dir), summary


# the default playbook: triage's notebooks, the reply task's 00 and 02-04 in reply/, then one server, one cost notebook
ORDER_BOTH_TASKS = [s for s in stages.ORDER if s not in (stages.SERVE, stages.COSTS)] + \
    [f"reply/{s}" for s in stages.ORDER if s in stages.PER_TASK] + [stages.SERVE, stages.COSTS]


def _read(run_dir, stem):
    return json.loads((run_dir / f"{stem}.json").read_text())


@pytest.mark.notebook
@pytest.mark.slow
def test_playbook_runs_every_notebook(playbook_run):
    from test_outputs import run_noise

    run_dir, summary = playbook_run
    assert run_noise(run_dir) + run_noise(run_dir / "reply") == [], \
        "library noise, stderr, a repr, a per-step log, an empty table or a cut cell in an executed notebook"
    failed = {k: v for k, v in summary["notebooks"].items() if v["status"] != "ok"}
    assert not failed, failed
    assert list(summary["notebooks"]) == ORDER_BOTH_TASKS
    for stem in EXPECTED:
        assert (run_dir / f"{stem}.json").exists() and (run_dir / "html" / f"{stem}.html").exists()
        assert (run_dir / "notebooks" / f"{stem}.ipynb").exists()
    s = json.loads((run_dir / "summary.json").read_text())
    for key in ("heldout", "production"):
        assert s[key]["n"] > 0
        for system in ("base", "finetuned"):
            assert 0 <= s[key][system]["accuracy"] <= 1 and 0 <= s[key][system]["macro_f1"] <= 1
    rep = s["ship_report"]
    assert s["decision"] == report.build(run_dir, summary["notebooks"])["ship"], "the verdict the records give"
    assert s["decision"]["ship"] is all(i["status"] == "done" for i in rep["items"]) and s["decision"]["reasons"]
    # issue 28: the last notebook ends on each task's verdict and reasons, the same as the report's
    last = nbformat.read(run_dir / "notebooks" / "06_compare_costs.ipynb", as_version=4).cells[-1]
    said = "".join(o.get("text", "") for o in last.outputs if o.output_type == "stream").strip()
    assert said == report_page.format_verdicts(rep) and said.startswith("ship classify: NO")
    # the TF-IDF reference beats the triage fine-tune, and the reply task's replaced model is not scored: never YES
    assert s["decision"]["verdict"] == "NO", s["decision"]
    fields = {(r["record"], r["field"]) for r in s["decision"]["reasons"]}
    # REDACT_PII is on by default: the (synthetic) PII is found, counted and redacted, so it blocks nothing
    curated = json.loads((run_dir / "02_curate_data.json").read_text())
    assert curated["pii_rows"] > 0 and curated["pii_redacted"] is True
    assert ("02_curate_data.json", "pii_rows, pii_redacted, pii_accepted") not in fields
    # 06 prices every side with counted tokens (Llama 3.1's tokenizer for the embedded model), none assumed
    costs = json.loads((run_dir / "06_compare_costs.json").read_text())
    counted = set(cost_tables.TOKEN_FIELDS) | {"tokens_per_example"}
    for task, priced in costs["tasks"].items():
        assert not counted & set(priced["assumed"]), (task, sorted(counted & set(priced["assumed"])))
        assert priced["measured"]["hosted_input_tokens_per_request"]["value"] > \
            priced["measured"]["input_tokens_per_request"]["value"], "the hosted prompt carries its examples"
        assert tokencount.PRICED_FAMILY in priced["measured"]["input_tokens_per_request"]["why"]
    assert any("proxy" in r for r in costs["verdict"]["reasons"])
    # issue 27: triage's replaced model is the stand-in for the hosted model, served by vLLM and scored in 00 through
    # ENDPOINT_URL's code path, compared in 04 and priced in 06 with its own prompt and answers; the reply task's
    # is not measured (the stand-in is built for triage only)
    base = _read(run_dir, "00_baseline_prompting")
    assert base["replaced"] == {"kind": "standin", "name": hosted_standin.NAME, "model": hosted_standin.SERVED_NAME,
                                "set_by": "HOSTED_STANDIN"}
    stand = base["systems"]["endpoint_structured"]
    assert stand["valid_rate"] == 1.0 and stand["macro_f1"] > base["systems"]["zero_shot"]["macro_f1"] + 0.2, stand
    assert base["hosted_request"]["system"] == "endpoint_structured" and base["hosted_request"]["endpoint"]
    assert "stand-in for the hosted model" in costs["tasks"]["classify"]["measured"][
        "hosted_input_tokens_per_request"]["why"]
    assert "served_model_name': ['hosted-standin']" in (run_dir / "hosted_standin.log").read_text()
    ev = _read(run_dir, "04_evaluate")
    checks = {c["name"]: c for c in ev["decision"]["checks"]}
    vs = ev["heldout"]["paired"]["finetuned_vs_endpoint_structured"]   # the gate reads the comparison itself
    assert checks["replaced_model"]["status"] == ("block" if vs["macro_f1_diff_ci"][1] < 0 else "pass")
    assert checks["replaced_model"]["field"] == "heldout.paired.finetuned_vs_endpoint_structured"
    reply_base = _read(run_dir / "reply", "00_baseline_prompting")
    assert reply_base.get("replaced") is None and not reply_base["hosted_request"]["endpoint"]
    reply_reasons = {(r["record"], r["field"], r["effect"]) for r in rep["tasks"]["reply"]["ship"]["reasons"]}
    assert ("reply/04_evaluate.json", "heldout.paired", "not proven") in reply_reasons, "reply's replaced model"
    assert all(r["record"].endswith(".json") and r["field"] for r in s["decision"]["reasons"])
    assert s["ship_report"]["route"] and (run_dir / "ship_report.html").exists(), "the route the numbers favour"
    assert [i["status"] for i in s["ship_report"]["items"]].count("not run") == 0


@pytest.mark.notebook
@pytest.mark.slow
def test_a_planted_api_key_is_written_nowhere_in_the_run(playbook_run):
    """05 served with an API key (the smoke run plants one): the key reached vLLM (the load test and
    parity needed it), yet no file the run wrote holds it: not the executed notebooks, their HTML,
    the records, summary.json, the server log or ship_report.html."""
    run_dir, _ = playbook_run
    key = SMOKE["notebooks"]["05_serve_vllm"]["API_KEY"].encode()
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 20 and (run_dir / "vllm_server.log").exists()
    assert [str(p) for p in files if key in p.read_bytes()] == []
    assert json.loads((run_dir / "05_serve_vllm.json").read_text())["load_test"]["errors"] == 0


@pytest.mark.notebook
@pytest.mark.slow
def test_playbook_records_what_each_stage_did(playbook_run):
    run_dir, _ = playbook_run
    card = _read(run_dir, "02_curate_data")
    assert card["rows_in"] > card["rows_out"] > 0 and card["exact_duplicates"] > 0 and card["leakage"]["exact"] == 0
    tr = _read(run_dir, "03_train_qlora")
    assert tr["steps"] > 300 and math.isfinite(tr["train_loss"]) and tr["train_loss"] < tr["first_loss"]
    adapter = Path(tr["adapter_dir"])
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "ftplay_adapter.json").exists()
    assert tr["second_adapter"] is None and tr["task"] == "classify", "the default's second adapter is the reply task's"
    q = tr["quantization_demo"]   # QLoRA's saving, measured on the same model and steps
    assert q["ran"] and q["4bit"]["weights_mb"] < q["unquantized"]["weights_mb"]
    share = tr["lora_share"]      # LoRA's small trainable share, counted and measured
    assert share["counted_equals_measured"] and 0 < share["share_pct"] < 100
    ev = _read(run_dir, "04_evaluate")
    assert ev["heldout"]["n"] == card["split"]["heldout"]
    assert ev["heldout"]["systems"]["finetuned"]["n"] == ev["heldout"]["n"]
    vs_base = ev["heldout"]["paired"]["finetuned_vs_base"]  # the README's headline: the fine-tune beats the base
    assert vs_base["macro_f1_diff_ci"][0] > 0.2 and vs_base["mcnemar_p"] < 1e-6, vs_base
    assert ev["leakage_recheck"]["exact"] == 0
    base = _read(run_dir, "00_baseline_prompting")
    assert set(ev["baselines"]) == set(base["systems"]) and "tfidf_logreg" in ev["baselines"]
    assert {f"finetuned_vs_{n}" for n in ev["baselines"]} < set(ev["heldout"]["paired"])
    assert set(ev["production"]["paired"]) == {"finetuned_vs_base", "finetuned_vs_tfidf_logreg"}
    assert ev["decision"]["verdict"] in ("stop", "not proven") and ev["decision"]["classes"]
    leak = ev["lessons"]["leakage"]["groups"]   # mistake 2: a leaked row is answered from memory
    assert leak["twin_same_label"]["n"] > 0 and leak["twin_same_label"]["accuracy"] > leak["no_twin"]["accuracy"]
    edge = ev["lessons"]["edge_cases"]          # mistake 4: the rarest label and the negated requests
    assert len(edge) == 2 and all(e["train"]["n"] > 0 for e in edge.values())
    bu = ev["lessons"]["base_update"]           # mistake 5: the adapter on a new base, and a re-fine-tune there
    own, stale, fresh = (bu["systems"][k]["macro_f1"] for k in
                         ("adapter on its own base", "same adapter on the new base", "re-fine-tuned on the new base"))
    assert bu["check"]["changed"] is True and stale < own and fresh > stale, bu["systems"]
    assert base["n"] == 40 and base["best"]["name"] in base["systems"]
    assert base["reference"]["rows_per_s"] > 0 and base["reference"]["selective_curve"]
    decided = _read(run_dir, "01_decide_approach")   # 01 ran after 00: it decided from 00's numbers
    assert decided["measured_baselines"] is True and decided["labeled_examples"] == card["rows_out"]
    assert all(t["tried"] for t in decided["tried"].values()), decided["tried"]
    sv = _read(run_dir, "05_serve_vllm")
    assert sv["load_test"]["errors"] == 0 and sv["load_test"]["requests"] == 24
    assert sorted(sv["adapters_served"]) == ["reply", "triage"], "one base, each task's adapter"
    assert sv["command"][1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert set(sv["load_test"]["per_model"]) == {"base", "triage", "reply"}, "base and both tasks, one server, mixed"
    assert set(sv["parity"]["models"]) >= {"base", "triage", "reply"}
    assert all(f["ok"] for f in sv["preflight"]) and sv["parity"]["ok"]
    assert sv["structured_output"]["valid_rate"] == 1.0 and sv["unknown_adapter"]["status"] == 404
    assert sv["server"]["stopped"]
    fw = sv["eval_framework"]   # lm-evaluation-harness against the same server: the same answers, row by row
    assert fw["ran"] and fw["agree"], fw
    assert all(m["rows_same_answer"] == m["n"] > 0 for m in fw["models"].values())
    cost = _read(run_dir, "06_compare_costs")
    # CPU measures no GPU throughput, so 06 prices the stated GPU figures with this run's token counts:
    # at 3M requests a month a fine-tune pays back within MAX_PAYBACK_MONTHS
    options = {o["name"]: o for o in cost["options"]}
    assert cost["verdict"]["cheaper"] is True and cost["verdict"]["best_option"] != "hosted_frontier"
    assert options[cost["verdict"]["best_option"]]["monthly_cost"] < options["hosted_frontier"]["monthly_cost"]


@pytest.mark.notebook
@pytest.mark.slow
def test_the_reply_task_runs_beside_triage_and_learns_the_house_format(playbook_run):
    """Issue 15: the default playbook's second task, a reply in the house format, curated, trained,
    scored against the base with its own metrics, served from the same base, priced and reported."""
    run_dir, summary = playbook_run
    reply = run_dir / "reply"
    card, tr, ev, base = (_read(reply, s) for s in ("02_curate_data", "03_train_qlora", "04_evaluate",
                                                     "00_baseline_prompting"))
    assert {r["task"] for r in (card, tr, ev, base)} == {"reply"}
    assert _read(run_dir, "04_evaluate")["task"] == "classify"
    # 02: the planted reply defects are found (data/planted_reply_defects.json)
    assert card["invalid_format"] > 0 and card["conflicts"] > 0 and card["pii_output_rows"] > 0
    assert card["output_tokens"]["max"] > 40, "replies are long answers, not a label"
    # 03: the whole reply and its end of turn trained, nothing of the prompt; the adapter names its task
    # (the embedded reply recipe: unquantized, 4 epochs; no second adapter; the loss falls)
    assert (tr["task"], tr["reply_format"], tr["load_in_4bit"], tr["config"]["num_epochs"]) == \
        ("reply", "house", False, 4.0)
    mask = tr["mask"]
    assert mask["whole_answer_trained"] == mask["checked"] == tr["train_rows"] and mask["prompt_tokens_trained"] == 0
    assert mask["answer_tokens"]["p50"] > 40, "a reply trains dozens of tokens, a label two"
    meta = json.loads((Path(tr["adapter_dir"]) / "ftplay_adapter.json").read_text())
    assert (meta["task"], meta["reply_format"]) == ("reply", "house") and "Support Team" in meta["system_prompt"]
    assert tr["second_adapter"] is None and tr["train_loss"] < tr["first_loss"]
    # 04: the fine-tune beats the base on format validity, 95% CI above zero, held-out AND production
    for split in ("heldout", "production"):
        d = ev[split]["paired"]["finetuned_vs_base"]
        assert d["valid_rate_diff_ci"][0] > 0 and d["mcnemar_p"] < 0.05, (split, d)
        f = ev[split]["systems"]["finetuned"]
        assert f["valid_rate"] > 0.5 and 0 <= f["chrf"] <= 100 and f["field_accuracy"] is not None
    assert {f"finetuned_vs_{n}" for n in base["systems"]} <= set(ev["heldout"]["paired"]), "every 00 system, same rows"
    assert ev["decision"]["verdict"] in ("stop", "not proven", "ship") and ev["decision"]["checks"]
    # the summary and the ship report cover both tasks
    assert set(summary["tasks"]) == {"classify", "reply"} and summary["tasks"]["reply"]["dir"] == "reply"
    rep = summary["ship_report"]
    assert set(rep["tasks"]) == {"classify", "reply"} and rep["tasks"]["reply"]["ship"]["reasons"]
    assert all(r["record"].startswith("reply/") or r["record"][:2] in ("06", "05") or r["record"] == "summary.json"
               for r in rep["tasks"]["reply"]["ship"]["reasons"]), "the reply task's reasons name its own records"


SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


@pytest.mark.notebook
@pytest.mark.shared
@pytest.mark.skipif(not (SHARED / "banking77" / "train.csv").exists(), reason="../shared/datasets is absent")
def test_curation_notebook_audits_a_given_split_by_parameters_alone(tmp_path, run_notebook):
    """BANKING77's own train/test split, through notebook 02 by parameters only: the audit finds
    the cross-split duplicates known to be there (7 after lower-casing and white space, 25 once
    punctuation is also removed)."""
    run = tmp_path / "run"
    run.mkdir()
    prompt = "Classify the online banking customer message by its intent. Answer with the intent name only."
    card = run_notebook("02_curate_data", run, TRAIN_PATH=str(SHARED / "banking77" / "train.csv"),
                        HELDOUT_PATH=str(SHARED / "banking77" / "test.csv"), PRODUCTION_PATH="",
                        SYSTEM_PROMPT=prompt, MAX_TRAIN_PER_LABEL=10)  # the default prompt lists 77 labels
    assert card["leakage"]["exact_ci"] == 7 and card["leakage"]["exact"] == 25
    assert len(card["labels_list"]) == 77 and card["split"]["made_here"] is False
    assert card["split"]["train"] == 770 and card["capped"] > 8000 and card["system_prompt"] == prompt
    first = json.loads((run / "data" / "train.jsonl").read_text().splitlines()[0])
    assert first["messages"][0] == {"role": "system", "content": prompt}
