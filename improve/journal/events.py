"""The journal's event kinds as typed records: one dataclass per kind, the one schema of `journal.jsonl`.

Every event a run writes is one of these, written through `Journal.write`; each line of the file is the record's
fields plus `event` (its kind) and `time` (seconds since the epoch). Fields that are None are written as null, so
a kind's lines always carry the same keys. Readers (`refine.state.State`, the report, the benchmarks) read the
lines as plain dicts, so journals written before these records existed resume unchanged. `docs/journal.md`
lists every kind and field; a test keeps it in step with this module.
"""
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Dict, List, Optional

Pipeline = Dict[str, Dict[str, Any]]  # augment, model, trainer


def line_key(f) -> str:
    """The key a field has in the journal's line: its name, unless its metadata names another (a field may not be
    called `kind`, the class's own)."""
    return f.metadata.get("key", f.name)


@dataclass
class Event:
    """Base of every event kind: `kind` is what the `event` key of its line says."""

    kind: ClassVar[str] = ""

    def fields(self) -> Dict[str, Any]:
        """The line's fields in declaration order, `extra` (an open payload) merged in; an optional field (one whose
        default is None) is left out while it is None, as it does not apply to this event."""
        out = {line_key(f): getattr(self, f.name) for f in fields(self)
               if f.name != "extra" and not (f.default is None and getattr(self, f.name) is None)}
        out.update(getattr(self, "extra", None) or {})
        return out


# ---------------------------------------------------------------------------------------------- the run
@dataclass
class Start(Event):
    """A new run: its composed settings and the user's command-line pipeline values for round 0."""

    kind: ClassVar[str] = "start"
    config: Dict[str, Any]  # the run's whole composed config, resolved
    pinned: Dict[str, Any]  # pipeline values given on the command line (kept in round 0's pipeline)


@dataclass
class Resume(Event):
    """The run was resumed with these command-line overrides."""

    kind: ClassVar[str] = "resume"
    overrides: List[str]


@dataclass
class Profile(Event):
    """The dataset profile the agents start from (training part only; the test split is never in it)."""

    kind: ClassVar[str] = "profile"
    profile: Dict[str, Any]


@dataclass
class Recovered(Event):
    """A file an interruption (a kill, a full disk) left unreadable, found on resume, and what was done instead."""

    kind: ClassVar[str] = "recovered"
    round: Optional[int]  # the round it belongs to; None for the run's own files
    reason: str  # what was found: "rounds/02/metrics.json is unreadable (JSONDecodeError; ...)"
    action: str  # what resume did: "trained the round again", "restored from rounds/02"


@dataclass
class End(Event):
    """The end of the run: the final model's scores and what the end of run did (soup, ensemble, LLM totals)."""

    kind: ClassVar[str] = "end"
    rounds: int  # decided rounds
    incumbent_round: Optional[int]
    val_acc: Optional[float]  # the incumbent's validation accuracy
    test_acc: Optional[float]  # the final model on the test split, once
    extra: Dict[str, Any] = field(default_factory=dict)  # round0_val_acc, round0_test_acc, single_test_acc, ...


# ---------------------------------------------------------------------------------------------- proposing
@dataclass
class Analysis(Event):
    """The analyst's choice for round `round`: the group(s) to change and why."""

    kind: ClassVar[str] = "analysis"
    round: int
    group: str  # the group, or groups joined by '+'
    feedback: str
    diagnosis: Optional[str]
    author: str  # analyst, or expert (fallback)


@dataclass
class ValidationError(Event):
    """An edit (an agent's or a person's) rejected before any training, with the message sent back."""

    kind: ClassVar[str] = "validation_error"
    round: int
    author: str
    group: str
    attempt: int  # 0 the first reply, then each repair
    kind_of_error: str = field(metadata={"key": "kind"})  # parse, schema, range, name, preflight, unchanged, ...
    error: str
    reply: Optional[str] = None  # the start of the rejected reply, when there was one


