"""What a real model does wrong, replayed through the real SDKs and the real loop: nothing crashes or hangs the run,
each problem gets its own message on the console, in the journal and in report.md, and resume goes on."""
import io
import logging

import pytest
from omegaconf import OmegaConf
from rich.console import Console

import improve.__main__  # noqa: F401  (registers the run_dir resolver)
from improve.agents import LLMAgent, make_agent
from improve.config.schema import LLMConfig
from improve.journal.log import Journal
from improve.llm import LLMUnavailable, make_client
from improve.refine.loop import Refinement
from improve.refine.state import State

from .conftest import LOOP_FAST, decisions, run_cli
from .llm_server import ARCHITECT, Script, ScriptedLLMServer, ctx, llm_cfg, url_for

MODEL, TRAINER, AUGMENT = ARCHITECT["model"], ARCHITECT["trainer"], ARCHITECT["augment"]
# (analyst's group, engineer's reply, the kind of rejection or what happens) for each round after round 0
BAD_ROUNDS = [
    ("model", {"json": {"rationale": "x", "config": {**MODEL, "kwargs": {"act_layer": "nonexistent_act"}}}},
     "preflight"),
    ("model", {"json": {"rationale": "x", "config": {**MODEL, "name": "vit_base_patch16_224",
                                                      "kwargs": {"embed_dim": 8192, "depth": 16, "num_heads": 16}}}},
     "too_large"),
    ("trainer", {"json": {"rationale": "x", "config": {**TRAINER, "epochs": 1000}}}, "over_limit"),
    ("trainer", {"json": {"rationale": "x", "config": {**TRAINER, "optimizer": "opt"}}}, "unknown_optimizer"),
    ("augment", {"json": {"rationale": "x", "config": {**AUGMENT, "mean": [0.5, 0.5], "std": [0.2, 0.2]}}},
     "preflight"),
    ("trainer", {"json": {"rationale": "x", "config": {**TRAINER, "lr": 0.001, "min_lr": 0.01}}}, "out_of_range"),
    ("trainer", {"truncated": '{"rationale": "I will set every key", "config": {"kwargs": {"a": {"a": {"a": '},
     "truncated"),
    ("trainer", {"status": 400, "body": {"error": {"message": "the request exceeds the available context size",
                                                   "type": "invalid_request_error"}}}, "fallback"),
    ("trainer", {"status": 401, "body": {"error": {"message": "invalid api key", "type": "authentication_error"}}},
     "fallback"),
]


def bad_script():
    analyst = [{"json": {"group": g, "feedback": "scripted"}} for g, _, _ in BAD_ROUNDS]
    return Script(architect=[{"json": ARCHITECT}], analyst=analyst, engineer=[reply for _, reply, _ in BAD_ROUNDS])


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_every_bad_reply_is_survived_reported_on_its_own_and_resume_goes_on(provider, tmp_path, compose_loop, keys):
    run = tmp_path / "run"
    with ScriptedLLMServer(bad_script()) as server:
        def loop(rounds):
            cfg = compose_loop(f"loop.rounds={rounds}", f"llm={provider}", f"llm.base_url={url_for(server, provider)}",
                               "llm.cache=false", "loop.max_repairs=0")
            out = io.StringIO()
            Refinement(cfg, run, [f"loop.rounds={rounds}"], console=Console(file=out, width=300)).run()
            return out.getvalue()

        first = loop(5)  # stops after five of the bad rounds; resume plays the rest
        second = loop(len(BAD_ROUNDS))
        retried_400 = [r for r in server.requests if r["path"].endswith(("messages", "completions"))]
    ds = {d["round"]: d for d in decisions(run)}
    assert sorted(ds) == list(range(len(BAD_ROUNDS) + 1)) and ds[0]["decision"] == "kept"
    errors = {e["round"]: e for e in Journal(run / "journal.jsonl").events() if e["event"] == "validation_error"}
    for r, (_, _, expected) in enumerate(BAD_ROUNDS, start=1):
        if expected == "fallback":  # the call failed: the offline expert answered, and its edit trained
            assert ds[r]["author"] == "expert (fallback)" and ds[r]["decision"] in ("kept", "reverted"), r
        else:
            assert ds[r]["decision"] == "invalid" and errors[r]["kind"] == expected, (r, errors.get(r))
    console = first + second
    assert "llm.max_tokens=2000" in console and "cut off" in console  # truncation named as such
    assert "rejected the request (HTTP 400" in console and "context" in console and "unreachable" not in console
    assert "refused the API key (HTTP 401)" in console and "offline expert answers instead" in console
    assert "2 fallbacks" not in console and "1 fallbacks" in console  # counted on the round lines
    assert "resuming" in second and "Traceback" not in console
    assert len(retried_400) == 1 + 2 * len(BAD_ROUNDS)  # every call answered once: a 400 or 401 is not retried
    report = (run / "report.md").read_text()
    assert "## LLM calls that failed or fell back" in report and "HTTP 401" in report and "truncated" in report
    assert "| expert (fallback) |" in report


