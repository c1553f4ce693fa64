"""`incumbent/`: the current best pipeline on disk, the file a person may edit between rounds.

  config.yaml   the pipeline (augment, model, trainer); a person's edit of it becomes a round of its own
  best.ckpt     its checkpoint
  state.json    round, val acc and the checksum of config.yaml as written here, written last

Every file is replaced atomically and state.json goes last, so after a kill `sync` can tell a torn
promotion from a person's edit and make the directory match the journal again.
"""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from improve.config.paths import round_checkpoint
from improve.config.schema import EDITABLE_GROUPS
from improve.files import atomic_copy, atomic_text, sha256, write_json
from improve.journal.events import Recovered
from improve.refine.edits import EditRejected
from improve.refine.proposals import Candidate
from improve.refine.runner import unreadable_checkpoint
from improve.refine.state import State
from improve.refine.validator import HandEditRejected, Validator


class IncumbentDir:
    """Owns `<run>/incumbent/`. Hand edits are checked by the run's validator (its dataset, constraints, bounds)."""

    def __init__(self, run_dir: Path, validator: Validator):
        self.dir = Path(run_dir) / "incumbent"
        self.run_dir = Path(run_dir)
        self.validator = validator

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

    def verify(self, incumbent: Optional[Dict[str, Any]]) -> Optional[Recovered]:
        """Make sure best.ckpt loads (a kill or a full disk can leave it cut short): else copy it again from its
        round. Returns what was found and done, or None when it was intact. ValueError when no copy is left."""
        if incumbent is None or not self.checkpoint.is_file():
            return None
        problem = unreadable_checkpoint(self.checkpoint)
        if problem is None:
            return None
        source = round_checkpoint(self.run_dir, incumbent["round"])
        if not source.is_file() or unreadable_checkpoint(source) is not None:
            raise ValueError(f"incumbent/best.ckpt is unreadable ({problem}) and so is {source}: the incumbent's "
                             f"weights are lost; retrain round {incumbent['round']} with python -m improve.train "
                             f"--config-path={source.parent.parent.resolve()} --config-name=config, or start a new run")
        atomic_copy(source, self.checkpoint)
        return Recovered(round=incumbent["round"], reason=f"incumbent/best.ckpt is unreadable ({problem})",
                         action=f"restored from {source.relative_to(self.run_dir)}")

    def edited_text(self) -> Optional[str]:
        """config.yaml's text when a person changed it since it was written, else None."""
        state_file = self.dir / "state.json"
        if not (state_file.is_file() and self.config.is_file()):
            return None
        written = json.loads(state_file.read_text()).get("config_sha")
        if not written or self.config_sha() == written:
            return None
        return self.config.read_text(errors="replace")

    def hand_edit(self, state: State, overrides: List[str]) -> Tuple[Optional[Candidate], List[HandEditRejected]]:
        """A person's edit of config.yaml and/or pipeline overrides given with resume, as a round's candidate.

        Checked by the validator in its bounded child. A rejected edit is reported and the incumbent restored;
        what is returned is the edit still standing."""
        if state.incumbent is None:
            return None, []
        current = state.incumbent["pipeline"]
        pending = state.proposals.get(state.next_round)
        edit = self.validator.hand(self.edited_text(), overrides, current, pending and pending["pipeline"])
        rejected = list(edit.rejected)
        changed = [g for g in EDITABLE_GROUPS if edit.pipeline is not None and edit.pipeline[g] != current[g]]
        candidate = None
        if changed:
            try:
                pf = self.validator.pipeline(edit.pipeline, "hand edit")
                candidate = Candidate(edit.pipeline, "human", "+".join(changed),
                                      f"edited by hand ({', '.join(edit.sources)})", pf)
            except EditRejected as err:
                rejected.append(HandEditRejected(", ".join(edit.sources), err.kind, str(err)))
        if rejected:
            self.sync(state.incumbent, force=True)
        return candidate, rejected
