"""The agents against a real model nobody here wrote: llama.cpp's llama-server serving Gemma 3 270M (a tiny base
model with weak, real answers), started from ../shared/llm/serve, through both its OpenAI-compatible and its
Anthropic-style endpoints. A run must finish, journal every call and show every failure. A machine that cannot build
the server (`serve --build-only` fails or does not end) skips them with the build's log; a built server that does
not come up fails them."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from improve.config.paths import PROJECT_ROOT
from improve.journal.log import Journal

from .conftest import LOOP_FAST, run_cli

SERVE = PROJECT_ROOT.parent / "shared" / "llm" / "serve"
START_TIMEOUT = 1500  # the first use on a machine builds llama-server (6-11 minutes on 2 cores)
UP_TIMEOUT = 300  # then the built server loads a 270M model


def serve_logs(log: Path) -> str:
    """What the server and its one-time build printed last: the reason it did not come up."""
    home = Path(os.environ.get("IMPROVE_LLM_HOME", Path.home() / ".cache" / "improve-llm"))
    parts = [(p, p.read_text(errors="replace")[-1500:]) for p in (log, home / "cmake.log", home / "build.log")
             if p.is_file()]
    return "\n".join(f"--- {p}:\n{text}" for p, text in parts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def real_llm(tmp_path_factory):
    """The port of a running llama-server; stopped after the module's tests."""
    if not SERVE.is_file():
        pytest.skip(f"{SERVE} is not here (it comes with the project's shared folder)")
    port, log = free_port(), tmp_path_factory.mktemp("llm") / "serve.log"
    with open(log, "w") as out:  # the one-time build first: a machine that cannot build the server cannot run these
        build = subprocess.Popen([str(SERVE), "--build-only"], stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # tests, which check our clients, not the machine
    try:
        built = build.wait(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(build.pid, signal.SIGKILL)  # the build's compilers too
        build.wait()
        built = f"no end in {START_TIMEOUT} s"
    if built != 0:
        pytest.skip(f"{SERVE} --build-only could not build llama-server on this machine ({built}):\n{serve_logs(log)}")
    with open(log, "w") as out:
        proc = subprocess.Popen([str(SERVE), str(port)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + UP_TIMEOUT
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"llama-server exited with {proc.returncode}:\n{serve_logs(log)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if json.loads(r.read()).get("status") == "ok":
                        break
            except OSError:
                pass
            time.sleep(2)
        else:
            pytest.fail(f"llama-server did not come up in {UP_TIMEOUT} s:\n{serve_logs(log)}")
        yield port
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:  # it exited already: the failure above says why, this must not hide it
            pass
        proc.wait(timeout=30)


def llm_events(run: Path) -> list:
    return [e for e in Journal(run / "journal.jsonl").events() if e["event"] in ("llm_call", "llm_fallback")]


@pytest.mark.slow
@pytest.mark.timeout(START_TIMEOUT + UP_TIMEOUT + 900)
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_short_run_on_a_real_model_finishes_journals_every_call_and_shows_every_failure(provider, real_llm,
                                                                                          tmp_path, cache_dir):
    url = f"http://127.0.0.1:{real_llm}" + ("/v1" if provider == "openai" else "")
    proc = run_cli("improve", f"llm={provider}", f"llm.base_url={url}", "llm.model=gemma", "llm.max_tokens=400",
                   "llm.timeout=300", "llm.cache=false", "loop.rounds=1", "loop.max_repairs=1", *LOOP_FAST,
                   f"paths.cache_dir={cache_dir}", f"hydra.run.dir={tmp_path}", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "HTTP Request" not in proc.stdout + proc.stderr
    calls = [e for e in llm_events(tmp_path) if e["event"] == "llm_call"]
    audits = list(tmp_path.glob("rounds/*/llm/*.json"))
    assert calls and len(audits) == len([c for c in calls if "error_kind" in c or not c.get("error")])
    for e in calls:  # every failed or unusable reply has its own line on the console
        if e.get("error"):
            assert e["error"][:80] in proc.stdout, e["error"]
    report = (tmp_path / "report.md").read_text()
    if any(e.get("error") for e in calls):
        assert "## LLM calls that failed or fell back" in report
