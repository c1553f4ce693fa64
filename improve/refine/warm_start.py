"""`trainer.warm_start`: a round continues from the incumbent's weights instead of a random initialisation.

What a practitioner does once the architecture is settled: keep training the best model with a new schedule,
augmentation or regularisation rather than start over, so epochs add up across rounds. It applies only when the
round's model has the incumbent's weights (the same model group up to dropout and stochastic depth) and not
under loop.folds (each fold would need its own incumbent); otherwise the round trains from scratch and the console
says so.

The incumbent's checkpoint is copied to rounds/NN/init.ckpt before the round trains, with the model group it
fits in init.json, so a resumed round, its seed confirmations and its candidates all start from the same
weights, whatever the incumbent is later.
"""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from improve.config.paths import round_dir
from improve.files import atomic_copy
from improve.pipeline.init_weights import same_weights

INIT_FILES = ("init.ckpt", "init.json")  # in rounds/NN: the weights a warm-started round starts from, and their model


def _round_dir(run_dir: Path, output_dir: Path) -> Optional[Path]:
    """rounds/NN of a round's own run, or of its seeds, folds and candidates (rounds/NN/seed1, ...)."""
    rounds = Path(run_dir) / "rounds"
    try:
        parts = Path(output_dir).relative_to(rounds).parts
    except ValueError:
        return None
    return rounds / parts[0] if parts else None


def prepare(run_dir: Path, r: int, pipelines: List[Dict[str, Dict]], incumbent: Optional[Dict[str, Any]],
            incumbent_checkpoint: Path, folds: int) -> Optional[str]:
    """Copy the incumbent's weights for round r when one of its pipelines warm-starts and can; returns a one-line
    note when a warm start was asked for and cannot happen (None otherwise)."""
    wanted = [p for p in pipelines if p["trainer"].get("warm_start")]
    if not wanted:
        return None
    if incumbent is None or not incumbent_checkpoint.is_file():
        return "trainer.warm_start: no incumbent weights yet, this round trains from scratch"
    if folds >= 2:
        return "trainer.warm_start is ignored under loop.folds (each fold would need its own incumbent)"
    fits = [p for p in wanted if same_weights(p["model"], incumbent["pipeline"]["model"])]
    rd = round_dir(run_dir, r)
    if fits and not (rd / "init.ckpt").is_file():
        rd.mkdir(parents=True, exist_ok=True)
        atomic_copy(incumbent_checkpoint, rd / "init.ckpt")
        (rd / "init.json").write_text(json.dumps({"from_round": incumbent["round"],
                                                  "model": incumbent["pipeline"]["model"]}))
    if len(fits) < len(wanted):
        return ("trainer.warm_start: the model differs from the incumbent's beyond dropout, so its weights do not fit; "
                "trains from scratch")
    return None


def parent_round(run_dir: Path, r: int) -> Optional[int]:
    """The round whose weights were copied for round r to start from (rounds/NN/init.json), or None."""
    info = round_dir(run_dir, r) / "init.json"
    return json.loads(info.read_text())["from_round"] if info.is_file() else None


def init_checkpoint(run_dir: Path, pipeline: Dict[str, Dict], output_dir: Path) -> Optional[str]:
    """The weights a run of `pipeline` in `output_dir` starts from, or None (random initialisation)."""
    rd = _round_dir(run_dir, output_dir)
    if rd is None or not pipeline["trainer"].get("warm_start") or not (rd / "init.json").is_file():
        return None
    return str(rd / "init.ckpt") if same_weights(json.loads((rd / "init.json").read_text())["model"],
                                                 pipeline["model"]) else None
