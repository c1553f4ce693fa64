"""The roles the refinement loop talks to, whoever plays them (offline expert or an LLM).

Architect: dataset profile -> a complete first pipeline (unified initialisation), or one
group at a time (`init_group`, the no-UPI ablation). Analyst: summarised history -> ONE group
and why. Engineer: feedback + the group's current values + what was tried -> new YAML for
that group. Every YAML an agent returns is untrusted text, validated by `improve.edits`.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Protocol

FALLBACK = "expert (fallback)"  # the author of an answer the offline expert gave in an LLM's place
DIAGNOSES = ("overfit", "underfit", "unstable", "ok")  # what the curves of the incumbent say (history.curve_summary)


@dataclass
class FirstPipeline:
    """The Architect's first pipeline: group -> YAML text."""

    pipeline: Dict[str, str]
    rationale: str
    error: Optional[str] = None  # set when the reply could not be used at all (no tool call, invalid JSON)
    error_kind: str = "bad_reply"  # truncated, not_json, no_tool, empty
    author: Optional[str] = None  # who really answered when not the role's usual player, e.g. "expert (fallback)"


@dataclass
class Choice:
    """The Analyst's pick: which group to change this round, and what the engineer should aim for."""

    group: str
    feedback: str  # what the engineer should aim for, in words
    diagnosis: str = "ok"  # one of DIAGNOSES: the state of training the change should address
    author: Optional[str] = None  # who really answered when not the role's usual player, e.g. "expert (fallback)"
    finding: Optional[str] = None  # the structural finding (refine/diagnoses.py rule) the change acts on, if any
    ablate: Optional[str] = None  # an ablation: the augmentation to remove, to find out whether it holds the pipeline back


@dataclass
class Edit:
    """An Engineer's reply: the new YAML for one group, and why."""

    yaml: str
    rationale: str
    error: Optional[str] = None  # set when the reply could not be used at all (no tool call, invalid JSON)
    error_kind: str = "bad_reply"  # truncated, not_json, no_tool, empty
    author: Optional[str] = None  # who really answered when not the role's usual player, e.g. "expert (fallback)"


@dataclass
class Context:
    """What every role may read: the profile, the incumbent, the summarised rounds, the settings."""

    profile: Dict[str, Any]
    incumbent: Dict[str, Any]  # {"round", "pipeline", "val_acc", "summary"}
    rounds: List[Dict[str, Any]]  # summarised rounds, oldest first, bounded in size
    round: int
    seed: int = 0
    max_epochs: int = 50
    runs_left: Optional[int] = None  # training runs the budget allows, this round's included; None = not known
    seconds_left: Optional[float] = None  # seconds loop.time_budget leaves; None = no time budget
    round_timeout: float = 900.0  # seconds one round may take before it is killed
    findings: List[Dict[str, Any]] = field(default_factory=list)  # what the errors say (refine/diagnoses.py)
    reserved_s: Optional[float] = None  # seconds of loop.time_budget kept for the final phase (not in seconds_left)


class Agent(Protocol):
    """Everything the refinement loop calls on whoever plays the roles."""

    name: str

    def bind(self, run_dir: Path, journal, notify: Optional[Callable[[str, str], None]] = None) -> None:
        """Where this run's audit files and journal events go, and `notify(text, style)` prints one console line
        (called once per run, before any role)."""

    def architect(self, ctx: Context, defaults: Dict[str, Dict[str, Any]],
                  error: Optional[str] = None) -> FirstPipeline:
        ...

    def init_group(self, group: str, ctx: Context, current: Dict[str, Any]) -> Edit: ...

    def analyst(self, ctx: Context) -> Choice: ...

    def engineer(self, choice: Choice, ctx: Context, current: Dict[str, Any], tried: List[Dict[str, Any]],
                 error: Optional[str] = None) -> Edit:
        """New YAML for `choice.group`; `error` is the validator's message on the previous reply."""
