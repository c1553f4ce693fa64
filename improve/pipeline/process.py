"""Work in a child process of a forkserver: a training run (`python -m improve.train` on a frozen config) with a
time limit, and a bounded call (a function under a wall-clock and a memory limit, e.g. validating an agent's edit).

The refinement loop runs every round and every validation this way, and the strategy benchmark
every trial, so a crash, NaN, OOM, hang or stack overflow costs one run or one check, never the caller.

A round is a process forked from a forkserver that has already imported torch, Lightning, timm
and `improve.train` (Python's multiprocessing "forkserver" start method, preloaded), then runs
the same Hydra entry point as `python -m improve.train`. A fresh interpreter would spend about
6 s of every round on those imports; the forkserver pays them once per loop, and forking it is
safe because it has run no torch work, no threads and no CUDA. The child gets the caller's
current environment, its own process group (a timeout kills the run with its data workers),
and kills that group when the caller dies, even by `kill -9`.
"""
import json
import multiprocessing
import multiprocessing.connection
import os
import resource
import shutil
import signal
import sys
import threading
from multiprocessing import forkserver
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set

import yaml

from improve.config.paths import PROJECT_ROOT
from improve.files import write_json

PRELOAD = ["improve.pipeline.train"]  # what the forkserver imports once, before any round


def _context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def warm_up() -> None:
    """Start the forkserver now, so its imports overlap the caller's own work before the first round."""
    _context()
    forkserver.ensure_running()


def _kill_group_when_parent_dies() -> None:
    multiprocessing.connection.wait([multiprocessing.parent_process().sentinel])
    os.killpg(0, signal.SIGKILL)


def _round_main(argv: List[str], env: Dict[str, str], log: Optional[str]) -> None:
    """The round's process: `python -m improve.train <argv>`, without a new interpreter."""
    os.setsid()  # its own process group, so the caller can kill the run and its data workers at once
    threading.Thread(target=_kill_group_when_parent_dies, daemon=True).start()
    os.environ.clear()
    os.environ.update(env)  # the caller's environment now, not the forkserver's from when it started
    os.chdir(PROJECT_ROOT)
    if log is not None:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    from improve.pipeline import train

    sys.argv = [train.__file__, *argv]
    sys.modules["__main__"] = train  # Lightning's DDP relaunches `python -m <__main__> <sys.argv>` per device
    train.main()


def failed(rd: Path, error: str, kind: str, metrics: Optional[Dict] = None) -> Dict[str, Any]:
    metrics = dict(metrics or {"epochs": []})
    metrics.update(status="failed", error=error, error_type=kind)
    write_json(rd / "metrics.json", metrics)
    return metrics


_LIVE: Set[multiprocessing.process.BaseProcess] = set()  # round processes running now (several: candidates)


def kill_all() -> None:
    """End every round process this loop is running (Ctrl-C while candidates train at once)."""
    for proc in list(_LIVE):
        _kill(proc)


def _kill(proc: multiprocessing.process.BaseProcess) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and any workers it started
    except (ProcessLookupError, PermissionError):  # gone, or killed before it made its group
        pass
    proc.kill()
    proc.join()