@dataclass
class Proposal(Event):
    """The validated pipeline round `round` trains (after a kill before its decision, it is trained again)."""

    kind: ClassVar[str] = "proposal"
    round: int
    author: str  # architect, engineer, engineers, human, defaults
    group: str
    pipeline: Pipeline
    changes: List[str]  # 'group: change' lines against the incumbent
    rationale: str
    preflight: Optional[Dict[str, Any]]  # num_params, latency_ms, seconds
    repairs: int  # rejected replies before this one
    candidate: Optional[int] = None  # with loop.candidates: which candidate was picked
    of_candidates: Optional[int] = None  # ... of how many


@dataclass
class CandidateProposal(Event):
    """One of round `round`'s K candidates (loop.candidates)."""

    kind: ClassVar[str] = "candidate_proposal"
    round: int
    candidate: int
    of: int
    author: str
    group: str
    pipeline: Pipeline
    changes: List[str]
    rationale: str
    preflight: Optional[Dict[str, Any]]
    repairs: int


@dataclass
class CandidateResult(Event):
    """A candidate finished training (a finished one is never trained again)."""

    kind: ClassVar[str] = "candidate_result"
    round: int
    candidate: int
    val_acc: Optional[float]
    status: Optional[str]  # ok | failed
    error: Optional[str]
    stopped: Optional[Dict[str, Any]] = None  # successive halving stopped it: epoch, epochs


# ---------------------------------------------------------------------------------------------- deciding
@dataclass
class Decision(Event):
    """Round `round` is decided: kept, reverted, pruned (stopped early behind the incumbent's curve, reverted),
    failed, invalid (no valid edit) or skipped (no LLM). A round is done once this is in the journal."""

    kind: ClassVar[str] = "decision"
    round: int
    author: str
    group: str
    decision: str  # kept | reverted | pruned | failed | invalid | skipped
    val_acc: Optional[float]
    delta: Optional[float]  # candidate - incumbent validation accuracy
    changes: List[str]
    summary: Dict[str, Any]  # the curve summary the agents read (diagnosis, best epoch, gap, headroom, ...; errors: the confusion summary)
    seconds: float  # training seconds, confirmation runs included
    reason: Optional[str]  # why it failed, was pruned, invalid or skipped
    llm: Dict[str, Any]  # the round's LLM calls: count, tokens, cost, failures, fallbacks
    incumbent_val: Optional[float] = None
    rule: Optional[str] = None  # greedy | paired | confirm: the rule that decided
    n: Optional[int] = None  # paired evidence: validation images compared
    wins: Optional[int] = None  # candidate right where the incumbent was wrong
    losses: Optional[int] = None
    delta_interval: Optional[List[float]] = None  # 95% interval of delta
    p_value: Optional[float] = None  # one-sided exact McNemar
    config_sha: Optional[str] = None  # incumbent/config.yaml after the decision (a hand edit changes it)
    candidates: Optional[List[Dict[str, Any]]] = None  # with loop.candidates: how each did
    pruned: Optional[Dict[str, Any]] = None  # loop.prune stopped it: epoch, epochs, val_acc, reference, against, margin
    filled: Optional[Dict[str, Any]] = None  # loop.fill_below: round 0 took the small budget (planned, epochs, seconds,
    # epoch_s, outside_s; `kept` when its schedule could not be re-planned)

    @classmethod
    def untrained(cls, round: int, author: str, group: str, decision: str, reason: str,
                  llm: Dict[str, Any]) -> "Decision":
        """A round that trained nothing: `invalid` (no valid edit after the repairs) or `skipped` (no LLM)."""
        return cls(round=round, author=author, group=group, decision=decision, val_acc=None, delta=None, changes=[],
                   summary={"diagnosis": decision}, seconds=0.0, reason=reason, llm=llm)


@dataclass
class Confirmation(Event):
    """An extra seed run of a round's pipeline (loop.accept=confirm, loop.noise_floor)."""

    kind: ClassVar[str] = "confirmation"
    round: int  # the round being decided
    of_round: int  # whose pipeline was trained again
    seed: int
    val_acc: Optional[float]
    seconds: float
    why: str
    error: Optional[str]


@dataclass
class ConfirmationCut(Event):
    """A confirmation that the budget cut to fewer seeds."""

    kind: ClassVar[str] = "confirmation_cut"
    round: int
    seeds: int
    wanted: int
    runs_left: int


