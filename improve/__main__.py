"""`python -m improve [dataset=...] [overrides]`: the refinement run.

    python -m improve                                   # digits, llm=auto
    python -m improve dataset=shapes dataset.description="2D shapes; the label is the orientation"
    python -m improve resume=outputs/improve/2026-11-23/20-41-07 [loop.rounds=10] [model.name=resnet18d]
"""
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .loop import Refinement, load_run_config
from .schema import register_configs
from .train import CONFIG_DIR

register_configs()
if not OmegaConf.has_resolver("run_dir"):
    OmegaConf.register_new_resolver("run_dir", lambda resume, default: resume or default)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
    if cfg.resume:
        run_dir = Path(cfg.resume)
        cfg = load_run_config(run_dir, overrides, cfg)
    else:
        run_dir = Path(cfg.paths.output_dir)
        cfg.paths.output_dir = str(run_dir)
    try:
        Refinement(cfg, run_dir, overrides).run()
    except KeyboardInterrupt:  # the running round is killed with the loop; finished rounds are in the journal
        print(f"\ninterrupted; finished rounds are kept. Go on with: python -m improve resume={run_dir}",
              file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
