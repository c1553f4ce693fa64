"""Every check of an agent's or a person's edit, in a child process bounded in time and memory.

Agent output is untrusted, and plain YAML under the length limit is enough to hurt: a transform
parameter can make one check run for minutes, a reply nested thousands of levels deep overflows
the parser, a literal of thousands of digits raises in the conversion, a model's kwargs can ask
for more memory than the machine has. The loop's own process never parses or builds such values:
`Validator` hands the text to a child of the forkserver the rounds use
(`pipeline.process.call_bounded`) under `loop.validate_timeout` seconds and `loop.validate_memory_gb`,
and whatever ends that child other than a value (an exception of any type, the timeout, a kill)
comes back as an EditRejected whose message the author can act on. What comes back has passed the
schema, so it is small and plain.
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from omegaconf import OmegaConf

from improve.config.schema import EDITABLE_GROUPS
from improve.pipeline.process import ChildFailed, call_bounded
from improve.refine.edits import EditRejected, check_agent_limits, check_group, load_plain_yaml, parse_edit
from improve.refine.preflight import (BYTES_PER_TRAINED_PARAM, COST_IMAGES, Preflight, RoundCost, memory_param_limit,
                                      preflight, validate_edit)

Pipeline = Dict[str, Dict[str, Any]]


@dataclass
class HandEditRejected:
    """A person's edit that failed validation; the incumbent has been restored."""

    source: str  # incumbent/config.yaml, or the resume overrides
    kind: str
    error: str


@dataclass
class HandEdit:
    """What a person's edit amounts to: the edited pipeline (None when nothing valid is left), where it came from,
    and what was rejected."""

    pipeline: Optional[Pipeline]
    sources: List[str]
    rejected: List[HandEditRejected]


@dataclass
class Validator:
    """Validates edits for one run: the dataset's shape, the constraints, the loop's limits and the bounds."""

    num_classes: int
    channels: int
    constraints: Dict[str, Any]
    timeout: float  # loop.validate_timeout: seconds one check may take
    memory_gb: Optional[float] = None  # loop.validate_memory_gb: address space one check may add; None: no cap
    max_epochs: Optional[int] = None  # loop.max_epochs: the most an agent may give a round
    round_cost: Optional[RoundCost] = None  # what a round may cost; None: no estimate
    seconds_left: Optional[float] = None  # what loop.time_budget leaves, set by the loop before each round

    @classmethod
    def of(cls, loop, profile: Dict[str, Any], constraints: Dict[str, Any], step_counts: bool,
           loaders: int) -> "Validator":
        """The validator of a refinement run: `loop` settings, the dataset profile, where rounds train."""
        cost = RoundCost(profile["train_images"], loop.round_timeout, f"loop.round_timeout={loop.round_timeout:g}",
                         step_counts, loaders)
        memory = loop.validate_memory_gb
        return cls(profile["num_classes"], profile["channels"], constraints, loop.validate_timeout,
                   memory if memory else default_memory_gb(), loop.max_epochs, cost)

    @property
    def shape(self) -> Tuple[int, int]:
        return self.num_classes, self.channels

    def cost(self) -> Optional[RoundCost]:
        """The round's limit: loop.round_timeout, or what the time budget leaves when that is less."""
        cost = self.round_cost
        if cost is not None and self.seconds_left is not None and self.seconds_left < cost.limit_s:
            return RoundCost(cost.train_images, self.seconds_left,
                             f"the {self.seconds_left:,.0f} s loop.time_budget leaves", cost.step_counts, cost.loaders)
        return cost

    def edit(self, text: str, group: str, pipeline: Pipeline) -> Tuple[Pipeline, Preflight]:
        """One agent's reply for `group` on top of `pipeline`: (new pipeline, Preflight) or EditRejected."""
        return self._bounded(validate_edit, (text, group, pipeline, *self.shape, self.constraints, self.max_epochs,
                                             self.cost()), f"{group} edit")

    def first(self, texts: Dict[str, str], defaults: Pipeline, pinned: Dict[str, dict]) -> Tuple[Pipeline, Preflight]:
        """Round 0's pipeline from one reply per group, the user's pinned values on top: or EditRejected."""
        return self._bounded(_first, (texts, defaults, pinned, self.shape, self.constraints, self.max_epochs,
                                      self.cost()), "first pipeline")

    def pipeline(self, pipeline: Pipeline, what: str = "pipeline", cost: bool = True) -> Preflight:
        """Pre-flight of a whole pipeline that passed the schema (the defaults, a person's edit)."""
        return self._bounded(preflight, (pipeline, *self.shape, self.constraints, self.cost() if cost else None),
                             what)

    def hand(self, text: Optional[str], overrides: List[str], current: Pipeline,
             pending: Optional[Pipeline]) -> HandEdit:
        """A person's edit: `text` of incumbent/config.yaml when it changed, and resume overrides, on `current`."""
        try:
            return self._bounded(_hand, (text, list(overrides), current, pending), "hand edit")
        except EditRejected as err:  # the check itself failed: the whole edit is rejected
            return HandEdit(None, [], [HandEditRejected("incumbent/config.yaml" if text else "resume overrides",
                                                        err.kind, str(err))])

    def _bounded(self, func, args, what: str):
        memory = int(self.memory_gb * 2 ** 30) if self.memory_gb else None
        try:
            return call_bounded(func, args, self.timeout, memory, name=f"improve check ({what})")
        except ChildFailed as failure:
            raise rejection(failure, what, self.timeout, self.memory_gb) from None


