"""`python -m improve [dataset=...] [overrides]`: the refinement run.

    python -m improve                                   # digits, llm=auto
    python -m improve dataset=shapes dataset.description="2D shapes; the label is the orientation"
    python -m improve resume=outputs/improve/2026-11-23/20-41-07 [loop.rounds=10] [model.name=resnet18d]
"""
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from improve.config.overrides import load_run_config
from improve.config.paths import CONFIG_DIR
from improve.config.schema import register_configs
from improve.files import DiskFull
from improve.refine.loop import Refinement

register_configs()
if not OmegaConf.has_resolver("run_dir"):
    OmegaConf.register_new_resolver("run_dir", lambda resume, default: resume or default)


def _stop(signum, frame) -> None:
    """SIGTERM (a cluster's preemption, `kill`) stops the run the way Ctrl-C does: cleanly, resumable."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    if HydraConfig.get().runtime.choices.get("llm") == "local" and not cfg.llm.base_url:
        raise SystemExit("llm=local needs the server's address: add llm.base_url=http://127.0.0.1:PORT/v1 (llama.cpp's "
                         "llama-server, vLLM, or Ollama at http://127.0.0.1:11434/v1)")
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
    if cfg.resume:
        run_dir = Path(cfg.resume)
        cfg = load_run_config(run_dir, overrides, cfg)
    else:
        run_dir = Path(cfg.paths.output_dir)
        cfg.paths.output_dir = str(run_dir)
    signal.signal(signal.SIGTERM, _stop)
    try:
        result = Refinement(cfg, run_dir, overrides).run()
    except (ValueError, DiskFull) as err:  # a setting that cannot work, a full disk: said, no traceback
        raise SystemExit(f"error: {err.strerror if isinstance(err, DiskFull) else err}") from None
    except KeyboardInterrupt as err:  # the running round is killed with the loop; finished rounds are in the journal
        by = str(err) or "SIGINT"
        print(f"\ninterrupted ({by}); finished rounds are kept. Go on with: python -m improve resume={run_dir}",
              file=sys.stderr)
        sys.exit(128 + signal.Signals[by].value)
    if result.get("llm_failed") and cfg.llm.fallback != "heuristic":
        sys.exit(3)  # no LLM answer was usable: the run is the offline expert's, which the user did not choose


if __name__ == "__main__":
    main()
