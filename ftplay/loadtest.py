"""The load test of a served model: requests of the base and each adapter mixed, `concurrency` at a time, over
plain asyncio HTTP/1.1 connections kept alive; throughput, latency percentiles and LoRA's overhead per model and
lane."""
import asyncio
import json
import time

from . import progress
from .errors import ConfigError
from .serve_client import Client


def _pct(values, q):
    import numpy as np

    return round(float(np.percentile(values, q)), 1) if values else None


def _summary(rows, seconds):
    ok = [r for r in rows if r["error"] is None]
    stopped = sum(r.get("finish_reason") == "stop" for r in ok)
    lat = [r["ms"] for r in ok]
    ctoks = sum(r["completion_tokens"] for r in ok)
    ptoks = sum(r["prompt_tokens"] for r in ok)
    busy_s = sum(r["ms"] for r in ok) / 1000
    return {"requests": len(rows), "errors": len(rows) - len(ok),
            "prompt_tokens": ptoks, "completion_tokens": ctoks,
            "completion_tokens_per_request": round(ctoks / len(ok), 2) if ok else None,
            "stopped": stopped,   # ended at end of turn, not max_tokens
            "stopped_share": round(stopped / len(ok), 4) if ok else None,
            "tokens_per_s": round(ctoks / seconds, 1) if seconds else None,
            "total_tokens_per_s": round((ptoks + ctoks) / seconds, 1) if seconds else None,
            "per_request_tokens_per_s": round(ctoks / busy_s, 1) if busy_s else None,
            "p50_ms": _pct(lat, 50), "p95_ms": _pct(lat, 95)}


async def _load(url, lanes, n, concurrency, api_key, max_seconds, ignore_eos):
    """The load test's requests over plain asyncio streams: `concurrency` workers, each with one keep-alive
    HTTP/1.1 connection, take the next request in order. The load generator shares the CPU with a local server:
    httpx's async client spent 3.5-5.6 CPU-s on 512 requests at 256 in flight (/proc), 15-25% of this 2-core
    machine, which the server then lacked; these streams send the same requests for about a tenth of that."""
    from urllib.parse import urlsplit

    bar = progress.bar(total=n, desc="load test" + (" (fixed length)" if ignore_eos else ""), unit="req")
    u = urlsplit(url)
    host, port = u.hostname, u.port or (443 if u.scheme == "https" else 80)
    head = (f"POST {u.path.rstrip('/')}/v1/chat/completions HTTP/1.1\r\nHost: {u.netloc}\r\n"
            "Content-Type: application/json\r\n" + (f"Authorization: Bearer {api_key}\r\n" if api_key else ""))
    deadline = time.perf_counter() + max_seconds
    todo, rows = iter(range(n)), []

    async def worker():
        conn = None
        for i in todo:  # one iterator shared by every worker: requests go out in order
            lane = lanes[i % len(lanes)]
            model, max_tokens = lane["model"], lane["max_tokens"]
            msgs = lane["conversations"][(i // len(lanes)) % len(lane["conversations"])]
            row = {"model": model, "task": lane.get("task"), "error": None, "prompt_tokens": 0,
                   "completion_tokens": 0, "ms": 0.0, "finish_reason": None}
            t0 = time.perf_counter()
            if t0 > deadline:
                row["error"] = "not sent: time budget spent"
                rows.append(row)
                continue
            body = json.dumps({"model": model, "messages": msgs, "max_tokens": max_tokens, "temperature": 0,
                               "ignore_eos": ignore_eos, **Client.extra_body()}).encode()
            request = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            try:
                conn, status, text = await asyncio.wait_for(_exchange(conn, host, port, u.scheme == "https", request),
                                                            max(1.0, deadline - t0))
                row["ms"] = (time.perf_counter() - t0) * 1000
                if status != 200:
                    row["error"] = f"HTTP {status}: {text[:200].decode(errors='replace')}"
                else:
                    out = json.loads(text)
                    usage = out["usage"]
                    row["prompt_tokens"], row["completion_tokens"] = usage["prompt_tokens"], usage["completion_tokens"]
                    row["finish_reason"] = out["choices"][0].get("finish_reason")
            except (OSError, EOFError, asyncio.TimeoutError, ValueError, KeyError) as e:
                row["error"] = f"{type(e).__name__}: {e}"[:200]
                conn = _close(conn)
            rows.append(row)
            bar.update(1)
        _close(conn)

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(min(concurrency, n))])
    bar.close()
    return rows, time.perf_counter() - t0


async def _exchange(conn, host, port, tls, request):
    """Send one request on `conn` ((reader, writer) or None: connect) and read its answer: (conn or None when the
    server closes it, status, body). A kept-alive connection the server closed while idle is reopened once."""
    for attempt in (0, 1):
        fresh = conn is None
        if fresh:
            conn = await asyncio.open_connection(host, port, ssl=tls or None)
        reader, writer = conn
        try:
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionResetError("the server closed the connection")
        except (ConnectionError, OSError):
            conn = _close(conn)
            if fresh or attempt:
                raise
            continue
        status, length, chunked, close = int(status_line.split()[1]), None, False, False
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            key, value = key.strip().lower(), value.strip().lower()
            if key == "content-length":
                length = int(value)
            elif key == "transfer-encoding":
                chunked = "chunked" in value
            elif key == "connection":
                close = value == "close"
        if chunked:
            body = bytearray()
            while size := int((await reader.readline()).split(b";")[0], 16):
                body += await reader.readexactly(size)
                await reader.readexactly(2)
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            body, close = await reader.read(), True
        return (_close(conn) if close else conn), status, bytes(body)