def default_memory_gb() -> float:
    """loop.validate_memory_gb when unset: what pre-flight lets a model's training state take on this machine."""
    return round(memory_param_limit() * BYTES_PER_TRAINED_PARAM / 2 ** 30, 1)


def rejection(failure: ChildFailed, what: str, timeout: float, memory_gb: Optional[float]) -> EditRejected:
    """The EditRejected for a check that ended without a value, in words its author can act on."""
    if failure.reason == "raised" and failure.error_type == "EditRejected":
        return EditRejected(failure.kind or "preflight", str(failure))
    if failure.reason == "timeout":
        return EditRejected("too_slow", f"the {what} took over {timeout:g} s to check on {COST_IMAGES} images "
                                        f"(loop.validate_timeout): a parameter is too large (a kernel, a count, a "
                                        f"size); use smaller values")
    if failure.reason == "memory":
        return EditRejected("too_large", f"checking the {what} needed more than {memory_gb:g} GiB of memory "
                                         f"(loop.validate_memory_gb): a value is too large; use smaller values")
    if failure.reason == "killed":
        return EditRejected("crashed", f"checking the {what} crashed ({failure}): a value is too large or nested "
                                       f"too deeply; return a flat mapping of plain, small values")
    if failure.error_type == "RecursionError":
        return EditRejected("too_deep", f"the {what} is nested too deeply to read ({failure.error_type}); return "
                                        f"a flat mapping of plain values")
    return EditRejected("check_failed", f"checking the {what} raised {failure.error_type}: {failure}; change the "
                                        f"value it names")


# ---------------------------------------------------------------------------- run in the child
def _first(texts: Dict[str, str], defaults: Pipeline, pinned: Dict[str, dict], shape: Tuple[int, int],
           constraints: Dict[str, Any], max_epochs: Optional[int],
           cost: Optional[RoundCost]) -> Tuple[Pipeline, Preflight]:
    pipeline = {g: check_group(g, parse_edit(texts.get(g, ""), g), defaults[g]) for g in EDITABLE_GROUPS}
    for g in EDITABLE_GROUPS:
        check_agent_limits(g, pipeline[g], defaults[g], max_epochs)
    pipeline = {g: check_group(g, pinned[g], v) if g in pinned else v for g, v in pipeline.items()}
    return pipeline, preflight(pipeline, *shape, constraints, cost)


def _hand(text: Optional[str], overrides: List[str], current: Pipeline, pending: Optional[Pipeline]) -> HandEdit:
    edited, sources, rejected = None, [], []
    if text is not None:
        try:
            data = load_plain_yaml(text, "incumbent/config.yaml",
                                   "keep it a YAML mapping of augment, model and trainer") or {}
            if not isinstance(data, dict) or set(data) - set(EDITABLE_GROUPS):
                raise EditRejected("other_group", f"incumbent/config.yaml may hold only {list(EDITABLE_GROUPS)}")
            if not (pending and data == pending):  # else our own promotion, cut short by a kill before its decision
                edited = {g: check_group(g, data.get(g) or {}, current[g]) for g in EDITABLE_GROUPS}
                sources.append("incumbent/config.yaml")
        except EditRejected as err:
            rejected.append(HandEditRejected("incumbent/config.yaml", err.kind, str(err)))
    if overrides:
        source = "resume overrides " + " ".join(overrides)
        base = edited or current
        try:
            dotted = OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides)))
            edited = {g: check_group(g, dotted.get(g) or {}, base[g]) for g in EDITABLE_GROUPS}
            sources.append(source)
        except ValueError as err:  # EditRejected, or a dotted key OmegaConf cannot read
            rejected.append(HandEditRejected(source, getattr(err, "kind", "wrong_type"), str(err)))
            edited = None
    return HandEdit(edited, sources, rejected)
