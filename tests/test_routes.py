"""Other routes: the Modal app as Modal itself reads it (offline), and the Together export and job
request as the together package builds them (intercepted at its HTTP transport, nothing sent)."""
import json
import warnings

import httpx
import pytest

from ftplay import cli, hosted, modal_app, recipes, run_plan
from ftplay.errors import ConfigError, DataError

pytest.importorskip("modal")
pytest.importorskip("together")
SYSTEM = "You triage customer support tickets. Answer with exactly one category: billing, shipping."


# ---------------------------------------------------------------- Modal
@pytest.fixture(scope="module")
def app_file(tmp_path_factory):
    cfg = modal_app.ModalConfig(run_name="modal1", params={"MODEL": "Qwen/Qwen2.5-7B-Instruct"})
    return modal_app.write_app(cfg, tmp_path_factory.mktemp("modal") / "modal_app.py")


@pytest.fixture(scope="module")
def seen(app_file):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return modal_app.inspect_app(app_file)


def test_gpu_names_are_modal_names():
    assert modal_app.parse_gpu("A100-80GB") == ("A100-80GB", 1)
    assert modal_app.parse_gpu("h100:2") == ("H100", 2)              # Modal upper-cases the name too
    for bad, why in (("A100-90GB", "not a GPU Modal offers"), ("A10:8", "1-4"), ("L40S:0", "1-8"), ("T4:x", "1-8")):
        with pytest.raises(ConfigError, match=why):
            modal_app.parse_gpu(bad, "GPU")


def test_modal_config_reports_every_problem():
    with pytest.raises(ConfigError) as e:
        modal_app.ModalConfig(run_name="my run", gpu="V100", serve_gpu="A10:5", runs_volume="x" * 65,
                              timeout_s=100_000, scaledown_s=1, adapters={"a": "/abs/adapter"})
    msg = str(e.value)
    assert len(e.value.problems) == 7
    for name in ("RUN_NAME", "GPU='V100'", "SERVE_GPU='A10:5'", "RUNS_VOLUME", "TIMEOUT_S", "SCALEDOWN_S",
                 "'/abs/adapter'"):
        assert name in msg
    assert modal_app.ModalConfig(run_name="r1").adapters == {"triage": "r1/train/adapter"}


def test_object_name_rule_is_modals():
    from modal._utils.name_utils import is_valid_object_name

    for name in ("ftplay-runs", "run_2026.11", "a" * 64, "a" * 65, "my run", "runs/x", "", "ümlaut"):
        assert bool(modal_app.OBJECT_NAME.match(name)) == (is_valid_object_name(name) and name != ""), name


def test_modal_registers_train_and_serve_with_their_gpus_and_volumes(seen):
    assert seen["app"] == "ftplay"
    assert set(seen["functions"]) == {"train", "serve"}
    tr, sv = seen["functions"]["train"], seen["functions"]["serve"]
    assert tr["gpus"] == [["A100-80GB", 1]] and tr["timeout"] == 4 * 3600 and tr["web_server"] is None
    assert tr["volumes"] == {"/runs": {"name": "ftplay-runs", "read_only": False},
                             "/root/.cache/huggingface": {"name": "ftplay-hf-cache", "read_only": False}}
    assert sv["gpus"] == [["L40S", 1]] and sv["concurrency"] == 32
    assert sv["web_server"] == {"port": 8000, "startup_timeout": 900.0, "requires_proxy_auth": True}
    assert sv["volumes"]["/runs"] == {"name": "ftplay-runs", "read_only": True}     # serving never writes runs


