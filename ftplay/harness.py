"""The held-out rows as an lm-eval task, scored by lm-eval against 05's vLLM server and compared with ftplay's scoring.

Why lm-eval (`lm-eval==0.4.13`) and not Inspect AI: lm-eval's core installs into `.venv` beside
requirements/train.lock with 26 small packages and no torch of its own; `inspect-ai==0.3.285`
cannot: it needs aiobotocore (S3 logs), whose botocore caps python-dateutil below 3, and the lock
pins python-dateutil 4.0.0 (`pip install --dry-run -c requirements/train.lock inspect-ai==0.3.285`:
ResolutionImpossible).

`export_task` writes the task: a JSONL of the rows and a YAML that lm-eval loads with
`TaskManager(include_path=...)`. Each row carries the system prompt and the ticket exactly as
`prompts.messages` builds them, so lm-eval's chat request (`description` as the system message, the
ticket as the user message, no few-shot) is the conversation ftplay sends. The answer is restricted
to the label set with vLLM's `structured_outputs.choice` (05's `choice` mode) and scored by
`exact_match` with case and punctuation kept: right when the answer is the row's label, the way
`serve_client.Client.classify` + `evaluate.score` count it. `run` runs lm-eval's own `simple_evaluate` with its
`local-chat-completions` model, once per served name (base and each adapter); `compare` puts its
per-row answers beside ftplay's.
"""
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

from . import prompts
from .errors import ConfigError, FtplayError

log = logging.getLogger(__name__)
FRAMEWORK = "lm-eval"
TASK = "ftplay_heldout"
MAX_TOKENS = 32   # what serve_client.Client.classify allows a structured answer; a label is 1-3 tokens


# ---------------------------------------------------------------- export
def task_rows(rows, labels, system_prompt=None):
    """The task's documents: {"id", "system", "text", "label"} per row, the system prompt and the
    ticket read off prompts.messages (the conversation ftplay sends for that row)."""
    out = []
    for i, r in enumerate(rows):
        msgs = prompts.messages(r["text"], labels, system_prompt=system_prompt)
        if [m["role"] for m in msgs] != ["system", "user"]:
            raise FtplayError(f"prompts.messages gave roles {[m['role'] for m in msgs]}; the task maps exactly "
                              "one system and one user message", "cannot export the task")
        out.append({"id": i, "system": msgs[0]["content"], "text": msgs[1]["content"], "label": r["label"]})
    return out


def task_config(data_file, labels, task=TASK, max_tokens=MAX_TOKENS):
    """The lm-eval task config (the YAML's contents) for the rows in `data_file`."""
    return {
        "task": task,
        "dataset_path": "json",                                   # HF datasets' JSON loader, local file
        "dataset_kwargs": {"data_files": {"test": str(data_file)},
                           "cache_dir": str(Path(data_file).parent / "hf_cache")},
        "test_split": "test",
        "output_type": "generate_until",
        "description": "system",       # a document field: the system message, verbatim (not a Jinja template)
        "doc_to_text": "text",          # the ticket, verbatim: the user message
        "doc_to_target": "label",
        "num_fewshot": 0,
        "generation_kwargs": {
            "until": [], "max_gen_toks": max_tokens, "do_sample": False, "temperature": 0.0,
            # passed through to the request body, as serve_client.Client sends them (05's `choice` mode)
            "structured_outputs": {"choice": list(labels)},
            "chat_template_kwargs": dict(prompts.TEMPLATE_KWARGS), "repetition_penalty": 1.0},
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                         "ignore_case": False, "ignore_punctuation": False}],
        "metadata": {"version": 1.0},
    }


