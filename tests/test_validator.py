"""Validation in a bounded child: whatever an agent writes ends as an EditRejected, never a hang or crash of the loop."""
import ctypes
import io
import operator
import os
import sys
import time

import pytest
from rich.console import Console

import improve.__main__  # noqa: F401  (registers the run_dir resolver)
from improve.config.schema import EDITABLE_GROUPS, group_defaults
from improve.journal.log import Journal
from improve.pipeline.process import ChildFailed, call_bounded
from improve.refine.edits import EditRejected
from improve.refine.loop import Refinement
from improve.refine.preflight import RoundCost
from improve.refine.validator import Validator

from .conftest import decisions
from .llm_server import ARCHITECT, Script, ScriptedLLMServer, url_for

PIPELINE = {g: group_defaults(g) for g in EDITABLE_GROUPS}
TIMEOUT = 3.0


def test_a_bounded_call_returns_its_value_and_every_other_ending_becomes_a_reason():
    # library functions as the child's work: picklable by name and cheap to import (a test module is not)
    assert call_bounded(operator.mul, (21, 2), timeout=30) == 42
    assert call_bounded(os.getpid, (), timeout=30) != os.getpid()
    endings = {}
    for name, func, args, memory, timeout in (("KeyError", operator.getitem, ({}, "no such key"), None, TIMEOUT),
                                              ("SystemExit", sys.exit, (7,), None, TIMEOUT),
                                              ("hang", time.sleep, (600,), None, TIMEOUT),
                                              # how a C stack overflow ends
                                              ("segfault", ctypes.string_at, (0,), None, TIMEOUT),
                                              ("8 GiB", bytearray, (8 * 2 ** 30,), 2 ** 30, TIMEOUT)):
        start = time.perf_counter()
        with pytest.raises(ChildFailed) as err:
            call_bounded(func, args, timeout=timeout, memory_bytes=memory)
        endings[name] = (err.value.reason, err.value.error_type)
        assert time.perf_counter() - start < timeout + 5, name
    # a crashed child dies of its signal, unless a crash handler some library installed keeps it faulting: then
    # the timeout ends it; either way the caller gets a reason, in bounded time
    assert endings.pop("segfault")[0] in ("killed", "timeout")
    assert endings == {"KeyError": ("raised", "KeyError"), "SystemExit": ("raised", "SystemExit"),
                       "hang": ("timeout", ""), "8 GiB": ("memory", "MemoryError")}


def validator(**kwargs):
    return Validator(10, 1, {}, timeout=TIMEOUT, memory_gb=4, max_epochs=40, **kwargs)


HOSTILE = {  # replies of the kinds that used to hang or end the run: plain YAML, no tags, under the length limit
    "nested a few thousand levels deep": ("augment", "train_transforms: " + "[" * 3000 + "]" * 3000, "too_deep"),
    "a literal of many thousand digits": ("trainer", "lr: " + "9" * 12000, "check_failed"),
    "a blur kernel of 300,001 pixels": ("augment", "train_transforms:\n- {name: MedianBlur, blur_limit: "
                                                   "[300001, 300001], p: 1.0}", "too_slow"),
    "a million masks per image": ("augment", "train_transforms:\n- {name: CoarseDropout, num_holes_range: "
                                             "[1000000, 1000000], p: 1.0}", "too_slow"),
}


@pytest.fixture(scope="module")
def forkserver_up():
    """The forkserver started and its imports paid before any check is timed: the bound is on the check."""
    call_bounded(os.getpid, (), timeout=300)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_reply_is_rejected_within_the_timeout_and_the_caller_lives_on(case, forkserver_up):
    group, text, kind = HOSTILE[case]
    start = time.perf_counter()
    with pytest.raises(EditRejected) as err:
        validator().edit(text, group, PIPELINE)
    assert err.value.kind == kind, str(err.value)
    assert time.perf_counter() - start < TIMEOUT + 5
    assert len(str(err.value)) < 2000  # the message, not the value, comes back
    pipeline, pf = validator().edit("lr: 0.01", "trainer", PIPELINE)  # and the next reply is checked as usual
    assert pipeline["trainer"]["lr"] == 0.01 and pf.num_params > 0


