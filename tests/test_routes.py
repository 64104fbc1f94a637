"""Other routes: the Modal app as Modal itself reads it (offline)."""
import json
import warnings

import pytest

from ftplay import cli, modal_app, runner
from ftplay.errors import ConfigError

pytest.importorskip("modal")


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
    for name in ("RUN_NAME", "GPU='V100'", "SERVE_GPU='A10:5'", "RUNS_VOLUME", "TIMEOUT_S", "SCALEDOWN_S", "'/abs/adapter'"):
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
    for pin in meta["optional-dependencies"]["train"] + meta["dependencies"]:
        assert pin in pip.split()                                              # exact pins from pyproject
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
    stems = [s for s, _, _ in runner.plan(args.only.split(","), module.PARAMS)]
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
