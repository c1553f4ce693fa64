"""The state of a refinement run, replayed from its journal's events: the source of truth for resume.

The events are plain dicts as `journal.jsonl` holds them (`improve/journal/events.py` is their schema), so a
journal written by an earlier version replays the same way.
"""
from typing import Any, Dict, List, Optional

from improve.config.diff import fingerprint
from improve.journal.log import Journal
from improve.pipeline.fill import filled_pipeline


SPENT = ("kept", "reverted", "pruned", "failed", "confirmations", "between_rounds", "end_of_run")  # where a run's
# seconds went: its rounds' (loop.time_budget counts those), the loop's own work between them, the end of run


class State:
    """Everything a refinement run knows, replayed from its journal's events (the source of truth for resume)."""

    def __init__(self, events: List[Dict[str, Any]]):
        self.proposals: Dict[int, Dict[str, Any]] = {}
        self.decisions: Dict[int, Dict[str, Any]] = {}
        self.incumbent: Optional[Dict[str, Any]] = None  # {"round", "pipeline", "val_acc", "summary"} of the last kept
        self.profile: Optional[Dict[str, Any]] = None
        self.final: Optional[Dict[str, Any]] = None
        self.pinned: Dict[str, Dict[str, Any]] = {}  # the user's command-line pipeline values for round 0
        self.llm_trouble: List[Dict[str, Any]] = []  # failed or unusable LLM calls, and fallbacks to the expert
        self.extra_runs = 0  # confirmation and noise-floor training runs (they count against loop.rounds)
        self.noise_floor: Optional[Dict[str, Any]] = None
        self.folds = 0  # loop.folds: rounds scored by k-fold cross-validation when >= 2
        self.candidates: Dict[int, Dict[int, Dict[str, Any]]] = {}  # round -> candidate -> its candidate_proposal
        self.candidate_results: Dict[int, Dict[int, Dict[str, Any]]] = {}  # round -> candidate -> its result
        self.confirmations: List[Dict[str, Any]] = []  # each extra seed run: round, of_round, seed, val_acc, why
        self.confirmation_cuts: List[Dict[str, Any]] = []  # confirmations the budget cut short
        self.recovered: List[Dict[str, Any]] = []  # unreadable files found on resume, and what was done instead
        self.warm_start_skips: List[Dict[str, Any]] = []  # rounds that asked for warm_start and trained from scratch
        self.diagnosed: Dict[int, Dict[str, Any]] = {}  # incumbent round -> its `diagnosed` event
        self.sessions: List[float] = []  # when each session of the run began (its start, then each resume)
        for e in events:
            kind = e["event"]
            if kind in ("start", "resume"):
                self.sessions.append(e["time"])
            if kind == "start":
                self.pinned = e.get("pinned") or {}
                self.folds = ((e.get("config") or {}).get("loop") or {}).get("folds", 0)
            elif kind == "profile":
                self.profile = e["profile"]
            elif kind == "proposal":
                self.proposals[e["round"]] = e
            elif kind == "candidate_proposal":
                self.candidates.setdefault(e["round"], {})[e["candidate"]] = e
            elif kind == "candidate_result":
                self.candidate_results.setdefault(e["round"], {})[e["candidate"]] = e
            elif kind == "decision":
                self.decisions[e["round"]] = e
                if e["decision"] == "kept":
                    pipeline = self.proposals[e["round"]]["pipeline"]
                    if e.get("filled"):  # round 0 under loop.fill_below: the epochs it trained
                        pipeline = filled_pipeline(pipeline, e["filled"])
                    self.incumbent = {"round": e["round"], "pipeline": pipeline,
                                      "val_acc": e["val_acc"], "summary": e["summary"]}
            elif kind == "end":
                self.final = e
            elif kind == "confirmation":
                self.extra_runs += 1
                self.confirmations.append(e)
            elif kind == "confirmation_cut":
                self.confirmation_cuts.append(e)
            elif kind == "noise_floor":
                self.noise_floor = e
            elif kind == "warm_start_skipped":
                self.warm_start_skips.append(e)
            elif kind == "recovered":
                self.recovered.append(e)
            elif kind == "diagnosed":
                self.diagnosed[e["of_round"]] = e
            if kind == "llm_fallback" or (kind == "llm_call" and e.get("error")):
                self.llm_trouble.append(e)

    @classmethod
    def of(cls, journal: Journal) -> "State":
        return cls(journal.events())

    @property
    def next_round(self) -> int:
        return max(self.decisions, default=-1) + 1

    @property
    def filled(self) -> Optional[Dict[str, Any]]:
        """Round 0's `filled` (loop.fill_below: it took a budget too small for another round); None otherwise."""
        return (self.decisions.get(0) or {}).get("filled")

    @property
    def incumbent_val(self) -> Optional[float]:
        return self.incumbent["val_acc"] if self.incumbent else None

    def findings(self) -> List[Dict[str, Any]]:
        """Every structural finding so far, the latest of each rule: what the errors taught stays known after the
        incumbent that showed it (a flip found to destroy the label is not added back later)."""
        latest: Dict[str, Dict[str, Any]] = {}
        for r in sorted(self.diagnosed):
            for f in self.diagnosed[r]["findings"]:
                latest[f["rule"]] = {**f, "found_at": r}
        return list(latest.values())

    def tried(self, group: str) -> List[Dict[str, Any]]:
        """Every value of `group` proposed so far, decided or not, candidates of a round included."""
        chosen = [p["pipeline"][group] for p in self.proposals.values()]
        return chosen + [c["pipeline"][group] for cs in self.candidates.values() for c in cs.values()
                         if c["pipeline"][group] not in chosen]

    def tried_pipelines(self) -> Dict[str, int]:
        """Fingerprint of each decided pipeline -> its round."""
        return {fingerprint(p["pipeline"]): r for r, p in self.proposals.items() if r in self.decisions}

    def training_seconds(self) -> float:
        """Seconds of every decided round (training, checks, confirmation runs): what loop.time_budget counts."""
        return sum(d.get("seconds") or 0.0 for d in self.decisions.values())

    def between_rounds(self) -> float:
        """The loop's own seconds before each decided round: from the session's start or the previous decision to
        the round's start (the dataset profile, the agents' calls and repairs, the diagnoses)."""
        total, last = 0.0, None
        for d in sorted(self.decisions.values(), key=lambda d: d["time"]):
            began = d["time"] - (d.get("seconds") or 0.0)
            since = max([t for t in self.sessions if t <= d["time"]] + ([last] if last is not None else []),
                        default=began)
            total += max(began - since, 0.0)
            last = d["time"]
        return total

    def spent(self, end_time: Optional[float] = None) -> Dict[str, float]:
        """Where the run's seconds went (SPENT): the training of rounds kept, reverted, pruned and failed, the
        confirmation and noise-floor runs, the loop's own work between rounds, and the end of run (soup, ensemble,
        test, exports: from the last decision to `end`, or to `end_time` while it is being written)."""
        confirm: Dict[int, float] = {}
        for e in self.confirmations:
            confirm[e["round"]] = confirm.get(e["round"], 0.0) + (e.get("seconds") or 0.0)
        out = dict.fromkeys(SPENT, 0.0)
        out["confirmations"] = sum(confirm.values())
        for d in self.decisions.values():
            if d["decision"] in SPENT:
                out[d["decision"]] += max((d.get("seconds") or 0.0) - confirm.get(d["round"], 0.0), 0.0)
        out["between_rounds"] = self.between_rounds()
        end = end_time if end_time is not None else (self.final or {}).get("time")
        if self.decisions and end is not None:
            out["end_of_run"] = max(end - max(d["time"] for d in self.decisions.values()), 0.0)
        return {k: round(v, 1) for k, v in out.items()}

    def summaries(self) -> List[Dict[str, Any]]:
        out = []
        for r in sorted(self.decisions):
            d, p = self.decisions[r], self.proposals.get(r, {})
            out.append({"round": r, "author": d["author"], "group": d["group"], "changes": d["changes"],
                        "rationale": (p.get("rationale") or "")[:300], "val_acc": d["val_acc"], "delta": d["delta"],
                        "decision": d["decision"], "summary": d["summary"], "seconds": d["seconds"]})
        return out


def llm_usage(events: List[Dict[str, Any]], r: int) -> Dict[str, Any]:
    """Round r's LLM calls: how many, their tokens and cost, failures and fallbacks to the offline expert."""
    events = [e for e in events if e.get("round") == r]
    calls = [e for e in events if e["event"] == "llm_call"]
    return {"calls": len(calls), "input_tokens": sum(e["input_tokens"] for e in calls),
            "output_tokens": sum(e["output_tokens"] for e in calls),
            "cost_usd": round(sum(e["cost_usd"] for e in calls), 6),
            "failed": sum(bool(e.get("error")) for e in calls),
            "fallbacks": sum(e["event"] == "llm_fallback" for e in events)}