def train_in_process(config: Dict[str, Any], rd: Path, timeout: float, live: bool = False,
                     keep: Iterable[str] = ()) -> Dict[str, Any]:
    """Write rd/config.yaml, run it, return its metrics.json (status "failed" with the reason on any failure).

    What an interrupted earlier attempt left in `rd` is removed first, except the names in `keep`.
    `live`: the run draws on this terminal (progress bar) instead of writing rd/stdout.log.
    """
    rd.mkdir(parents=True, exist_ok=True)
    for stale in rd.iterdir():
        if stale.name not in keep:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    (rd / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    log = rd / "stdout.log"
    log.touch()
    argv = [f"--config-path={rd.resolve()}", "--config-name=config", f"hydra.run.dir={rd.resolve()}"]
    name = rd.name
    proc = _context().Process(target=_round_main, args=(argv, dict(os.environ), None if live else str(log)),
                              name=f"improve round {name}")
    proc.start()
    _LIVE.add(proc)
    try:
        proc.join(timeout)
    except BaseException:  # Ctrl-C in the caller: the round goes too (a resumed loop reruns it)
        _kill(proc)
        raise
    finally:
        _LIVE.discard(proc)
    if proc.exitcode is None:
        _kill(proc)
        return failed(rd, f"round timed out after {timeout:.0f} s (loop.round_timeout); use fewer epochs, a "
                          f"smaller model or image size", "TimeoutError")
    code = proc.exitcode
    proc.close()
    metrics_file = rd / "metrics.json"
    try:
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    except ValueError:  # cut short (the disk filled while the run wrote it): the run crashed
        metrics = None
    if code < 0:
        return failed(rd, f"training process killed by signal {-code}"
                          f"{' (out of memory?)' if code == -signal.SIGKILL else ''}; see {name}/stdout.log",
                      "Killed", metrics)
    if metrics is None and not log.stat().st_size and not live:
        return failed(rd, f"the round's process failed before training started (exit code {code}); its error is "
                          f"printed above. Calling the loop from a script? Put the call under "
                          f"`if __name__ == \"__main__\":`, as rounds start through Python multiprocessing",
                      "Crash")
    if metrics is None or metrics.get("status") == "running":
        return failed(rd, f"training crashed (exit code {code}) without finishing metrics.json; see "
                          f"{name}/stdout.log", "Crash", metrics)
    return metrics


class ChildFailed(Exception):
    """A bounded call that returned no value. `reason`: timeout, memory, killed or raised; for raised, the
    exception's type name and its `kind` attribute when it has one (EditRejected's)."""

    def __init__(self, reason: str, message: str, error_type: str = "", kind: Optional[str] = None):
        super().__init__(message)
        self.reason, self.error_type, self.kind = reason, error_type, kind


MAX_MESSAGE_CHARS = 1000  # of an exception raised in the child: a huge value's repr must not come back whole


def _virtual_memory() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * resource.getpagesize()


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:MAX_MESSAGE_CHARS]


def _bounded_main(send, func: Callable, args: Sequence[Any], memory_bytes: Optional[int]) -> None:
    """The child of `call_bounded`: its own process group, dies with the caller, address space capped."""
    os.setsid()
    threading.Thread(target=_kill_group_when_parent_dies, daemon=True).start()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash ends at once: no core dump of torch's address space
    if memory_bytes:
        try:  # on top of what the preloaded libraries already map
            limit = _virtual_memory() + int(memory_bytes)
            resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        except (OSError, ValueError):  # no /proc, or a hard limit below it: time still bounds the call
            pass
    try:
        outcome = ("ok", func(*args))
    except MemoryError:
        outcome = ("memory", "MemoryError", "", None)
    except BaseException as err:  # anything at all: the caller decides what it means
        outcome = ("raised", type(err).__name__, _one_line(err), getattr(err, "kind", None))
    try:
        send.send(outcome)
    except Exception as err:  # a value that cannot be pickled, or no memory left to do it
        send.send(("raised", type(err).__name__, _one_line(err), None))
    send.close()


def call_bounded(func: Callable, args: Sequence[Any], timeout: float, memory_bytes: Optional[int] = None,
                 name: str = "improve check") -> Any:
    """func(*args) in a child of the forkserver, under `timeout` seconds and `memory_bytes` more address space.

    Returns its value, or raises ChildFailed however else the call ended: an exception of any type, the timeout
    (the child and anything it started are killed), exhausted memory, a signal (a stack overflow in C code).
    `func` must be importable by name (a module-level function), its arguments and value picklable.
    """
    ctx = _context()
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_bounded_main, args=(send, func, args, memory_bytes), name=name)
    proc.start()
    send.close()
    _LIVE.add(proc)
    outcome = None
    try:
        multiprocessing.connection.wait([receive, proc.sentinel], timeout)
        if receive.poll():
            try:
                outcome = receive.recv()
            except (EOFError, OSError):  # it died while sending
                outcome = None
    except BaseException:  # Ctrl-C in the caller
        _kill(proc)
        raise
    finally:
        receive.close()
        _LIVE.discard(proc)
    if outcome is None:
        if proc.is_alive():
            _kill(proc)
            raise ChildFailed("timeout", f"took over {timeout:g} s")
        proc.join()
        code = proc.exitcode
        proc.close()
        raise ChildFailed("killed", f"its process died with {f'signal {-code}' if code < 0 else f'exit code {code}'}")
    proc.join(timeout)
    if proc.is_alive():  # it answered, then hung on the way out
        _kill(proc)
    if outcome[0] == "ok":
        return outcome[1]
    reason, error_type, message, kind = outcome
    raise ChildFailed(reason, message, error_type, kind)
