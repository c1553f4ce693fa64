"""Where the project lives: its root, its configs, and config paths resolved from the root (never the cwd)."""
from pathlib import Path
from typing import Optional

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "conf"


def project_path(path: Optional[str]) -> Optional[Path]:
    """A config path as an absolute Path: relative ones are taken from the project root, not the cwd."""
    if path is None:
        return None
    p = Path(str(path)).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


CHECKPOINT = Path("checkpoints") / "best.ckpt"  # a training run's best weights, under its output folder


def round_dir(run_dir: Path, r: int) -> Path:
    """The folder of round r of a refinement run (its config, metrics, checkpoint, LLM audit)."""
    return Path(run_dir) / "rounds" / f"{r:02d}"


def round_checkpoint(run_dir: Path, r: int) -> Path:
    """Round r's best weights, as its training run saved them."""
    return round_dir(run_dir, r) / CHECKPOINT
