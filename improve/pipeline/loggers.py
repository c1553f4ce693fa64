"""Experiment tracking through Lightning's own loggers: the `logger` config group.

Every run writes csv/metrics.csv (and metrics.json); `logger=tensorboard|mlflow|wandb` adds that
logger, with the run's pipeline (augment, model, trainer) and dataset name as params and the
per-epoch metrics Lightning logs. A refinement run names each round `round NN` and groups them
under its own folder name (`logger.group`): TensorBoard runs side by side under
`<run>/tensorboard`, MLflow runs tagged `refinement_run`, a wandb group.
"""
from pathlib import Path
from typing import Any, Dict, List

from omegaconf import DictConfig, OmegaConf

from improve.config.paths import project_path
from improve.config.schema import EDITABLE_GROUPS

EXTRA = "pip install -e '.[tracking]'"


def _flat(prefix: str, value: Any, out: Dict[str, Any]) -> Dict[str, Any]:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(value) if isinstance(value, (list, tuple)) else value
    return out


def run_params(cfg: DictConfig) -> Dict[str, Any]:
    """The params a tracker shows for a run: the pipeline's values, flattened, plus the dataset and seed."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    params = _flat("", {g: plain[g] for g in EDITABLE_GROUPS}, {})
    params.update({"dataset.name": plain["dataset"]["name"], "seed": plain["seed"]})
    return params


def _require(module: str, name: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ValueError(f"logger={name} needs the {module} package, which is not installed; install it with "
                         f"{EXTRA} (or pip install {module}), or use logger=csv")


def build_loggers(cfg: DictConfig, out: Path) -> List[Any]:
    """CSV always, plus the configured tracker."""
    from lightning.pytorch.loggers import CSVLogger

    lg = cfg.logger
    loggers: List[Any] = [CSVLogger(out, name="csv", version="")]
    run_name = lg.run_name or out.name
    if lg.name == "tensorboard":
        _require("tensorboard", lg.name)
        from lightning.pytorch.loggers import TensorBoardLogger

        save_dir = project_path(lg.save_dir) if lg.save_dir else out
        loggers.append(TensorBoardLogger(save_dir, name="tensorboard" if not lg.save_dir else "", version=run_name,
                                         default_hp_metric=False))
    elif lg.name == "mlflow":
        _require("mlflow", lg.name)
        from lightning.pytorch.loggers import MLFlowLogger

        store = project_path(lg.save_dir or "outputs/mlruns").resolve()
        store.mkdir(parents=True, exist_ok=True)
        uri = lg.tracking_uri or f"sqlite:///{store / 'mlflow.db'}"  # MLflow's local store (its file store is legacy)
        loggers.append(MLFlowLogger(experiment_name=lg.experiment, tracking_uri=uri,
                                    artifact_location=None if lg.tracking_uri else (store / "artifacts").as_uri(),
                                    run_name=f"{lg.group}/{run_name}" if lg.group else run_name,
                                    tags={"refinement_run": lg.group} if lg.group else None))
    elif lg.name == "wandb":
        _require("wandb", lg.name)
        from lightning.pytorch.loggers import WandbLogger

        save_dir = project_path(lg.save_dir or "outputs/wandb")
        save_dir.mkdir(parents=True, exist_ok=True)
        loggers.append(WandbLogger(project=lg.experiment, name=run_name, group=lg.group, save_dir=str(save_dir),
                                   offline=lg.offline))
    for logger in loggers[1:]:
        logger.log_hyperparams(run_params(cfg))
    return loggers