def export_task(rows, labels, system_prompt, out_dir, task=TASK, max_tokens=MAX_TOKENS):
    """Write `<task>.jsonl` (task_rows) and `<task>.yaml` (task_config) under `out_dir`; returns
    the folder, for `run(task_dir=...)` or `lm_eval --include_path <folder> --tasks <task>`."""
    import yaml

    if not rows:
        raise ConfigError("the eval-framework task needs rows: set STRUCTURED_ROWS >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"{task}.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in task_rows(rows, labels, system_prompt)),
                    encoding="utf-8")
    (out / f"{task}.yaml").write_text(yaml.safe_dump(task_config(data.resolve(), labels, task, max_tokens),
                                                     sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


# ---------------------------------------------------------------- run
@contextmanager
def _quiet(log_path, api_key):
    """lm-eval's logs to `log_path` (not the notebook), its tqdm bars off, the API key where its
    `local-chat-completions` model reads it (OPENAI_API_KEY), all restored afterwards."""
    names = ("lm_eval", "lm-eval", "datasets", "evaluate", "httpx", "httpx2", "urllib3", "aiohttp")
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    env = {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "TQDM_DISABLE", "HF_DATASETS_OFFLINE")}
    for lg in loggers:
        lg.setLevel(logging.INFO)
        lg.propagate = False
        lg.addHandler(handler)
    logging.getLogger("datasets").setLevel(logging.WARNING)  # its own stream handler writes to the notebook
    os.environ.update({"TQDM_DISABLE": "1", "HF_DATASETS_OFFLINE": "1"})
    if api_key:
        os.environ["OPENAI_API_KEY"] = api_key
    else:
        os.environ.pop("OPENAI_API_KEY", None)
    try:
        # progress bars (tqdm read TQDM_DISABLE when it was imported) and prints go to the log too
        with open(log_path, "a", encoding="utf-8") as f, redirect_stderr(f), redirect_stdout(f):
            yield
    finally:
        for lg, level, propagate in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate
        handler.close()
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def version():
    from importlib.metadata import version as v

    return v(FRAMEWORK)


def _sent_messages(sample):
    """The chat messages lm-eval sent for one logged sample (its request's context: a JSON string)."""
    ctx = sample["arguments"][0]          # lm-eval 0.4.13 logs [((context, gen_kwargs),)]
    while isinstance(ctx, (tuple, list)):
        ctx = ctx[0]
    return json.loads(getattr(ctx, "prompt", ctx))


def run(url, model_names, task_dir, task=TASK, api_key=None, concurrency=4, log_path=None, timeout_s=120):
    """Run lm-eval's `simple_evaluate` on the exported task against the OpenAI-compatible server at
    `url`, once per name in `model_names` (the base's served name and each adapter's).

    Returns {"framework", "version", "task", "log", "seconds", "models": {name: {"accuracy", "n",
    "answers": [answer per task row, in row order], "messages": [the chat messages lm-eval sent per
    row]}}}.
    lm-eval's logs and progress bars go to `log_path` (default <task_dir>/lm_eval.log)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    task_dir = Path(task_dir)
    log_path = Path(log_path or task_dir / "lm_eval.log")
    n_rows = sum(1 for _ in open(task_dir / f"{task}.jsonl", encoding="utf-8"))
    out = {"framework": FRAMEWORK, "version": version(), "task": task, "log": str(log_path), "models": {}}
    t0 = time.time()
    with _quiet(log_path, api_key):
        tm = TaskManager(include_path=str(task_dir), include_defaults=False)
        for name in model_names:
            # lm-eval sends its requests with asyncio.run, which a notebook kernel's running event loop
            # refuses ("cannot be called from a running event loop"): run it in a thread of its own
            with ThreadPoolExecutor(1) as ex:
                res = ex.submit(
                    lm_eval.simple_evaluate,
                    model="local-chat-completions",
                    model_args={"base_url": url.rstrip("/") + "/v1/chat/completions", "model": name,
                                "num_concurrent": concurrency, "max_retries": 1, "timeout": timeout_s,
                                "tokenizer_backend": None, "tokenized_requests": False},
                    tasks=[task], task_manager=tm, apply_chat_template=True, log_samples=True,
                    bootstrap_iters=0, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                    fewshot_random_seed=0).result()
            samples = sorted(res["samples"][task], key=lambda s: s["doc"]["id"])
            answers = [s["filtered_resps"][0] for s in samples]
            if len(answers) != n_rows or any(a is None for a in answers):
                raise FtplayError(f"lm-eval answered {sum(a is not None for a in answers)} of {n_rows} rows for "
                                  f"{name!r}; read {log_path}", "eval framework run failed")
            out["models"][name] = {"accuracy": float(res["results"][task]["exact_match,none"]), "n": len(answers),
                                   "answers": answers, "messages": [_sent_messages(s) for s in samples]}
    out["seconds"] = round(time.time() - t0, 1)
    return out


def cli_command(url, model, task_dir, task=TASK, concurrency=4):
    """The same run from a shell, one model: lm-eval's own command line (its CLI reads the API key
    from OPENAI_API_KEY too)."""
    return ["lm_eval", "--model", "local-chat-completions", "--model_args",
            f"base_url={url.rstrip('/')}/v1/chat/completions,model={model},num_concurrent={concurrency},"
            "tokenized_requests=False", "--include_path", str(task_dir), "--tasks", task,
            "--apply_chat_template", "--log_samples", "--output_path", str(Path(task_dir) / "cli_results")]


# ---------------------------------------------------------------- compare
def compare(framework, ftplay_answers, ftplay_accuracy, truth):
    """lm-eval's answers and accuracy beside ftplay's on the same rows, per model.

    `ftplay_answers` {name: [raw answer per row]} and `ftplay_accuracy` {name: accuracy} are
    05's `choice` mode (serve_checks.structured_scores: `answers["choice"]`, `choice[name]["accuracy"]`);
    `truth` the rows' labels. Returns {name:
    {"accuracy" (lm-eval), "ftplay_accuracy", "n", "rows_same_answer", "rows_same_score",
    "agree_with_ftplay" (every answer the same and the accuracies equal), "first_difference"}}."""
    out = {}
    for name, fw in framework["models"].items():
        ours = ftplay_answers[name]
        if len(ours) != len(fw["answers"]) or len(truth) != len(ours):
            raise FtplayError(f"{name}: lm-eval scored {len(fw['answers'])} rows, ftplay {len(ours)}, labels "
                              f"{len(truth)}: export the rows ftplay scored", "cannot compare")
        same = [a == (b or "") for a, b in zip(fw["answers"], ours)]
        same_score = [(a == t) == (b == t) for a, b, t in zip(fw["answers"], ours, truth)]
        first = next((i for i, s in enumerate(same) if not s), None)
        out[name] = {"accuracy": fw["accuracy"], "ftplay_accuracy": ftplay_accuracy[name], "n": fw["n"],
                     "rows_same_answer": sum(same), "rows_same_score": sum(same_score),
                     "agree_with_ftplay": all(same) and fw["accuracy"] == ftplay_accuracy[name],
                     "first_difference": None if first is None else {
                         "row": first, "label": truth[first], "lm_eval": fw["answers"][first],
                         "ftplay": ours[first]}}
    return out


# ---------------------------------------------------------------- 05's step
def score_served(url, model_names, rows, labels, system_prompt, structured, out_dir, api_key=None,
                 enabled=True, concurrency=4):
    """05's eval-framework step: export `rows` (the ones `structured` was scored on) as the task under
    `out_dir`, run lm-eval against the server for every name in `model_names`, and compare with
    ftplay's `choice`-mode scoring of the same rows (`structured`, from serve_checks.structured_scores).

    Returns the record: {"ran", "framework", "version", "task", "task_dir", "mode", "rows", "seconds",
    "log", "agree" (every model agrees), "models": {name: compare(...)'s entry + "messages_as_ftplay"
    (rows whose request lm-eval sent is prompts.messages for that row)}}; {"ran": False, "why"} when
    `enabled` is False (EVAL_FRAMEWORK)."""
    if not enabled:
        return {"ran": False, "why": "EVAL_FRAMEWORK is False: set it to True to score the rows with lm-eval"}
    if structured.get("n") != len(rows) or "answers" not in structured:
        raise ConfigError(f"the eval-framework run compares with structured output on the same rows: it scored "
                          f"{structured.get('n')} rows, {len(rows)} given; pass rows[:STRUCTURED_ROWS]")
    task_dir = export_task(rows, labels, system_prompt, out_dir)
    fw = run(url, model_names, task_dir, api_key=api_key, concurrency=concurrency)
    truth = [r["label"] for r in rows]
    models_ = compare(fw, structured["answers"]["choice"],
                      {n: structured["choice"][n]["accuracy"] for n in model_names}, truth)
    expected = [prompts.messages(r["text"], labels, system_prompt=system_prompt) for r in rows]
    for name, m in models_.items():
        m["messages_as_ftplay"] = sum(a == b for a, b in zip(fw["models"][name]["messages"], expected))
    return {"ran": True, "framework": fw["framework"], "version": fw["version"], "task": fw["task"],
            "task_dir": str(task_dir), "mode": "choice", "rows": len(rows), "seconds": fw["seconds"],
            "log": fw["log"], "agree": all(m["agree_with_ftplay"] and m["messages_as_ftplay"] == len(rows)
                                           for m in models_.values()),
            "models": models_}


def score_served_tasks(url, tasks, structured, out_dir, base_name="base", api_key=None, enabled=True, concurrency=4):
    """score_served for the triage task of 05's served tasks ({task: serve_tasks.TaskServing}): the base and the
    classification adapters on the rows `structured` scored; {"ran": False, "why"} when it is off
    (EVAL_FRAMEWORK) or no classification adapter is served (a reply has no label set to score)."""
    from .stages import CLASSIFY

    triage = tasks.get(CLASSIFY)
    if triage is None or not structured.get("ran", True):
        return {"ran": False, "why": "no classification adapter is served: the eval framework scores labels, "
                                     "the triage task only"}
    return score_served(url, [base_name, *triage.adapters], list(triage.rows[:structured["n"]]), list(triage.labels),
                        triage.system_prompt, structured, out_dir, api_key=api_key, enabled=enabled,
                        concurrency=concurrency)


def findings(result):
    """One sentence per model: lm-eval's accuracy beside ftplay's and whether they agree row by row."""
    if not result.get("ran"):
        return [result.get("why", "not run")]
    out = [f"{result['framework']} {result['version']}, task {result['task']} ({result['rows']} rows, "
           f"{result['mode']} mode), {len(result['models'])} models in {result['seconds']} s; all agree with ftplay: "
           f"{result['agree']}"]
    for name, m in result["models"].items():
        text = (f"{name}: lm-eval {m['accuracy']:.3f}, ftplay {m['ftplay_accuracy']:.3f} on the same {m['n']} rows; "
                f"{m['rows_same_answer']}/{m['n']} answers identical, {m['messages_as_ftplay']}/{m['n']} requests "
                "identical to ftplay's")
        d = m["first_difference"]
        if d:
            text += (f"; first difference: row {d['row']} (label {d['label']!r}): "
                     f"lm-eval {d['lm_eval']!r}, ftplay {d['ftplay']!r}")
        out.append(text)
    return out
