"""What a round trains and how it was judged before training: typed values passed between the loop's parts."""
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

from .history import pipeline_diff


@dataclass
class Preflight:
    """What pre-flight measured on a candidate before any training."""

    num_params: int
    latency_ms: float
    seconds: float


@dataclass
class Candidate:
    """One round's pipeline and where it came from. `pipeline` None: no valid edit after the repairs."""

    pipeline: Optional[Dict[str, Dict[str, Any]]]
    author: str  # architect, engineer, engineers, human, defaults
    group: str  # the group(s) it changes, joined by '+'
    rationale: str
    preflight: Optional[Preflight] = None
    repairs: int = 0  # rejected replies before this one

    @classmethod
    def from_proposal(cls, event: Dict[str, Any]) -> "Candidate":
        """The candidate a journaled `proposal` event describes (a resumed round trains it again)."""
        pf = event.get("preflight")
        return cls(event["pipeline"], event["author"], event["group"], event["rationale"],
                   Preflight(**pf) if pf else None, event.get("repairs", 0))

    def proposal(self, changes: List[str]) -> Dict[str, Any]:
        """The fields of its `proposal` event."""
        return {"author": self.author, "group": self.group, "pipeline": self.pipeline, "changes": changes,
                "rationale": self.rationale, "preflight": asdict(self.preflight) if self.preflight else None,
                "repairs": self.repairs}

    def changes(self, base: Optional[Dict[str, Dict[str, Any]]]) -> List[str]:
        """'group: change' lines against `base`; with no base, a one-line description of the whole pipeline."""
        if self.pipeline is None:
            return []
        if not base:
            m, a, t = self.pipeline["model"], self.pipeline["augment"], self.pipeline["trainer"]
            return [f"{m['name']}{' pretrained' if m['pretrained'] else ''} at {a['image_size']}px, "
                    f"{', '.join(x['name'] for x in a['train_transforms']) or 'no transforms'}, "
                    f"{t['epochs']} epochs of {t['optimizer']}"]
        return [f"{g}: {c}" for g, cs in pipeline_diff(base, self.pipeline).items() for c in cs]