def _close(conn):
    if conn is not None:
        conn[1].close()
    return None


def _run_async(coro):
    """asyncio.run, also from a notebook kernel whose own event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


def load_lanes(tasks, base_name="base", max_tokens=None, n=12):
    """The load test's request mix: for each task, the base and each of the task's adapters on that task's
    first `n` conversations with its answer cap (`max_tokens` given: that cap for every lane, the fixed-length run).
    [{"model", "task", "conversations", "max_tokens"}], requests cycling through them in this order."""
    return [{"model": name, "task": task, "conversations": t.conversations(n),
             "max_tokens": max_tokens or t.max_tokens}
            for task, t in tasks.items() for name in (base_name, *t.adapters)]


def load_test(url, models_, conversations=None, n_requests=60, concurrency=16, max_tokens=8, api_key=None,
              max_seconds=300.0, ignore_eos=True):
    """Send `n_requests` chat requests, `concurrency` at a time, cycling through the request mix: `models_`
    a list of names that all get `conversations` (message lists) with `max_tokens`, or a list of lanes
    {"model", "task", "conversations", "max_tokens"} (`load_lanes`: base, triage and reply requests mixed,
    each task's model on its own conversations); stops sending after `max_seconds`. Request i goes to lane
    i mod lanes, with that lane's conversations in turn.

    tokens_per_s is completion tokens over wall time (the server's throughput), total_tokens_per_s
    prompt + completion tokens over wall time (what a cost per token prices); `stopped` counts the
    answers that ended at end of turn (finish_reason "stop") rather than at `max_tokens`, `stopped_share`
    their share; per-model (`per_model`, base requests of every task together) and per-lane (`per_lane`,
    "<model>:<task>") summaries give latency, tokens/s and answer tokens; per-model
    `per_request_tokens_per_s` is completion tokens over that model's summed request latencies, and
    `lora_overhead` = base per-request tokens/s ÷ adapters' per-request tokens/s in this same mixed
    run (>1: adapter requests are slower; None without `ignore_eos`, where the models' answers differ
    in length). Base requests batched with adapter requests share part of LoRA's cost, so this
    understates the overhead a base-only vs adapter-only comparison shows.
    `ignore_eos` makes every answer exactly its cap long, so runs are comparable; with
    `ignore_eos=False` answers stop at end of turn, so completion tokens are the real answer lengths.
    """
    if models_ and isinstance(models_[0], dict):
        lanes = [dict(lane) for lane in models_]
    else:
        lanes = [{"model": m, "task": None, "conversations": list(conversations or []), "max_tokens": max_tokens}
                 for m in models_ or []]
    if n_requests < 1 or concurrency < 1 or not lanes or not all(lane["conversations"] for lane in lanes):
        raise ConfigError("load test needs LOAD_TEST_REQUESTS >= 1, LOAD_TEST_CONCURRENCY >= 1, models and "
                          "conversations")
    url = url.rstrip("/").removesuffix("/v1")
    rows, seconds = _run_async(_load(url, lanes, n_requests, concurrency, api_key, max_seconds, ignore_eos))
    names = list(dict.fromkeys(lane["model"] for lane in lanes))
    caps = sorted({lane["max_tokens"] for lane in lanes})
    out = _summary(rows, seconds)
    out.update(seconds=round(seconds, 2), concurrency=concurrency, max_tokens=caps[-1], ignore_eos=ignore_eos,
               requests_per_s=round(len(rows) / seconds, 2) if seconds else None,
               per_model={m: {**_summary([r for r in rows if r["model"] == m], seconds),
                              "max_tokens": max(lane["max_tokens"] for lane in lanes if lane["model"] == m),
                              "tasks": sorted({lane["task"] for lane in lanes if lane["model"] == m and lane["task"]})}
                          for m in names},
               lanes=[{"model": lane["model"], "task": lane["task"], "max_tokens": lane["max_tokens"],
                       "conversations": len(lane["conversations"])} for lane in lanes],
               error_examples=sorted({r["error"] for r in rows if r["error"]})[:5])
    if any(lane["task"] for lane in lanes):
        out["per_lane"] = {f"{lane['model']}:{lane['task']}":
                           _summary([r for r in rows if r["model"] == lane["model"] and r["task"] == lane["task"]],
                                    seconds) for lane in lanes}
    base, adapters = names[0], names[1:]
    b = out["per_model"][base]["per_request_tokens_per_s"]
    a = [out["per_model"][m]["per_request_tokens_per_s"] for m in adapters]
    a = [x for x in a if x]
    # a ratio of per-request speeds means LoRA's cost only when every answer has the same length
    out["lora_overhead"] = round(b / (sum(a) / len(a)), 3) if b and a and ignore_eos and len(caps) == 1 else None
    return out
