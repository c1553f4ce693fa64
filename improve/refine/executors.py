"""Training several candidates of a round at once: on this machine's processes, or as Ray tasks.

`loop.executor=local`: one process per candidate (forked like every round, `pipeline/process.py`), started
together; the CPU threads are shared out (`hardware.threads` = cores / candidates unless set) and,
with several GPUs, each candidate trains on its own (`hardware.devices`). `loop.executor=ray`:
each candidate is a Ray task asking for the CPUs and GPUs its `hardware` group needs, running
the same time-limited training process on its frozen config; `loop.ray_address` joins an existing cluster
(whose workers must see the run directory, e.g. on a shared file system), else a local Ray
starts on this machine. A failed candidate is a failed result, never an exception for the others;
Ctrl-C or a kill of the loop ends every candidate's process.
"""
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from improve.config.paths import PROJECT_ROOT
from improve.pipeline.process import failed, kill_all
from improve.refine.runner import Runner, scored_run


@dataclass
class Job:
    """One candidate's training: its complete train config and output folder."""

    config: Dict[str, Any]
    output_dir: Path


def share_hardware(config: Dict[str, Any], index: int, jobs: int, cpus: int, gpus: int) -> Dict[str, Any]:
    """The candidate's hardware group when `jobs` train at once: its share of the CPU threads (unless the user set
    hardware.threads) and, with several GPUs, GPU number index % gpus."""
    hw = dict(config["hardware"])
    if not hw.get("threads"):
        hw["threads"] = max(1, cpus // jobs)
    if gpus > 1 and hw.get("accelerator") in ("auto", "gpu", "cuda"):
        hw["devices"] = [index % gpus]
    return {**config, "hardware": hw}


def run_local(jobs: List[Job], runner: Runner, on_done: Callable[[int, Dict[str, Any]], None]) -> List[Dict[str, Any]]:
    """Train the jobs concurrently on this machine, each through `runner.run` (in its own process)."""
    cpus, gpus = os.cpu_count() or 1, _gpu_count()
    shared = [share_hardware(j.config, i, len(jobs), cpus, gpus) for i, j in enumerate(jobs)]
    results: List[Optional[Dict[str, Any]]] = [None] * len(jobs)

    def one(i: int) -> None:
        try:
            results[i] = runner.run(shared[i], jobs[i].output_dir)
        except Exception as err:  # anything but a finished run is a failed candidate, never the others' end
            results[i] = failed(jobs[i].output_dir, f"{type(err).__name__}: {err}", "Crash")
        on_done(i, results[i])

    pool = ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="candidate")
    try:
        futures = [pool.submit(one, i) for i in range(len(jobs))]
        for f in futures:
            f.result()
    except BaseException:  # Ctrl-C: every candidate's process goes too (a resumed loop reruns the unfinished)
        kill_all()
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0


def resources(hardware: Dict[str, Any]) -> Dict[str, float]:
    """What one candidate asks Ray for: its threads as CPUs, its devices as GPUs when it trains on GPU."""
    devices = hardware.get("devices")
    gpus = 0
    if hardware.get("accelerator") in ("gpu", "cuda"):
        gpus = len(devices) if isinstance(devices, (list, tuple)) else (int(devices) if str(devices).isdigit() else 1)
    return {"num_cpus": max(1, int(hardware.get("threads") or 1)), "num_gpus": gpus}


def run_ray(jobs: List[Job], runner: Runner, address: Optional[str],
            on_done: Callable[[int, Dict[str, Any]], None]) -> List[Dict[str, Any]]:
    """Train each job as a Ray task; results in job order, each reported through on_done as it finishes."""
    try:
        import ray
    except ImportError:
        raise ValueError("loop.executor=ray needs Ray, which is not installed: pip install -e '.[ray]' "
                         "(or use loop.executor=local)") from None
    if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}})
    task = ray.remote(scored_run)  # the same forked, time-limited run as the local executor's, in a Ray worker
    cpus = int(ray.cluster_resources().get("CPU", 1))
    configs = [share_hardware(j.config, i, len(jobs), cpus, 0) for i, j in enumerate(jobs)]  # Ray places the GPUs
    refs = [task.options(**resources(c["hardware"])).remote(c, j.output_dir, runner.timeout, runner.folds)
            for c, j in zip(configs, jobs)]
    index = {ref: i for i, ref in enumerate(refs)}
    results: List[Optional[Dict[str, Any]]] = [None] * len(jobs)
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            i = index[done[0]]
            try:
                results[i] = ray.get(done[0])
            except Exception as err:  # the task itself died (worker lost, out of memory)
                results[i] = failed(jobs[i].output_dir, f"Ray task failed: {type(err).__name__}: {err}", "Crash")
            on_done(i, results[i])
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return results
