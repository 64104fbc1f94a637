"""`make lab`'s JupyterLab in headless Chromium: it opens 00; open 01, run its cells from the menu, check the kernel
and outputs."""
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "notebooks/01_decide_approach.ipynb"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _wait(what, fn, timeout, every=0.5):
    """fn() until it returns something true; fails naming `what` and the last value after `timeout` s."""
    end, last = time.monotonic() + timeout, None
    while time.monotonic() < end:
        try:
            last = fn()
            if last:
                return last
        except (OSError, ValueError) as e:  # server or browser not up yet
            last = e
        time.sleep(every)
    raise AssertionError(f"{what}: not after {timeout} s (last: {last!r})")


class Page:
    """The smallest Chrome DevTools Protocol client this test needs: commands on one page's websocket."""

    def __init__(self, ws_url):
        import websocket  # websocket-client, a JupyterLab dependency

        self.ws, self.n = websocket.create_connection(ws_url, timeout=60, suppress_origin=True), 0

    def call(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def click(self, selector, text=None):
        """A real mouse click (pressed, released) at the centre of the first element matching `selector` (and
        whose text is `text`); False when there is none yet."""
        box = self.js(f"""(() => {{
            const els = [...document.querySelectorAll({json.dumps(selector)})]
                .filter(e => {json.dumps(text)} === null || e.textContent.trim() === {json.dumps(text)});
            if (!els.length) return null;
            const r = els[0].getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2];
        }})()""")
        if not box:
            return False
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
        return True


@pytest.fixture
def lab(tmp_path):
    """`make lab` on a free port (its setup prerequisite taken as done: this machine is set up), with
    Jupyter's user folders in tmp_path; yields (url, token, port)."""
    if not (ROOT / ".venv" / "bin" / "jupyter").exists():
        pytest.skip("JupyterLab is not in .venv: make setup installs it (the 'lab' extra)")
    port, env = _free_port(), dict(os.environ)
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_WORKSPACES_DIR", "JUPYTERLAB_SETTINGS_DIR",
                "IPYTHONDIR"):
        env[var] = str(tmp_path / var.lower())
    env.pop("TQDM_DISABLE", None)
    # no autosave: the notebook under test stays committed without outputs (the test also puts its bytes back);
    # no "Jupyter news" pop-up over the page
    settings = tmp_path / "jupyterlab_settings_dir"
    for plugin, values in (("docmanager-extension/plugin", {"autosave": False}),
                           ("apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False})):
        (settings / "@jupyterlab" / plugin).parent.mkdir(parents=True, exist_ok=True)
        (settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))
    proc = subprocess.Popen(["make", "-s", "-o", ".venv/.setup-done", "lab", f"LAB_PORT={port}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=open(tmp_path / "lab.log", "w"), text=True,
                            start_new_session=True)
    try:
        first = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:(\d+)/lab/tree/\S+\?token=(\w+))", first)
        assert m, f"make lab printed {first!r}; log: {(tmp_path / 'lab.log').read_text()[-2000:]}"
        url, token = m.group(1), m.group(3)
        assert int(m.group(2)) == port and len(token) >= 32
        assert "/lab/tree/notebooks/00_baseline_prompting.ipynb?" in url, "make lab opens the first notebook"
        def up():
            assert proc.poll() is None, f"make lab exited: {(tmp_path / 'lab.log').read_text()[-1500:]}"
            return _get_json(f"http://127.0.0.1:{port}/api/status?token={token}")

        _wait("JupyterLab answering", up, 120)
        with pytest.raises(urllib.error.HTTPError):  # token authentication: no token, no API
            _get_json(f"http://127.0.0.1:{port}/api/sessions")
        yield url, token, port
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make setup installs Debian's package "
                    "through apt-get when run as root)")
def test_jupyterlab_runs_01_in_a_real_browser(lab, tmp_path):
    url, token, port = lab
    record = ROOT / "runs" / "interactive" / "01_decide_approach.json"
    kept = record.read_bytes() if record.exists() else None  # 01 records into runs/interactive: put back after
    made_dir = not record.parent.exists()
    source = (ROOT / NOTEBOOK).read_bytes()
    debug = _free_port()
    browser = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                f"--remote-debugging-port={debug}", f"--user-data-dir={tmp_path / 'chromium'}",
                                "--window-size=1400,1000", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=open(tmp_path / "chromium.log", "w"))
    started = time.time()
    try:
        targets = _wait("chromium's DevTools", lambda: [t for t in _get_json(f"http://127.0.0.1:{debug}/json/list")
                                                         if t["type"] == "page"], 60)
        page = Page(targets[0]["webSocketDebuggerUrl"])
        page.call("Page.enable")
        # 01, the cheapest notebook (00, the one make lab opens, serves a model and scores every prompt)
        page.call("Page.navigate", url=url.replace("00_baseline_prompting.ipynb", "01_decide_approach.ipynb"))
        n_cells = len(nbformat.read(str(ROOT / NOTEBOOK), as_version=4).cells)
        n_code = sum(c.cell_type == "code" for c in nbformat.read(str(ROOT / NOTEBOOK), as_version=4).cells)
        _wait("the notebook's cells in the page", lambda: page.js(
            "document.querySelectorAll('.jp-NotebookPanel .jp-Cell').length") == n_cells, 180)

        def session():
            s = [s for s in _get_json(f"http://127.0.0.1:{port}/api/sessions?token={token}") if s["path"] == NOTEBOOK]
            return s and s[0]["kernel"]["execution_state"] == "idle" and s[0]

        kernel = _wait("the notebook's kernel, idle", session, 120)["kernel"]
        assert kernel["name"] == "ftplay", "the kernel the notebook's metadata select, registered by make lab"

        # Run > Run All Cells, clicked like a person would
        _wait("the Run menu", lambda: page.click(".lm-MenuBar-item", "Run"), 30)
        _wait("Run All Cells", lambda: page.click('.lm-Menu-item[data-command="runmenu:run-all"]'), 30)
        prompts = ("[...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')]"
                   ".map(e => e.textContent.trim())")
        done = _wait("every code cell executed", lambda: (lambda p: len(p) == n_code and all(
            re.fullmatch(r"\[\d+\]:", x) for x in p) and p)(page.js(prompts)), 300)
        assert [int(x[1:-2]) for x in done] == list(range(1, n_code + 1)), f"run in order, once: {done}"
        errors = page.js("[...document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output')]"
                         ".filter(e => e.dataset.mimeType === 'application/vnd.jupyter.stderr')"
                         ".map(e => e.textContent.slice(0, 300))")
        assert errors == [], errors
        assert record.exists() and record.stat().st_mtime >= started, "the last cell recorded 01's verdict"
        assert page.js("document.body.textContent.includes('recorded 01_decide_approach.json')")
        shot = tmp_path / "01_decide_approach.png"
        shot.write_bytes(base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"]))
        assert shot.stat().st_size > 10_000
    finally:
        browser.terminate()
        browser.wait(30)
        if (ROOT / NOTEBOOK).read_bytes() != source:
            (ROOT / NOTEBOOK).write_bytes(source)
            pytest.fail(f"{NOTEBOOK} was saved with outputs during the test; its committed bytes are put back")
        if kept is not None:
            record.write_bytes(kept)
        elif record.exists() and record.stat().st_mtime >= started:
            record.unlink()
            if made_dir:
                shutil.rmtree(record.parent, ignore_errors=True)
