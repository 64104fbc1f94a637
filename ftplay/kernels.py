"""The notebooks' kernels as `ftplay run` starts them: encrypted, named connection files, a clean Ctrl-C."""
import os
import signal
import tempfile
import threading
import uuid
from pathlib import Path

from . import rundir

CONNECTION_PREFIX = "ftplay-kernel-"   # <JUPYTER_RUNTIME_DIR>/ftplay-kernel-<runner pid>-<id>.json
INTERRUPTED = threading.Event()        # set by Ctrl-C during a run (catch_ctrl_c)


def manager():
    """The kernel manager class papermill starts each notebook's kernel with. Its kernel gets CurveZMQ keys
    (the kernelspec declares support), which is what ipykernel's "Kernel is running over TCP without
    encryption" warning on every run asks for; its connection file is named by this process's pid, so a
    killed run's file is recognised and removed by the next run (jupyter_client's default is an anonymous
    /tmp/tmpXXXX.json); it interrupts a kernel only on Ctrl-C, and then lets the cell reply before shutting
    the kernel down, so the kernel logs no `IPKernelApp ERROR` traceback."""
    import asyncio

    from jupyter_client.manager import AsyncKernelManager, KernelManager

    class FtplayKernelManager(AsyncKernelManager):
        def __init__(self, **kw):
            runtime = Path(os.environ.get("JUPYTER_RUNTIME_DIR") or tempfile.gettempdir())
            kw.setdefault("transport_encryption", "auto")
            name = f"{CONNECTION_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}.json"
            kw.setdefault("connection_file", str(runtime / name))
            super().__init__(**kw)

        async def shutdown_kernel(self, now=False, restart=False):
            # jupyter_client's own shutdown sends SIGINT first, always: landing while ipykernel handles a
            # message, it logs "IPKernelApp ERROR | KeyboardInterrupt caught in kernel" after a run that went
            # fine (measured: 2 of 4 runs of the runner's failing-notebook test). Here a kernel is
            # interrupted only when the run was (Ctrl-C), then asked to shut down as jupyter_client does it.
            if now or restart or not (self.owns_kernel and self.has_kernel):
                return await KernelManager._async_shutdown_kernel(self, now=now, restart=restart)
            self.shutting_down = True
            self.stop_restarter()
            if INTERRUPTED.is_set():
                cells = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                await self.interrupt_kernel()
                await asyncio.sleep(1)  # the cell's KeyboardInterrupt reply goes out before the sockets close
                for t in cells:  # the cell that was waiting ends with the interrupt this run asked for: settled
                    t.exception() if t.done() and not t.cancelled() else t.cancel()
            await self.request_shutdown()
            await self.finish_shutdown()
            await self.cleanup_resources()

    return FtplayKernelManager


def remove_stale_connection_files(runtime=None):
    """Remove kernel connection files left by runs that were killed (their pid is gone); returns them."""
    runtime = Path(runtime or os.environ.get("JUPYTER_RUNTIME_DIR") or tempfile.gettempdir())
    gone = []
    for f in runtime.glob(f"{CONNECTION_PREFIX}*.json"):
        pid = f.name[len(CONNECTION_PREFIX):].split("-")[0]
        if pid.isdigit() and not rundir.pid_alive(int(pid)):
            f.unlink(missing_ok=True)
            gone.append(f)
    return gone


SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
STOPPED_BY = []   # the name of the signal that stopped the run (what the one-line message says)


def catch_ctrl_c():
    """Note a Ctrl-C or a SIGTERM (a scheduler's or `kill`'s stop) in INTERRUPTED (the kernel manager then
    interrupts the cell before shutting down) and stop the run with KeyboardInterrupt, so both end the same way:
    the lock released, the kernel and its connection file gone, one line. Returns the handlers to restore (None
    off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        INTERRUPTED.set()
        STOPPED_BY[:] = [SIGNALS.get(signum, str(signum))]
        raise KeyboardInterrupt

    INTERRUPTED.clear()
    STOPPED_BY.clear()
    return {sig: signal.signal(sig, handler) for sig in SIGNALS}


def restore(previous):
    """Put back the handlers catch_ctrl_c replaced."""
    for sig, handler in (previous or {}).items():
        signal.signal(sig, handler)