def test_a_round_that_cannot_fit_its_time_limit_is_rejected_with_the_estimate():
    cost = RoundCost(train_images=5_000_000, limit_s=900, limit="loop.round_timeout=900")
    with pytest.raises(EditRejected) as err:
        validator(round_cost=cost).edit("epochs: 40", "trainer", PIPELINE)
    assert err.value.kind == "too_slow"
    assert "at least" in str(err.value) and "40 epochs x 5,000,000 images" in str(err.value)
    assert "loop.round_timeout=900" in str(err.value)
    tight = validator(round_cost=RoundCost(500, 900, "loop.round_timeout=900"), seconds_left=1e-4)
    with pytest.raises(EditRejected, match="loop.time_budget leaves"):
        tight.edit("epochs: 40", "trainer", PIPELINE)  # the budget left is the tighter limit
    _, pf = validator(round_cost=RoundCost(500, 900, "loop.round_timeout=900")).edit("epochs: 2", "trainer", PIPELINE)
    assert 0 < pf.round_s < 900 and pf.augment_ms > 0 and pf.step_ms > 0


def test_a_hand_edit_that_breaks_the_check_is_rejected_not_raised():
    edit = validator().hand("trainer: " + "{a: " * 3000 + "}" * 3000, [], PIPELINE, None)
    assert edit.pipeline is None and edit.rejected[0].kind == "too_deep"


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def deep(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


ENGINEER_REPLIES = [  # what a misbehaving model sends, round by round (analyst: the group of each)
    ("augment", {"text": '{"rationale": "x", "config": {"train_transforms": [' + deep(5000) + "]}}"}, "not_json"),
    ("trainer", {"text": '{"rationale": "x", "config": {"lr": ' + "9" * 12000 + "}}"}, "not_json"),
    ("model", {"text": '{"rationale": "x", "config": {"name": "resnet18", "kwargs": ' + deep(800) + "}}"},
     "too_deep"),
    ("augment", {"json": {"rationale": "x", "config": {**ARCHITECT["augment"], "train_transforms": [
        {"name": "MedianBlur", "blur_limit": [300001, 300001], "p": 1.0}]}}}, "too_slow"),
    ("augment", {"json": {"rationale": "x", "config": {**ARCHITECT["augment"], "train_transforms": [
        {"name": "CoarseDropout", "num_holes_range": [1000000, 1000000], "p": 1.0}]}}}, "too_slow"),
]


def test_the_loop_against_a_server_sending_hostile_replies_finishes_every_round(tmp_path, compose_loop, keys):
    script = Script(architect=[{"json": ARCHITECT}], analyst=[{"json": {"group": g, "feedback": "x"}}
                                                              for g, _, _ in ENGINEER_REPLIES],
                    engineer=[reply for _, reply, _ in ENGINEER_REPLIES])
    with ScriptedLLMServer(script) as server:
        cfg = compose_loop(f"loop.rounds={len(ENGINEER_REPLIES)}", "llm=openai", f"llm.base_url={url_for(server, 'openai')}",
                           "llm.cache=false", "loop.max_repairs=0", f"loop.validate_timeout={TIMEOUT}")
        out = io.StringIO()
        start = time.perf_counter()
        Refinement(cfg, tmp_path / "run", console=Console(file=out, width=300)).run()
    ds = decisions(tmp_path / "run")
    assert [d["round"] for d in ds] == list(range(len(ENGINEER_REPLIES) + 1)) and ds[0]["decision"] == "kept"
    errors = {e["round"]: e["kind"] for e in Journal(tmp_path / "run" / "journal.jsonl").events()
              if e["event"] == "validation_error"}
    assert errors == {r: kind for r, (_, _, kind) in enumerate(ENGINEER_REPLIES, start=1)}
    assert all(d["decision"] == "invalid" for d in ds[1:])
    assert "Traceback" not in out.getvalue() and (tmp_path / "run" / "report.md").is_file()
    assert time.perf_counter() - start < 300
    assert any(e["event"] == "end" for e in Journal(tmp_path / "run" / "journal.jsonl").events())
