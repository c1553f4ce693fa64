"""`incumbent/`: the current best pipeline on disk, the file a person may edit between rounds.

  config.yaml   the pipeline (augment, model, trainer); a person's edit of it becomes a round of its own
  best.ckpt     its checkpoint
  state.json    round, val acc and the checksum of config.yaml as written here, written last

Every file is replaced atomically and state.json goes last, so after a kill `sync` can tell a torn
promotion from a person's edit and make the directory match the journal again.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml
from omegaconf import OmegaConf

from improve.config.paths import round_checkpoint
from improve.config.schema import EDITABLE_GROUPS
from improve.files import atomic_copy, atomic_text, sha256, write_json
from improve.refine.edits import EditRejected, check_group, load_plain_yaml
from improve.refine.preflight import preflight
from improve.refine.proposals import Candidate
from improve.refine.state import State


@dataclass
class HandEditRejected:
    """A person's edit that failed validation; the incumbent has been restored."""

    source: str  # incumbent/config.yaml, or the resume overrides
    kind: str
    error: str


class IncumbentDir:
    """Owns `<run>/incumbent/`. Validates hand edits against the dataset's classes, channels and the constraints."""

    def __init__(self, run_dir: Path, num_classes: int, channels: int, constraints: Dict[str, Any]):
        self.dir = Path(run_dir) / "incumbent"
        self.run_dir = Path(run_dir)
        self.num_classes, self.channels, self.constraints = num_classes, channels, constraints

    @property
    def config(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def checkpoint(self) -> Path:
        return self.dir / "best.ckpt"

    def config_sha(self) -> str:
        return sha256(self.config)

    def promote(self, r: int, pipeline: Dict[str, Dict], val: float) -> None:
        """Make round r's pipeline and checkpoint the incumbent: each file atomically, state.json last."""
        self.dir.mkdir(parents=True, exist_ok=True)
        ckpt = round_checkpoint(self.run_dir, r)
        if ckpt.is_file():
            atomic_copy(ckpt, self.checkpoint)
        header = (f"# The incumbent pipeline (round {r}, val acc {val:.4f}). Edit it between rounds: the loop\n"
                  f"# trains your edit as a round of its own (author: human) and judges it like any other.\n")
        atomic_text(self.config, header + yaml.safe_dump(pipeline, sort_keys=False))
        write_json(self.dir / "state.json", {"round": r, "val_acc": val, "config_sha": self.config_sha()})

    def sync(self, incumbent: Optional[Dict[str, Any]], force: bool = False) -> None:
        """Make the directory match the journal's incumbent (after a kill between its files, or to undo an edit)."""
        if incumbent is None:
            return
        state_file = self.dir / "state.json"
        current = json.loads(state_file.read_text()) if state_file.is_file() else {}
        if force or current.get("round") != incumbent["round"] or not self.checkpoint.is_file():
            self.promote(incumbent["round"], incumbent["pipeline"], incumbent["val_acc"])

    def edited_by_hand(self, state: State) -> Optional[Dict[str, Any]]:
        """The raw mapping of config.yaml when a person changed it since it was written, else None.

        Raises EditRejected when the file is not a YAML mapping of the editable groups."""
        state_file = self.dir / "state.json"
        if not (state_file.is_file() and self.config.is_file()):
            return None
        written = json.loads(state_file.read_text()).get("config_sha")
        if not written or self.config_sha() == written:
            return None
        data = load_plain_yaml(self.config.read_text(), "incumbent/config.yaml",
                               "keep it a YAML mapping of augment, model and trainer") or {}
        if not isinstance(data, dict) or set(data) - set(EDITABLE_GROUPS):
            raise EditRejected("other_group", f"incumbent/config.yaml may hold only {list(EDITABLE_GROUPS)}")
        pending = state.proposals.get(state.next_round)
        if pending and data == pending["pipeline"]:
            return None  # our own promotion, cut short by a kill before its decision: not a person's
        return data

    def hand_edit(self, state: State, overrides: List[str]) -> Tuple[Optional[Candidate], List[HandEditRejected]]:
        """A person's edit of config.yaml and/or pipeline overrides given with resume, as a round's candidate.

        A rejected edit is reported and the incumbent restored; what is returned is the edit still standing."""
        if state.incumbent is None:
            return None, []
        current = state.incumbent["pipeline"]
        edited, sources, rejected = None, [], []
        try:
            data = self.edited_by_hand(state)
            if data is not None:
                sources.append("incumbent/config.yaml")
                edited = {g: check_group(g, data.get(g) or {}, current[g]) for g in EDITABLE_GROUPS}
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
        changed = [g for g in EDITABLE_GROUPS if edited is not None and edited[g] != current[g]]
        candidate = None
        if changed:
            try:
                pf = preflight(edited, self.num_classes, self.channels, self.constraints)
                candidate = Candidate(edited, "human", "+".join(changed), f"edited by hand ({', '.join(sources)})",
                                      pf)
            except EditRejected as err:
                rejected.append(HandEditRejected(", ".join(sources), err.kind, str(err)))
        if rejected:
            self.sync(state.incumbent, force=True)
        return candidate, rejected
