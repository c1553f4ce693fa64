"""The roles played by an LLM: prompts from text files, structured replies, the offline expert as fallback.

Replies are untrusted: the loop validates every group the LLM returns (`improve.edits`). When
the API stays unreachable after the client's retries, `llm.fallback=heuristic` hands the
call to the offline expert; `llm.fallback=skip` skips the round.
"""
import json
import re
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Any, Callable, Dict, List, Optional

import yaml

from improve.agents.base import DIAGNOSES, FALLBACK, Choice, Context, Edit, FirstPipeline
from improve.agents.heuristic import HeuristicAgent
from improve.config.fields import group_json_schema
from improve.config.schema import EDITABLE_GROUPS
from improve.journal.events import LLMFallback
from improve.llm import BudgetExhausted, LLMClient, LLMUnavailable, ReplyError

PROMPTS = Path(__file__).parent / "prompts"
ROLE_NAMES = {"augment": "Data Engineer", "model": "Model Engineer", "trainer": "Training Engineer"}
HISTORY_CHARS = 6000  # the history block is cut to this size, oldest rounds first


class RoundSkipped(RuntimeError):
    """The API is unreachable and llm.fallback=skip: this round trains nothing."""


@lru_cache(maxsize=None)
def prompt(name: str) -> str:
    return (PROMPTS / f"{name}.md").read_text()


def _data(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=1, default=str)
    return text.replace("</data>", "</ data>")  # a description cannot close its own data block


def render(name: str, ctx: Context, **extra: Any) -> str:
    profile = {k: v for k, v in ctx.profile.items() if k not in ("description", "constraints",
                                                                  "pretrained_reachable")}
    values = {"team": prompt("team"), "expertise": prompt("expertise"), "profile": _data(profile),
              "description": _data(ctx.profile.get("description") or "(none given)"),
              "constraints": json.dumps(ctx.profile.get("constraints") or {}) or "none",
              "pretrained": "yes" if ctx.profile.get("pretrained_reachable") else
              "no (set pretrained: false; only from-scratch training works here)",
              "max_epochs": ctx.max_epochs, "budget": budget_text(ctx), "findings": _data(findings_text(ctx)),
              "error": "", **extra}
    return Template(prompt(name)).safe_substitute(values)


def budget_text(ctx: Context) -> str:
    """What the budget leaves, in words, with the incumbent round's training time to plan by."""
    seconds = (ctx.incumbent.get("summary") or {}).get("seconds")
    parts = [f"{ctx.runs_left} training runs left (this round included)" if ctx.runs_left is not None else
             "no limit on rounds known",
             f"{ctx.seconds_left:.0f} s of loop.time_budget left" if ctx.seconds_left is not None else
             "no time budget", f"a round is killed after {ctx.round_timeout:.0f} s"]
    if ctx.reserved_s:
        parts.append(f"{ctx.reserved_s:.0f} s more are kept for the final phase (it continues the incumbent from its "
                     f"weights with one long schedule): plan this round within the time above")
    if seconds:
        parts.append(f"the incumbent's training took {seconds:.0f} s (time grows with epochs, pixels and model size)")
    return "; ".join(parts)


def findings_text(ctx: Context) -> str:
    """The structural findings from the errors (refine/diagnoses.py), one line each, or that there are none."""
    if not ctx.findings:
        return "none (no confused class pair had a structural cause, or the errors were not read yet)"
    return "\n".join(f"- {f['rule']} ({'to act on' if f.get('actionable') else 'already acted on; keep it so'}): "
                     f"{f['edit']}. Evidence: {f['evidence'][:400]}" for f in ctx.findings)


