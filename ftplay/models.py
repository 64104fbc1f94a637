"""Which base model a run uses: the embedded tiny default, a local folder, or a hub id."""
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import standins, tinymodel
from .errors import ConfigError

log = logging.getLogger(__name__)
EMBEDDED = "embedded"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelRef:
    """A resolved base model: what the user asked for, where it lives, and what pins it."""
    requested: str     # the MODEL parameter as given
    path: str          # a local folder, or the hub id on a machine that downloads it
    kind: str          # "embedded" | "standin" | "local" | "hub"
    revision: str      # files hash for local models, the hub revision otherwise


MAX_SEED = 2**32 - 1   # numpy's and the tokenizer build's seeds are 32-bit


def resolve(model, param="MODEL"):
    """Turn the MODEL parameter into a ModelRef, failing early with the fix when it cannot work.

    `embedded` (or `embedded:SEED`) builds the tiny default offline; `tiny:org/name` builds a tiny
    stand-in of that hub model (its real tokenizer and chat template, random weights) offline; an
    existing folder is used as is; `org/name` is a hub id (its download is left to transformers on
    a machine with network).
    """
    model = str(model).strip()
    if model.startswith(standins.PREFIX):
        try:
            path = standins.build(model)
        except ConfigError as e:  # name the parameter the user has to change
            raise ConfigError([p.replace("MODEL=", f"{param}=", 1) for p in e.problems]) from None
        return ModelRef(model, str(path), "standin", tinymodel.files_hash(path))
    if model == EMBEDDED or model.startswith(EMBEDDED + ":"):
        seed = model.partition(":")[2] or "0"
        if not seed.isdigit() or int(seed) > MAX_SEED:
            raise ConfigError(f"{param}={model!r}: the seed after 'embedded:' must be an integer in [0, {MAX_SEED}], "
                              f"e.g. {param}='embedded:1'")
        path = tinymodel.build(tinymodel.TinySpec(seed=int(seed)))
        return ModelRef(model, str(path), "embedded", tinymodel.files_hash(path))
    p = Path(model).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise ConfigError(f"{param}={model!r} is a folder without config.json; point {param} "
                              "at a saved Hugging Face model folder (config.json, weights, tokenizer)")
        return ModelRef(model, str(p.resolve()), "local", tinymodel.files_hash(p))
    if model.startswith((".", "/", "~")) or not HUB_ID.match(model):
        raise ConfigError(f"{param}={model!r} does not exist: set {param} to an existing model folder, "
                          f"a hub id such as 'Qwen/Qwen2.5-7B-Instruct', or 'embedded' for the tiny default")
    if os.environ.get("HF_HUB_OFFLINE") == "1" and not _in_hub_cache(model):
        raise ConfigError(f"{param}={model!r} is a hub id but HF_HUB_OFFLINE=1 and it is not in the local "
                          f"cache: download it first (huggingface-cli download {model}) or set {param} to a folder")
    revision = os.environ.get("FTPLAY_MODEL_REVISION", "main")
    if os.environ.get("HF_HUB_OFFLINE") != "1" and not _in_hub_cache(model):
        check_hub_access(model, param, revision)
    return ModelRef(model, model, "hub", revision)


HUB_CHECK_TIMEOUT_S = 5.0  # one HEAD request; without it a gated model fails after ~60 s of retries, as a 401 trace


def check_hub_access(hub_id, param="MODEL", revision="main", timeout=HUB_CHECK_TIMEOUT_S):
    """Fail within seconds, naming the fix, when this machine cannot download `hub_id`: one HEAD
    request for its config.json (huggingface_hub, with the token `hf auth login` saved or HF_TOKEN).
    A gated model (Llama 3.1) without access, an unknown or private id, and no network each get a
    ConfigError; any other answer (a 5xx, a repo without config.json) is left to the download."""
    import httpx
    from huggingface_hub import get_hf_file_metadata, get_token, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    page = f"https://huggingface.co/{hub_id}"
    try:
        get_hf_file_metadata(hf_hub_url(hub_id, "config.json", revision=revision), timeout=timeout)
    except GatedRepoError:
        who = ("the token this machine uses has no access to it yet" if get_token() else
               "this machine has no Hugging Face token")
        raise ConfigError(f"{param}={hub_id!r} is a gated model and {who}: accept its licence on {page} "
                          "(signed in; approval can take a while), then run `hf auth login` here or export "
                          "HF_TOKEN=hf_... (a read token from https://huggingface.co/settings/tokens)") from None
    except RepositoryNotFoundError:
        raise ConfigError(f"{param}={hub_id!r} is not a model this machine can see on the hub: check the id on "
                          f"{page}; a private model needs `hf auth login` or HF_TOKEN") from None
    except (httpx.TransportError, OfflineModeIsEnabled, ConnectionError, TimeoutError) as e:
        tiny = f", or MODEL='{standins.PREFIX}{hub_id}' for its offline stand-in" if hub_id in standins.FAMILIES else ""
        raise ConfigError(f"{param}={hub_id!r} is a hub id but huggingface.co cannot be reached from this machine "
                          f"({type(e).__name__}: {str(e)[:120]}): download it where there is network "
                          f"(`hf download {hub_id}`) and run here with HF_HUB_OFFLINE=1 and that cache "
                          f"(HF_HOME), or set {param} to a local model folder{tiny}") from None
    except (EntryNotFoundError, HfHubHTTPError) as e:
        log.warning("hub check of %s: %s; leaving it to the download", hub_id, str(e).splitlines()[0][:200])


def _in_hub_cache(hub_id):
    root = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    return (root / ("models--" + hub_id.replace("/", "--"))).exists()


def family(ref):
    """The stand-in family ('llama3.1', 'qwen2.5', 'mistral-v0.3') of a resolved model, else None."""
    meta = Path(ref.path) / "ftplay_tiny.json" if ref.kind != "hub" else None
    return json.loads(meta.read_text()).get("family") if meta and meta.exists() else None


def template_hash(tokenizer):
    """sha256 (16 hex) of the tokenizer's chat template: training and serving must agree on it."""
    return hashlib.sha256((tokenizer.chat_template or "").encode()).hexdigest()[:16]


def load_tokenizer(ref):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ref.path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(ref, adapter=None, dtype="float32"):
    """The base model (plus a LoRA adapter folder, if given) in eval mode, for scoring."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ref.path, dtype=getattr(torch, dtype))
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return model.eval()


def describe(path):
    """Small facts about a model folder for the manifest: architecture, parameters, vocab."""
    cfg = json.loads((Path(path) / "config.json").read_text())
    return {k: cfg.get(k) for k in ("model_type", "hidden_size", "num_hidden_layers",
                                    "vocab_size", "tie_word_embeddings", "max_position_embeddings")}