def test_modal_images_install_the_projects_gpu_packages(seen):
    def commands(fn):
        return [c for layer in seen["functions"][fn]["image"] for c in layer.get("commands", [])]

    from tomllib import loads

    from ftplay.modal_app import ROOT

    meta = loads((ROOT / "pyproject.toml").read_text())["project"]
    train_cmds, serve_cmds = commands("train"), commands("serve")
    assert "RUN python -m pip install torch==2.13.0" in train_cmds            # the CUDA build, as `make setup GPU=1`
    pip = next(c for c in train_cmds if "unsloth" in c)
    import shlex

    for pin in meta["optional-dependencies"]["train"] + meta["dependencies"]:
        assert pin in shlex.split(pip)                 # exact pins from pyproject (modal shell-quotes `x[extra]`)
    assert "ENV FTPLAY_CACHE=/runs/.cache/ftplay" in train_cmds                # the embedded base persists
    assert any(c.endswith("vllm==0.33.0") for c in serve_cmds) and not any("unsloth" in c for c in serve_cmds)
    mounts = [m for layer in seen["functions"]["train"]["image"] for m in layer.get("mount", [])]
    assert mounts == [(str(ROOT.resolve()), "/root/ftplay-project")]
    assert [m for layer in seen["functions"]["serve"]["image"] for m in layer.get("mount", [])] == [("ftplay", "/root")]


def test_another_gpu_is_what_modal_reports(tmp_path):
    path = modal_app.write_app(modal_app.ModalConfig(run_name="big", gpu="h100:2", serve_gpu="A10G"),
                               tmp_path / "app.py")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fns = modal_app.inspect_app(path)["functions"]
    assert fns["train"]["gpus"] == [["H100", 2]] and fns["serve"]["gpus"] == [["A10G", 1]]


def test_train_runs_a_valid_ftplay_run(app_file):
    module = modal_app.load_app(app_file)
    argv = module.train_argv("/tmp/ftplay-params.yaml")
    assert argv[1:3] == ["-m", "ftplay.cli"]
    args = cli.parser().parse_args(argv[3:])
    assert (args.cmd, args.params, args.out) == ("run", "/tmp/ftplay-params.yaml", "/runs/modal1")
    stems = [s for s, _, _ in run_plan.plan(args.only.split(","), module.PARAMS)]
    assert stems == ["02_curate_data", "03_train_qlora", "04_evaluate"]
    assert module.PARAMS == {"MODEL": "Qwen/Qwen2.5-7B-Instruct"}


def test_write_app_refuses_unknown_parameters_before_any_gpu(tmp_path):
    with pytest.raises(ConfigError, match="NOT_A_PARAMETER"):
        modal_app.write_app(modal_app.ModalConfig(run_name="r", params={"NOT_A_PARAMETER": 1}), tmp_path / "a.py")
    assert not (tmp_path / "a.py").exists()


def _adapter(path, r, base):
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": r, "target_modules": ["q_proj"]}))
    (path / "ftplay_adapter.json").write_text(json.dumps({"base": {"path": base}}))
    return path


def test_vllm_serves_one_base_with_every_adapter(app_file, tmp_path):
    module = modal_app.load_app(app_file)
    a = _adapter(tmp_path / "run1" / "train" / "adapter", 16, "Qwen/Qwen2.5-7B-Instruct")
    b = _adapter(tmp_path / "run2" / "train" / "adapter", 32, "Qwen/Qwen2.5-7B-Instruct")
    argv, env = module.vllm_command({"triage": "run1/train/adapter", "triage_b": "run2/train/adapter"},
                                    runs_dir=str(tmp_path))
    assert argv[:3] == ["vllm", "serve", "Qwen/Qwen2.5-7B-Instruct"]
    i = argv.index("--lora-modules")
    assert argv[i + 1:i + 3] == [f"triage={a}", f"triage_b={b}"]
    assert "--enable-lora" in argv and argv[argv.index("--max-lora-rank") + 1] == "32"     # covers rank 32
    assert argv[argv.index("--max-loras") + 1] == "2"                                      # no runtime slot
    assert argv[argv.index("--host") + 1] == "0.0.0.0" and argv[argv.index("--port") + 1] == "8000"
    assert argv[argv.index("--dtype") + 1] == "auto" and "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in env
    _adapter(tmp_path / "run3" / "train" / "adapter", 16, "meta-llama/Llama-3.1-8B-Instruct")
    with pytest.raises(ValueError, match="different ones"):
        module.vllm_command({"triage": "run1/train/adapter", "other": "run3/train/adapter"}, runs_dir=str(tmp_path))


# ---------------------------------------------------------------- Together: the data
def _row(i, label="billing", **over):
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"ticket {i}"},
            {"role": "assistant", "content": label}]
    return {"id": f"T-{i}", "messages": msgs, **over}


