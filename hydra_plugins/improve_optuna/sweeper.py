"""A Hydra sweeper over current Optuna (>= 4): each trial is one job of Hydra's launcher.

`hparams_search=optuna` selects it (`hydra/sweeper: improve_optuna`). Its `params` take the same
override syntax as the hydra-optuna-sweeper plugin, which pins optuna<3 and so cannot be installed
beside a current Optuna: `choice(a, b)`, `interval(lo, hi)`, `tag(log, interval(lo, hi))` and
`range(start, stop, step)` become Optuna's Categorical, Float/Int and stepped distributions; a
plain value is fixed. A trial whose job fails, or returns a value that is not a finite number (a
failed `improve.train` run returns NaN), is told to Optuna as failed and the study goes on.
The best trial is written to `<sweep dir>/optimization_results.yaml`.
"""
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class ImproveOptunaConfig:
    _target_: str = "hydra_plugins.improve_optuna.sweeper.ImproveOptunaSweeper"
    direction: str = "maximize"  # maximize or minimize the value the task returns
    study_name: Optional[str] = None  # name of the Optuna study
    storage: Optional[str] = None  # null = in memory; e.g. sqlite:///optuna.db to keep and resume studies
    n_trials: int = 20  # jobs in the search
    n_jobs: int = 1  # jobs launched together (one batch of asks, then tells)
    sampler: Dict[str, Any] = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": 0})
    params: Dict[str, str] = field(default_factory=dict)  # key: override-syntax search space


ConfigStore.instance().store(group="hydra/sweeper", name="improve_optuna", node=ImproveOptunaConfig,
                             provider="improve")


def distribution(override: Override) -> Any:
    """An Optuna distribution for a sweep override, or the plain value (a string) for a fixed one."""
    import optuna.distributions as d

    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return d.CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            return d.FloatDistribution(value.start, value.stop - value.step, step=value.step)
        return d.IntDistribution(int(value.start), int(value.stop) - int(value.step), step=int(value.step))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return d.IntDistribution(value.start, value.end, log=log_scale)
        return d.FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ValueError(f"{override.input_line}: this sweep is not supported by the Optuna sweeper; use choice(...), "
                     f"range(...), interval(...) or tag(log, interval(...))")


def search_space(lines: List[str]) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """(distributions, fixed values) from override strings."""
    space, fixed = {}, {}
    for override in OverridesParser.create().parse_overrides(lines):
        found = distribution(override)
        (fixed if isinstance(found, str) else space)[override.get_key_element()] = found
    return space, fixed


class ImproveOptunaSweeper(Sweeper):
    def __init__(self, direction: str, study_name: Optional[str], storage: Optional[str], n_trials: int,
                 n_jobs: int, sampler: Any, params: Dict[str, str]) -> None:
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"hydra.sweeper.direction={direction!r}: use maximize or minimize")
        if n_trials < 1 or n_jobs < 1:
            raise ValueError(f"hydra.sweeper.n_trials={n_trials}, n_jobs={n_jobs}: both must be at least 1")
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.n_trials, self.n_jobs, self.sampler_cfg, self.params = n_trials, n_jobs, sampler, dict(params or {})
        self.launcher, self.config, self.job_idx = None, None, 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                                task_function=task_function)

    def sweep(self, arguments: List[str]) -> None:
        import optuna
        from hydra.utils import instantiate

        space, fixed = search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        for key in fixed:
            space.pop(key, None)  # a value given on the command line wins over the search space
        sampler = self.sampler_cfg  # Hydra has already instantiated a `_target_` sampler config
        if isinstance(sampler, (dict, DictConfig)):
            sampler = instantiate(sampler) if sampler else None
        study = optuna.create_study(study_name=self.study_name, storage=self.storage, sampler=sampler,
                                    direction=self.direction, load_if_exists=True)
        log.info(f"Optuna {optuna.__version__} study {study.study_name}: {self.n_trials} trials, sampler "
                 f"{type(study.sampler).__name__}, search space {sorted(space)}")
        left = self.n_trials
        while left > 0:
            trials = [study.ask(fixed_distributions=space) for _ in range(min(self.n_jobs, left))]
            jobs = [[f"{k}={v}" for k, v in t.params.items()] + [f"{k}={v}" for k, v in fixed.items()]
                    for t in trials]
            returns = self.launcher.launch(jobs, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            for trial, ret in zip(trials, returns):
                value = self._value(ret)
                if value is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    log.warning(f"trial {trial.number} failed ({trial.params}); the search goes on")
                else:
                    study.tell(trial, value)
            left -= len(trials)
        self._write_results(study)

    @staticmethod
    def _value(ret) -> Optional[float]:
        try:
            value = float(ret.return_value)  # raises the job's own exception when it failed
        except Exception as err:  # a crashed job is a failed trial, never the end of the search
            log.warning(f"job failed: {type(err).__name__}: {err}")
            return None
        return value if math.isfinite(value) else None

    def _write_results(self, study) -> None:
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        out = Path(self.config.hydra.sweep.dir)
        out.mkdir(parents=True, exist_ok=True)
        results = {"name": "optuna", "trials": len(study.trials), "failed": len(study.trials) - len(done)}
        if done:
            results.update(best_params=study.best_trial.params, best_value=study.best_value)
            log.info(f"best value {study.best_value} with {study.best_trial.params}")
        else:
            log.warning("no trial finished: nothing to report as best")
        OmegaConf.save(OmegaConf.create(results), out / "optimization_results.yaml")
