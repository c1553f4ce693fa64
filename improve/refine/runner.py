"""The one way the loop trains a pipeline."""
from pathlib import Path
from typing import Any, Dict

from omegaconf import DictConfig, OmegaConf

from improve.config.schema import EDITABLE_GROUPS


def train_config(cfg: DictConfig, pipeline: Dict[str, Dict], output_dir: Path) -> Dict[str, Any]:
    """A complete `train.yaml`-shaped config: the run's data and hardware settings plus one pipeline."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    return {"dataset": plain["dataset"], **{g: pipeline[g] for g in EDITABLE_GROUPS}, "hardware": plain["hardware"],
            "logger": run_logger(plain.get("logger") or {"name": "csv"}, Path(plain["paths"]["output_dir"]),
                                 Path(output_dir)),
            "paths": {"data_dir": plain["paths"]["data_dir"], "cache_dir": plain["paths"]["cache_dir"],
                      "output_dir": str(output_dir)},
            "seed": cfg.seed, "test": False, "ckpt_path": None, "init_checkpoint": None, "recipe": None, "save_last": False,
            "save_val_predictions": True}


def run_logger(logger: Dict[str, Any], run_dir: Path, output_dir: Path) -> Dict[str, Any]:
    """The `logger` group of one run of a refinement run: grouped under the run's folder name, named for its round
    (`round_03`, `round_03_seed1`), TensorBoard's files together in <run dir>/tensorboard."""
    try:
        parts = output_dir.relative_to(run_dir).parts
    except ValueError:
        parts = (output_dir.name,)
    name = "_".join(("round",) + parts[1:]) if parts and parts[0] == "rounds" else "_".join(parts) or run_dir.name
    out = {**logger, "group": logger.get("group") or run_dir.name, "run_name": logger.get("run_name") or name}
    if out.get("name") == "tensorboard" and not out.get("save_dir"):
        out["save_dir"] = str(run_dir / "tensorboard")
    return out