def _run(tmp_path, train_rows, heldout_rows=None):
    d = tmp_path / "run" / "data"
    d.mkdir(parents=True)
    for name, rows in (("train", train_rows), ("heldout", heldout_rows or [_row(90), _row(91, "shipping")])):
        (d / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "run"


def test_export_writes_only_what_together_reads(tmp_path):
    run = _run(tmp_path, [_row(1), _row(2, "shipping"), _row(3)])
    out = hosted.export(run)
    lines = [json.loads(line) for line in open(out["files"]["train"])]
    assert lines[1] == {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "ticket 2"},
                                     {"role": "assistant", "content": "shipping"}]}
    assert out["examples"] == {"train": 3, "heldout": 2}
    assert json.loads(open(out["ids"]).read()) == {"train": ["T-1", "T-2", "T-3"], "heldout": ["T-90", "T-91"]}
    assert hosted.check_file(out["files"]["heldout"])["ok"]


def test_malformed_rows_are_named_by_file_line_and_rule(tmp_path):
    bad = tmp_path / "bad.jsonl"
    user_only = {"messages": [{"role": "user", "content": "hi"}]}
    rows = [json.dumps(_row(1)), "{not json", json.dumps({"messages": [{"role": "assistant", "content": "x"},
                                                                       {"role": "user", "content": "y"}]}),
            json.dumps(_row(4, "  ")), json.dumps({"messages": [{"role": "bot", "content": "x"}]}),
            json.dumps({**_row(6), "text": "also text"}), json.dumps(user_only), "",
            json.dumps({"messages": [{"role": "user", "content": "a", "weight": 2},
                                     {"role": "assistant", "content": "b"}]}), json.dumps([1, 2])]
    bad.write_text("\n".join(rows) + "\n")
    report = hosted.check_file(bad)
    assert not report["ok"] and report["examples"] == 9                           # the blank line is skipped
    got = {(p.split(":")[1], p.split("rule ")[1].split(":")[0]) for p in report["problems"]}
    assert got == {("2", "json"), ("3", "order"), ("3", "ends_with_assistant"), ("4", "content"), ("5", "role"),
                   ("5", "order"), ("5", "ends_with_assistant"), ("6", "one_format"), ("7", "ends_with_assistant"),
                   ("9", "weight"), ("10", "json")}
    assert all(p.startswith(f"{bad}:") for p in report["problems"])
    run = _run(tmp_path / "r", [_row(1), _row(2, ""), _row(3)])
    with pytest.raises(DataError) as e:
        hosted.export(run)
    assert str(run / "data" / "train.jsonl") + ":2: rule content" in str(e.value)
    assert not (run / "together").exists()                                     # nothing written


def test_length_and_minimum_rules(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps(_row(1)) + "\n")
    est = len(SYSTEM.encode()) + len(b"ticket 1") + len(b"billing") + 3 * hosted.TEMPLATE_TOKENS_PER_MESSAGE
    assert hosted.check_file(f, max_tokens=est)["ok"]
    tight = hosted.check_file(f, max_tokens=est - 1)
    assert "rule length" in tight["problems"][0] and "UTF-8 bytes" in tight["problems"][0]
    exact = hosted.check_file(f, max_tokens=20, count_tokens=lambda msgs: 3 * len(msgs))       # 9 tokens
    assert exact["ok"]
    assert "rule min_examples" in hosted.check_file(f, min_examples=2)["problems"][0]
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    from together.lib.constants import MIN_SAMPLES

    assert f"< the minimum {MIN_SAMPLES}" in hosted.check_file(empty)["problems"][0]


# ---------------------------------------------------------------- Together: the job
LIMITS = {"model_name": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", "default_gradient_accumulation_steps": 1,
          "lora_training": {"default_rank": 8, "max_batch_size": 32, "max_batch_size_dpo": 16, "max_rank": 64,
                            "min_batch_size": 8, "target_modules": list(recipes.ALL_LINEAR)},
          "max_learning_rate": 1.0, "max_num_checkpoints": 20, "max_num_epochs": 20, "max_num_evals": 100,
          "max_seq_length_dpo": 8192, "max_seq_length_sft": 8192, "merge_output_lora": True,
          "min_learning_rate": 1e-8, "min_max_seq_length": 512, "supports_full_training": True,
          "supports_reasoning": False, "supports_tools": False, "supports_vision": False,
          "full_training": {"max_batch_size": 32, "max_batch_size_dpo": 16, "min_batch_size": 8}}   # a stated fixture