@pytest.mark.slow
def test_a_run_where_every_call_fails_exits_3_unless_the_user_chose_the_expert(tmp_path, cache_dir, keys):
    script = Script(architect=[{"status": 401}], analyst=[{"status": 401}], engineer=[{"status": 401}])
    with ScriptedLLMServer(script) as server:
        def cli(*extra):
            return run_cli("improve", "loop.rounds=1", *LOOP_FAST, "llm=openai", f"llm.base_url={server.openai_url}",
                           "llm.cache=false", f"paths.cache_dir={cache_dir}", *extra)

        refused = cli(f"hydra.run.dir={tmp_path / 'a'}")
        accepted = cli(f"hydra.run.dir={tmp_path / 'b'}", "llm.fallback=heuristic")
    assert refused.returncode == 3, refused.stderr[-2000:]
    assert "every one of the 3 LLM calls failed at the API" in refused.stdout and "llm=heuristic" in refused.stdout
    assert "HTTP Request" not in refused.stdout + refused.stderr  # httpx request logs stay off the console
    assert [d["decision"] for d in decisions(tmp_path / "a")][:1] == ["kept"]  # the run itself finished
    assert accepted.returncode == 0 and "warning: every one of the 3 LLM calls failed at" in accepted.stdout
    assert "Every one of the 3 LLM calls failed" in (tmp_path / "b" / "report.md").read_text()


def test_local_preset_needs_a_base_url_and_says_so(tmp_path):
    proc = run_cli("improve", "llm=local", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0 and "llm.base_url" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_a_truncated_analyst_reply_whose_group_parsed_is_used(provider, tmp_path, keys):
    script = Script(analyst=[{"truncated": '{"group": "model", "diagnosis": "underfit", "feedback": "a much bigg'}])
    with ScriptedLLMServer(script) as server:
        agent = LLMAgent(make_client(llm_cfg(provider, url_for(server, provider), cache=False), provider, None))
        lines = []
        agent.bind(tmp_path, Journal(tmp_path / "journal.jsonl"), lambda text, style=None: lines.append(text))
        choice = agent.analyst(ctx())
    assert choice.group == "model" and choice.diagnosis == "underfit" and choice.feedback == "a much bigg"
    assert "truncated" in lines[0] and "'model' is used" in lines[0]
    trouble = State.of(Journal(tmp_path / "journal.jsonl")).llm_trouble
    assert trouble[0]["error_kind"] == "truncated" and "llm.max_tokens" in trouble[0]["error"]


def test_an_echoed_prompt_is_an_unusable_reply_not_a_crash(tmp_path, keys):
    script = Script(engineer=[{"echo": True}])
    with ScriptedLLMServer(script) as server:
        agent = LLMAgent(make_client(llm_cfg("openai", server.openai_url, cache=False, structured=False),
                                     "openai", None))
        from improve.agents import Choice

        edit = agent.engineer(Choice("trainer", "x"), ctx(), TRAINER, [])
    assert edit.error and edit.error_kind == "not_json"


def test_unknown_prices_warn_when_a_budget_is_set_and_dated_names_are_priced(monkeypatch, keys):
    base = OmegaConf.merge(OmegaConf.structured(LLMConfig), {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"})
    _, notice = make_agent(OmegaConf.merge(base, {"model": "my-finetune", "budget_usd": 1.0}))
    assert "warning: llm.budget_usd=1.0 cannot count calls to ['my-finetune']" in notice and "llm.prices" in notice
    _, quiet = make_agent(OmegaConf.merge(base, {"model": "gpt-4o-2024-08-06", "budget_usd": 1.0}))
    assert "warning" not in quiet
    client = make_client(OmegaConf.merge(base, {"model": "claude-sonnet-4-5-20250929"}), "openai", None)
    assert client.cost("claude-sonnet-4-5-20250929", {"input_tokens": 1_000_000, "output_tokens": 0}) == 3.0
    assert logging.getLogger("httpx").level == logging.WARNING


def test_anthropic_cache_tokens_are_counted(tmp_path, keys):
    script = Script(analyst=[{"json": {"group": "model", "feedback": "x"},
                              "usage": {"cache_read_input_tokens": 1_000_000, "cache_creation_input_tokens": 0}}])
    with ScriptedLLMServer(script) as server:
        client = make_client(llm_cfg("anthropic", server.anthropic_url, cache=False, model="claude-sonnet-4-5"),
                             "anthropic", None)
        reply = client.call("analyst", 1, "s", "u", "choose_group", {"type": "object"})
    assert reply.cost_usd == pytest.approx(0.3, rel=0.01)  # 1M cache reads at 0.1 x $3


def test_reasoning_models_get_max_completion_tokens_and_no_temperature(keys):
    script = Script(analyst=[{"json": {"group": "model", "feedback": "x"}}])
    with ScriptedLLMServer(script) as server:
        make_client(llm_cfg("openai", server.openai_url, cache=False, model="o3-mini"), "openai",
                    None).call("analyst", 1, "s", "u", "choose_group", {"type": "object"})
        make_client(llm_cfg("openai", server.openai_url, cache=False, model="gpt-4o"), "openai",
                    None).call("analyst", 1, "s", "u", "choose_group", {"type": "object"})
    reasoning, chat = (r["body"] for r in server.requests)
    assert reasoning["max_completion_tokens"] == 2000 and "temperature" not in reasoning and "max_tokens" not in reasoning
    assert chat["max_tokens"] == 2000 and "temperature" in chat


def test_a_404_model_is_refused_for_good_and_named(keys):
    script = Script(analyst=[{"status": 404, "body": {"error": {"message": "model 'gpt-9' not found", "type": "x"}}}])
    with ScriptedLLMServer(script) as server:
        with pytest.raises(LLMUnavailable) as err:
            make_client(llm_cfg("openai", server.openai_url, cache=False), "openai",
                        None).call("analyst", 1, "s", "u", "choose_group", {"type": "object"})
    assert err.value.permanent and "llm.model" in str(err.value) and len(server.requests) == 1