def _errors_line(errors: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """A round's confusion summary, compact: its three most confused pairs and three worst classes."""
    if not errors:
        return None
    return {"errors": errors.get("errors"), "of": errors.get("images"),
            "top_pairs": [f"{p['a']}<->{p['b']}: {p['a_as_b']}+{p['b_as_a']} of {p['images']}"
                          for p in errors.get("pairs", [])[:3]],
            "worst": [f"{w['class']} {w['acc']:.2f}" for w in errors.get("worst", [])[:3]]}


def summarise_history(ctx: Context) -> str:
    """Recent rounds in full, older ones as counts: the size stays bounded however long the run."""
    rows = [{k: r.get(k) for k in ("round", "author", "group", "changes", "val_acc", "delta", "decision")}
            | {"curve": {k: v for k, v in (r.get("summary") or {}).items() if k not in ("val_acc_curve", "errors")},
               "errors": _errors_line((r.get("summary") or {}).get("errors"))}
            for r in ctx.rounds]
    earlier = max(0, ctx.round - 1 - len(rows))
    text = json.dumps(rows, default=str)
    while len(text) > HISTORY_CHARS and rows:
        rows, earlier = rows[1:], earlier + 1
        text = json.dumps(rows, default=str)
    head = f"{earlier} earlier round(s) not shown.\n" if earlier else ""
    return head + json.dumps(rows, indent=0, default=str)


class LLMAgent:
    """Architect, Analyst and Engineers on one LLM client."""

    def __init__(self, client: LLMClient, fallback: str = "auto"):
        self.client, self.fallback = client, fallback
        self.name = f"{client.provider}:{client.model}"
        self.expert = HeuristicAgent()
        self.journal = None
        self.notify: Callable[[str, str], None] = lambda text, style: None

    def bind(self, run_dir: Path, journal, notify: Optional[Callable[[str, str], None]] = None) -> None:
        previous = next((e["totals"] for e in reversed(journal.events()) if e["event"] == "llm_call"), None)
        self.client.bind(run_dir, journal, previous)
        self.journal = journal
        if notify is not None:
            self.notify = notify

    def _ask(self, role: str, ctx: Context, text: str, name: str, schema: Dict[str, Any], fallback):
        """The reply's JSON object; when the call fails, the offline expert's answer (marked as such) or RoundSkipped.
        ReplyError (an unusable reply) goes to the caller."""
        system = prompt("team")
        try:
            return self.client.call(role, ctx.round, system, text, name, schema).data
        except LLMUnavailable as err:
            if self.journal is not None:
                self.journal.write(LLMFallback(round=ctx.round, role=role, error=str(err), permanent=err.permanent,
                                               fallback=self.fallback))
            if self.fallback == "skip":
                self.notify(f"round {ctx.round}: the {role} call failed: {err}; the round is skipped "
                            f"(llm.fallback=skip)", "red")
                raise RoundSkipped(str(err)) from None
            self.notify(f"round {ctx.round}: the {role} call failed: {err}; the offline expert answers instead",
                        "yellow")
            answer = fallback(str(err))
            answer.author = FALLBACK
            return answer

    # ------------------------------------------------------------------ roles
    def architect(self, ctx: Context, defaults: Dict[str, Dict[str, Any]],
                  error: Optional[str] = None) -> FirstPipeline:
        schema = {"type": "object", "required": ["rationale", *EDITABLE_GROUPS],
                  "properties": {"rationale": {"type": "string"},
                                 **{g: group_json_schema(g) for g in EDITABLE_GROUPS}}}
        text = render("architect", ctx, schemas=json.dumps({g: group_json_schema(g) for g in EDITABLE_GROUPS}),
                      error=_repair(error))
        try:
            data = self._ask("architect", ctx, text, "propose_pipeline", schema,
                             lambda why: self.expert.architect(ctx, defaults))
        except ReplyError as err:
            return FirstPipeline(pipeline={}, rationale="", error=str(err), error_kind=err.kind)
        if isinstance(data, FirstPipeline):
            return data
        return FirstPipeline(pipeline={g: _yaml(data.get(g)) for g in EDITABLE_GROUPS},
                        rationale=str(data.get("rationale", "")))

    def init_group(self, group: str, ctx: Context, current: Dict[str, Any]) -> Edit:
        return self.engineer(Choice(group, "Write the first version of this group from the dataset profile alone."),
                             ctx, current, [])

    def analyst(self, ctx: Context) -> Choice:
        schema = {"type": "object", "required": ["group", "feedback"],
                  "properties": {"group": {"type": "string", "enum": list(EDITABLE_GROUPS)},
                                 "diagnosis": {"type": "string", "enum": list(DIAGNOSES)},
                                 "feedback": {"type": "string"}}}
        incumbent = {"round": ctx.incumbent.get("round"), "val_acc": ctx.incumbent.get("val_acc"),
                     "pipeline": ctx.incumbent.get("pipeline"), "curve": ctx.incumbent.get("summary")}
        text = render("analyst", ctx, incumbent=_data(incumbent), history=_data(summarise_history(ctx)))
        try:
            data = self._ask("analyst", ctx, text, "choose_group", schema, lambda why: self.expert.analyst(ctx))
        except ReplyError as err:
            data = _salvage_choice(err)
            if data is None:
                self.notify(f"round {ctx.round}: the analyst's reply was unusable ({err.kind}: {err}); the offline "
                            f"expert picks the group", "yellow")
            else:
                self.notify(f"round {ctx.round}: the analyst's reply was {err.kind}; its group "
                            f"{data['group']!r} is used", "yellow")
        if isinstance(data, Choice):
            return data
        if not isinstance(data, dict) or data.get("group") not in EDITABLE_GROUPS:
            choice = self.expert.analyst(ctx)  # an unusable pick: the offline expert decides this one
            got = data.get("group") if isinstance(data, dict) else None
            return Choice(choice.group, f"{choice.feedback} (the analyst's reply named no editable group: {got!r})",
                          choice.diagnosis, author=FALLBACK)
        diagnosis = data.get("diagnosis")
        if diagnosis not in DIAGNOSES:  # left out or unknown: what the incumbent's curves say
            diagnosis = (ctx.incumbent.get("summary") or {}).get("diagnosis")
        return Choice(data["group"], str(data.get("feedback", "")), diagnosis if diagnosis in DIAGNOSES else "ok")

    def engineer(self, choice: Choice, ctx: Context, current: Dict[str, Any], tried: List[Dict[str, Any]],
                 error: Optional[str] = None) -> Edit:
        group = choice.group
        schema = {"type": "object", "required": ["rationale", "config"],
                  "properties": {"rationale": {"type": "string"}, "config": group_json_schema(group)}}
        text = render("engineer", ctx, role=ROLE_NAMES[group], group=group, feedback=_data(choice.feedback),
                      incumbent=_data(ctx.incumbent.get("pipeline")), current=_yaml(current),
                      tried=_data(tried[-10:]), schema=json.dumps(group_json_schema(group)), error=_repair(error))
        try:
            data = self._ask("engineer", ctx, text, "edit_group", schema,
                             lambda why: self.expert.engineer(choice, ctx, current, tried, error))
        except ReplyError as err:
            return Edit(yaml="", rationale="", error=str(err), error_kind=err.kind)
        if isinstance(data, Edit):
            return data
        config = data.get("config")
        if not isinstance(config, dict):
            return Edit(yaml="", rationale="", error=f"the reply has no 'config' object for the '{group}' group")
        try:
            text = _yaml(config)
        except (RecursionError, ValueError, yaml.YAMLError):  # parsed, but too deep or odd to write back out
            return Edit(yaml="", rationale="", error=f"the reply's 'config' for the '{group}' group is nested too "
                                                     f"deeply; return a flat mapping of plain values",
                        error_kind="too_deep")
        return Edit(yaml=text, rationale=str(data.get("rationale", "")))


def _salvage_choice(err: ReplyError) -> Optional[Dict[str, str]]:
    """The fields a cut-off analyst reply got out before it stopped: its group (and feedback so far), if any."""
    if err.kind != "truncated":
        return None
    group = re.search(r'"group"\s*:\s*"(augment|model|trainer)"', err.text)
    if group is None:
        return None
    feedback = re.search(r'"feedback"\s*:\s*"((?:[^"\\]|\\.)*)', err.text)
    diagnosis = re.search(r'"diagnosis"\s*:\s*"(\w+)"', err.text)
    return {"group": group.group(1), "feedback": feedback.group(1) if feedback else "",
            "diagnosis": diagnosis.group(1) if diagnosis else None}


def _yaml(value: Any) -> str:
    if value is None:
        return ""
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=None)


def _repair(error: Optional[str]) -> str:
    if not error:
        return ""
    return f"Your previous answer was rejected by the validator:\n<data>\n{_data(error)}\n</data>\nFix exactly that.\n"


__all__ = ["LLMAgent", "RoundSkipped", "BudgetExhausted", "summarise_history"]