def test_job_parameters_come_from_the_train_config():
    kw = hosted.job_kwargs(recipes.SEED_RECIPE, hosted.HostedConfig(), "file-1")
    assert kw == {"training_file": "file-1", "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", "n_epochs": 3,
                  "learning_rate": 2e-4, "lr_scheduler_type": "linear", "warmup_ratio": 0.1, "weight_decay": 0.0,
                  "batch_size": 8, "gradient_accumulation_steps": 1, "lora": True, "lora_r": 16, "lora_alpha": 32,
                  "lora_dropout": 0.05, "lora_trainable_modules": "q_proj,v_proj,o_proj", "train_on_inputs": False,
                  "n_checkpoints": 1, "n_evals": 0, "packing": True, "max_seq_length": None,
                  "suffix": "ftplay-triage", "random_seed": 3407}
    emb = hosted.job_kwargs(recipes.EMBEDDED_RECIPE, hosted.HostedConfig(n_evals=2), "f", validation_file="v")
    assert emb["lora_trainable_modules"] == "all-linear" and emb["lora_r"] == 32 and emb["validation_file"] == "v"
    with pytest.raises(ConfigError) as e:
        hosted.job_kwargs(recipes.TrainConfig(num_epochs=2.5, lr_scheduler="constant"), hosted.HostedConfig(n_evals=1),
                          "f")
    assert len(e.value.problems) == 3 and "EPOCHS=2.5" in str(e.value) and "TOGETHER_N_EVALS=1" in str(e.value)
    sent = {"num_epochs", "learning_rate", "lr_scheduler", "warmup_ratio", "weight_decay", "batch_size", "grad_accum",
            "lora_r", "lora_alpha", "lora_dropout", "target_modules", "seed"}
    assert sent | set(hosted.NOT_SENT) == set(recipes.TrainConfig.__dataclass_fields__)   # every knob accounted for