@dataclass
class NoiseFloor(Event):
    """Round 0's pipeline against itself with another seed: how far chance alone moves validation accuracy."""

    kind: ClassVar[str] = "noise_floor"
    round: int
    n: int
    wins: int
    losses: int
    delta: float
    delta_interval: List[float]
    p_value: float


@dataclass
class WarmStartSkipped(Event):
    """A round asked for trainer.warm_start and trains from scratch, with the reason."""

    kind: ClassVar[str] = "warm_start_skipped"
    round: int
    reason: str


@dataclass
class Diagnosed(Event):
    """What the incumbent's validation errors say about its pipeline (`refine/diagnoses.py`), found before round
    `round` is proposed: the structural findings (possibly none) the agents read from then on."""

    kind: ClassVar[str] = "diagnosed"
    round: int  # the round about to be proposed
    of_round: int  # the incumbent whose errors were read
    findings: List[Dict[str, Any]]  # each: rule, group, edit, evidence, pairs, share_of_errors, actionable, at_size
    errors: Optional[Dict[str, Any]] = None  # the incumbent's confusion summary (pipeline/confusion.py)


# ---------------------------------------------------------------------------------------------- agents
@dataclass
class LLMCall(Event):
    """One LLM request: tokens, cost, outcome (its request and reply are in rounds/NN/llm/)."""

    kind: ClassVar[str] = "llm_call"
    round: int
    role: str
    model: str
    cached: bool
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    totals: Dict[str, Any]  # the run's totals so far
    extra: Dict[str, Any] = field(default_factory=dict)  # seconds, error, error_kind, ... when set


@dataclass
class LLMFallback(Event):
    """A failed LLM call answered by the offline expert (or a skipped round)."""

    kind: ClassVar[str] = "llm_fallback"
    round: int
    role: str
    error: str
    permanent: bool  # a refusal (400, 401/403, 404) rather than a transient failure
    fallback: str  # llm.fallback


# ---------------------------------------------------------------------------------------------- end of run
@dataclass
class Average(Event):
    """The end-of-run weight soup (loop.average_top_k), judged against the incumbent alone."""

    kind: ClassVar[str] = "average"
    decision: str  # kept | reverted | skipped
    members: List[int]  # rounds in the soup (tried, when skipped)
    extra: Dict[str, Any] = field(default_factory=dict)  # tried, val_acc, single_val_acc, evidence, stopped, reason


@dataclass
class Ensemble(Event):
    """The end-of-run ensemble (loop.ensemble_top_k), judged against the incumbent alone."""

    kind: ClassVar[str] = "ensemble"
    decision: str  # kept | reverted | skipped
    extra: Dict[str, Any] = field(default_factory=dict)  # members, member_val_acc, val_acc, evidence, reason


KINDS: Dict[str, type] = {cls.kind: cls for cls in (
    Start, Resume, Profile, Recovered, Analysis, ValidationError, Proposal, CandidateProposal, CandidateResult, Decision,
    Confirmation, ConfirmationCut, NoiseFloor, WarmStartSkipped, Diagnosed, LLMCall, LLMFallback, Average, Ensemble, End)}


def of_fields(cls: type, data: Dict[str, Any]) -> Event:
    """The record of kind `cls` from a dict of its fields: the named fields, and the rest in `extra` when the kind
    takes an open payload. A missing required field or an unknown one is a ValueError naming it."""
    names = {f.name: f for f in fields(cls)}
    key_of = {line_key(f): f.name for f in fields(cls)}
    given = {key_of.get(k, k): v for k, v in data.items() if k not in ("event", "time")}
    unknown = {k: v for k, v in given.items() if k not in names}
    if unknown and "extra" not in names:
        raise ValueError(f"{cls.kind} event: unknown field(s) {sorted(unknown)}; its fields are "
                         f"{sorted(key_of)}")
    known = {k: v for k, v in given.items() if k in names}
    missing = [line_key(f) for n, f in names.items() if n not in known and n != "extra"
               and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ValueError(f"{cls.kind} event: missing field(s) {missing}")
    if unknown:
        known["extra"] = {**known.get("extra", {}), **unknown}
    return cls(**known)
