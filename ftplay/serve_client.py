"""An OpenAI-compatible client for ftplay's vLLM server, with vLLM's adapter endpoints and clear errors."""
import logging

from . import prompts
from .errors import ConfigError, FtplayError


class UnknownModelError(FtplayError):
    """The server answered 404 for the requested model name (base or adapter)."""
    status = 404


def quiet_http_logs():
    """The openai client's transport (httpx2 in openai 3.x, httpx before) logs every request at INFO
    ("HTTP Request: POST ..."): 05 sends hundreds, one line each in the notebook. Warnings still show;
    a level someone set on purpose is kept."""
    for name in ("httpx", "httpx2"):
        lg = logging.getLogger(name)
        if lg.level == logging.NOTSET:
            lg.setLevel(logging.WARNING)


class Client:
    """An OpenAI-compatible client for one server, with vLLM's adapter endpoints and clear errors."""

    def __init__(self, url, api_key=None, timeout=120.0):
        import openai

        quiet_http_logs()

        self.url = url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key or None
        self.openai = openai.OpenAI(base_url=self.url + "/v1", api_key=api_key or "EMPTY",
                                    timeout=timeout, max_retries=0)

    def _headers(self):
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def models(self):
        """Names the server answers to: the base and every loaded adapter."""
        return [m.id for m in self.openai.models.list().data]

    def _call(self, fn, model, **kw):
        import openai

        try:
            return fn(model=model, **kw)
        except openai.NotFoundError:
            raise UnknownModelError(f"adapter {model!r} is not loaded on the server at {self.url}; loaded: "
                                    f"{self.models()}. Load it (load_adapter) or fix the model name",
                                    "HTTP 404 unknown model") from None

    @staticmethod
    def extra_body(**more):
        """What every request to ftplay's server adds: the template arguments training rendered with
        (prompts.TEMPLATE_KWARGS: a fixed date) and no repetition penalty from the model's
        generation_config (Qwen2.5 ships 1.05), so a greedy answer is transformers' greedy answer."""
        return {"chat_template_kwargs": dict(prompts.TEMPLATE_KWARGS), "repetition_penalty": 1.0, **more}

    def chat(self, model, messages, max_tokens=8, **kw):
        """Greedy chat completion (temperature 0 unless given), rendered by the server with the
        model's own template and prompts.TEMPLATE_KWARGS."""
        kw.setdefault("temperature", 0)
        kw["extra_body"] = self.extra_body(**kw.get("extra_body", {}))
        return self._call(self.openai.chat.completions.create, model, messages=messages, max_tokens=max_tokens, **kw)

    def complete(self, model, prompt, max_tokens=8, **kw):
        """Greedy completion of an already rendered prompt: token ids (exact, as prompts.prompt_ids
        gives them) or text (then the server tokenizes it without adding a second BOS)."""
        kw.setdefault("temperature", 0)
        body = {"repetition_penalty": 1.0, **kw.pop("extra_body", {})}
        if isinstance(prompt, str):
            body.setdefault("add_special_tokens", False)
        return self._call(self.openai.completions.create, model, prompt=prompt, max_tokens=max_tokens,
                          extra_body=body, **kw)

    def classify(self, model, messages, labels, mode="json_schema", max_tokens=32):
        """The answer restricted to `labels`: `json_schema` (OpenAI response_format, {"label": enum},
        what evaluate.EndpointPredictor sends) or `choice` (vLLM's structured_outputs). Returns (label, raw)."""
        if mode == "json_schema":
            kw = {"response_format": prompts.label_schema(labels)}
        elif mode == "choice":
            kw = {"extra_body": {"structured_outputs": {"choice": list(labels)}}}
        else:
            raise ConfigError(f"mode={mode!r} must be 'json_schema' or 'choice'")
        raw = self.chat(model, messages, max_tokens=max_tokens, **kw).choices[0].message.content or ""
        if mode == "choice":
            return (raw if raw in labels else None), raw
        return prompts.parse_structured(raw, labels), raw

    def _post(self, route, payload):
        import httpx

        r = httpx.post(self.url + route, json=payload, headers=self._headers(), timeout=120)
        if r.status_code != 200:
            hint = (" (start the server with runtime_lora_updating=True)" if r.status_code == 404
                    and "lora_adapter" in route and "cannot be found" not in r.text else "")
            raise FtplayError(f"POST {self.url}{route} {payload} answered {r.status_code}: {r.text[:500]}{hint}",
                              "adapter update failed")
        return r.text

    def load_adapter(self, name, path):
        """Load an adapter into the running server (needs runtime_lora_updating)."""
        return self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)})

    def unload_adapter(self, name):
        return self._post("/v1/unload_lora_adapter", {"lora_name": name})