def test_hosted_config_and_model_names():
    with pytest.raises(ConfigError) as e:
        hosted.HostedConfig(model="embedded", suffix="x" * 41, n_checkpoints=0)
    assert len(e.value.problems) == 3
    assert (hosted.together_model("meta-llama/Llama-3.1-8B-Instruct")
            == "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
    assert hosted.together_model("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(ConfigError, match="embedded"):
        hosted.together_model("embedded")


def test_limits_are_checked_with_the_parameter_to_change():
    kw = hosted.job_kwargs(recipes.TrainConfig(lora_r=128, learning_rate=0.5, batch_size=64), hosted.HostedConfig(),
                           "f")
    kw["lora_trainable_modules"] = "q_proj,lm_head"
    with pytest.raises(ConfigError) as e:
        hosted.check_limits(kw, LIMITS)
    assert len(e.value.problems) == 3
    for text in ("LORA_R=128 > 64", "['lm_head']", "BATCH_SIZE=64 must be 8-32"):
        assert text in str(e.value)
    ok = hosted.job_kwargs(recipes.SEED_RECIPE, hosted.HostedConfig(), "f")
    assert recipes.SEED_RECIPE.batch_size == 4 and ok["batch_size"] == 8, \
        "the seed's micro batch 4 goes as Together's minimum"
    assert hosted.check_limits(ok, LIMITS).lora_training.max_rank == 64


def test_request_body_is_built_by_the_together_package():
    body = hosted.request_body(hosted.job_kwargs(recipes.SEED_RECIPE, hosted.HostedConfig(), "file-1"), LIMITS)
    assert body["training_type"] == {"type": "Lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
                                     "lora_trainable_modules": "q_proj,v_proj,o_proj"}
    assert body["lr_scheduler"] == {"lr_scheduler_type": "linear", "lr_scheduler_args": {"min_lr_ratio": 0.0}}
    assert body["training_method"] == {"method": "sft", "train_on_inputs": False}
    assert (body["n_epochs"], body["learning_rate"], body["warmup_ratio"], body["batch_size"]) == (3, 2e-4, 0.1, 8)


class FakeTogether:
    """Answers the together client's requests at its HTTP transport and keeps them."""

    def __init__(self):
        self.requests = []

    def __call__(self, req):
        self.requests.append(req)
        path = req.url.path
        if req.method == "GET" and path == "/v1/fine-tunes/models/limits":
            return httpx.Response(200, json=LIMITS)
        if req.method == "POST" and path == "/v1/files":
            return httpx.Response(302, headers={"Location": "https://uploads.example.com/put/file-1",
                                                "X-Together-File-Id": "file-1"})
        if req.method == "PUT":
            return httpx.Response(200)
        if path == "/v1/files/file-1/preprocess":
            return httpx.Response(200, json={"id": "file-1", "bytes": 1, "created_at": 0, "filename": "train.jsonl",
                                             "FileType": "jsonl", "object": "file", "Processed": True,
                                             "purpose": "fine-tune"})
        if path == "/v1/fine-tunes/estimate-price":
            return httpx.Response(200, json={"estimation_available": False})
        if path == "/v1/fine-tunes":
            return httpx.Response(200, json={"id": "ft-1", "status": "pending", "created_at": "2026-11-28T00:00:00Z",
                                             "updated_at": "2026-11-28T00:00:00Z"})
        return httpx.Response(404, json={"error": f"unexpected {req.method} {req.url}"})

    def client(self):
        from together import Together

        return Together(api_key="test-key", base_url="https://api.example.com/v1", max_retries=0,
                        http_client=httpx.Client(transport=httpx.MockTransport(self)))


def test_start_uploads_the_export_and_posts_the_request_body(tmp_path):
    out = hosted.export(_run(tmp_path, [_row(i) for i in range(5)]))
    fake = FakeTogether()
    res = hosted.start(fake.client(), out["files"]["train"], recipes.SEED_RECIPE, hosted.HostedConfig())
    assert res["job"].id == "ft-1" and res["training_file"].id == "file-1"
    calls = [(r.method, r.url.path) for r in fake.requests]
    assert calls == [("GET", "/v1/fine-tunes/models/limits"), ("POST", "/v1/files"), ("PUT", "/put/file-1"),
                     ("POST", "/v1/files/file-1/preprocess"), ("POST", "/v1/fine-tunes/estimate-price"),
                     ("POST", "/v1/fine-tunes")]
    assert fake.requests[2].content == open(out["files"]["train"], "rb").read()     # the exported bytes
    sent = json.loads(fake.requests[-1].content)
    want = hosted.request_body(hosted.job_kwargs(recipes.SEED_RECIPE, hosted.HostedConfig(), "file-1"), LIMITS)
    assert sent == want


def test_start_spends_nothing_on_a_bad_file_or_config(tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_text(json.dumps(_row(1)) + "\n" + json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n")
    fake = FakeTogether()
    with pytest.raises(DataError, match=r"train.jsonl:2: rule ends_with_assistant"):
        hosted.start(fake.client(), bad, recipes.SEED_RECIPE, hosted.HostedConfig())
    good = hosted.export(_run(tmp_path / "g", [_row(1)]))["files"]["train"]
    with pytest.raises(ConfigError, match="LORA_R=128"):
        hosted.start(fake.client(), good, recipes.TrainConfig(lora_r=128), hosted.HostedConfig())
    assert [(r.method, r.url.path) for r in fake.requests] == [("GET", "/v1/fine-tunes/models/limits")] * 2


def test_anyscale_status_says_what_and_where_from():
    assert "August 1, 2024" in hosted.ANYSCALE_STATUS
    assert "docs.anyscale.com/endpoints/fine-tuning/fine-tuning-api" in hosted.ANYSCALE_STATUS


# ---------------------------------------------------------------- the seed's model families on the routes
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


def _inspect(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return modal_app.inspect_app(path)["functions"]


def test_modal_runs_the_real_hub_id_with_a_token_secret_for_both_functions(tmp_path):
    cfg = modal_app.ModalConfig(run_name="seed", params={"MODEL": f"tiny:{LLAMA}"})
    assert cfg.params == {"MODEL": LLAMA}, "a stand-in proves the path here; Modal trains the model it stands in for"
    path = modal_app.write_app(cfg, tmp_path / "app.py")
    assert modal_app.load_app(path).PARAMS == {"MODEL": LLAMA}
    fns = _inspect(path)
    for name in ("train", "serve"):   # both download the gated base
        assert fns[name]["secrets"] == ["modal.Secret.from_name('huggingface')"], name
    assert "modal secret create huggingface HF_TOKEN=" in path.read_text()
    assert modal_app.ModalConfig(run_name="q", params={"MODEL": "Qwen/Qwen2.5-7B-Instruct"}).params == \
        {"MODEL": "Qwen/Qwen2.5-7B-Instruct"}, "a real hub id passes unchanged"
    public = modal_app.write_app(modal_app.ModalConfig(run_name="p", hf_secret=""), tmp_path / "public.py")
    assert all(f["secrets"] == [] for f in _inspect(public).values())
    other = modal_app.write_app(modal_app.ModalConfig(run_name="o", hf_secret="my-hf"), tmp_path / "other.py")
    assert _inspect(other)["train"]["secrets"] == ["modal.Secret.from_name('my-hf')"]
    with pytest.raises(ConfigError, match="no tiny stand-in for 'org/unknown'"):
        modal_app.ModalConfig(run_name="x", params={"MODEL": "tiny:org/unknown"})
    with pytest.raises(ConfigError, match="HF_SECRET='my secret'"):
        modal_app.ModalConfig(run_name="x", hf_secret="my secret")


def test_modal_serves_a_big_base_over_several_gpus(tmp_path):
    path = modal_app.write_app(modal_app.ModalConfig(run_name="big", serve_gpu="H100:2"), tmp_path / "app.py")
    assert _inspect(path)["serve"]["gpus"] == [["H100", 2]]
    module = modal_app.load_app(path)
    _adapter(tmp_path / "big" / "train" / "adapter", 16, LLAMA)
    argv, _ = module.vllm_command(runs_dir=str(tmp_path))
    assert argv[:3] == ["vllm", "serve", LLAMA] and argv[argv.index("--tensor-parallel-size") + 1] == "2"
    one = modal_app.load_app(modal_app.write_app(modal_app.ModalConfig(run_name="big"), tmp_path / "one.py"))
    assert "--tensor-parallel-size" not in one.vllm_command(runs_dir=str(tmp_path))[0]
    with pytest.raises(ConfigError, match=r"SERVE_GPU='H100:3'.*power of two"):
        modal_app.ModalConfig(run_name="x", serve_gpu="H100:3")


def test_together_takes_the_hub_id_a_standin_stands_in_for():
    assert hosted.together_model(f"tiny:{LLAMA}") == hosted.together_model(LLAMA) == \
        "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    assert hosted.together_model("tiny:Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert hosted.together_model("mistralai/Mistral-7B-Instruct-v0.3") == "mistralai/Mistral-7B-Instruct-v0.3"


def test_the_hosted_job_is_the_seeds_recipe_for_the_gpu_model(tmp_path):
    """03's Together job: the seed's recipe (not the embedded model's r 32 / lr 1e-3 / all-linear) for
    the hub model a learner would train, within Together's limits; a local folder gets no job."""
    cfg = recipes.gpu_recipe(recipes.recipe_for("embedded"))
    got = hosted.gpu_job(cfg, recipes.EMBEDDED_STANDS_IN_FOR, "file-1")
    kw = got["job"]
    assert got["model"] == kw["model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert (kw["learning_rate"], kw["lora_r"], kw["lora_alpha"], kw["lora_dropout"], kw["lora_trainable_modules"],
            kw["n_epochs"], kw["warmup_ratio"]) == (2e-4, 16, 32, 0.05, "q_proj,v_proj,o_proj", 3, 0.1)
    assert hosted.check_limits(kw, LIMITS)
    assert hosted.gpu_job(cfg, LLAMA, "f")["model"] == "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    assert hosted.gpu_job(cfg, "org/m", "f", "acct/m-Reference")["job"]["model"] == "acct/m-Reference"
    local = hosted.gpu_job(cfg, str(tmp_path), "f")
    assert local["model"] is None and "TOGETHER_MODEL" in local["why"] and "local folder" in local["why"]
    with pytest.raises(ConfigError, match="local folder"):
        hosted.together_model(str(tmp_path))
