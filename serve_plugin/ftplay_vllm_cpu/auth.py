"""ASGI middleware for vLLM's server (`--middleware ftplay_vllm_cpu.auth.EveryRoute`): with an API key set, every
route asks for it, not only vLLM's guarded prefixes (/v1, /v2, ...): /metrics, /docs, /openapi.json, /tokenize,
/detokenize, /version and the adapter loading routes answered anyone before. /health stays open, as a liveness
probe needs. The key is the one vLLM itself reads (VLLM_API_KEY), compared in constant time."""
import hashlib
import hmac
import os

OPEN = ("/health",)


class EveryRoute:
    def __init__(self, app):
        self.app = app
        key = os.environ.get("VLLM_API_KEY", "")
        self.digest = hashlib.sha256(key.encode()).digest() if key else None

    def _allowed(self, scope):
        for name, value in scope.get("headers") or ():
            if name.lower() == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                return scheme.lower() == "bearer" and hmac.compare_digest(
                    hashlib.sha256(token.encode()).digest(), self.digest)
        return False

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "").removeprefix(scope.get("root_path", ""))
        if (self.digest is None or scope["type"] not in ("http", "websocket") or scope.get("method") == "OPTIONS"
                or path in OPEN or self._allowed(scope)):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        body = b'{"error": "Unauthorized"}'
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
