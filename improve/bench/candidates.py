"""`python -m improve.bench candidates`: K candidates a round against one, at equal wall-clock time.

Each configuration runs the refinement loop (offline expert) on the same dataset for the same
`loop.time_budget`; K=1 trains one candidate a round with all the machine's threads, K=2 two
candidates at once with half of them each (`loop.executor=local`). What counts is the incumbent's
validation accuracy reached after each minute of wall-clock time (read from the journal's
decision times), as mean ± std over seeds.
"""
import io
import json
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
from rich.console import Console

from improve.config.compose import compose_config
from improve.journal.log import Journal
from improve.refine.loop import Refinement


def reached(events: List[Dict[str, Any]], minutes: List[float]) -> List[float]:
    """The incumbent's validation accuracy at each mark (minutes after the run's start); 0 before round 0."""
    start = next(e["time"] for e in events if e["event"] == "start")
    kept = sorted((e["time"] - start, e["val_acc"]) for e in events
                  if e["event"] == "decision" and e["decision"] == "kept")
    out = []
    for m in minutes:
        vals = [v for t, v in kept if t <= m * 60]
        out.append(vals[-1] if vals else 0.0)
    return out


def run_one(dataset: str, k: int, seed: int, seconds: float, epochs: int, out: Path, extra: List[str]):
    cfg = compose_config("config", [f"dataset={dataset}", "hardware=cpu", "hardware.progress_bar=false",
                                    f"seed={seed}", "llm=heuristic", "loop.pretrained_reachable=false",
                                    f"loop.max_epochs={epochs}", "loop.rounds=1000", f"loop.time_budget={seconds}",
                                    f"loop.candidates={k}", "loop.executor=local", *extra], out, out.parent / "cache")
    Refinement(cfg, out, console=Console(file=io.StringIO())).run()
    return Journal(out / "journal.jsonl").events()


def bench_candidates(dataset: str, ks: List[int], seeds: List[int], minutes: int, epochs: int, out: Path,
                     extra: List[str], console: Console) -> Dict[str, Any]:
    """Run every (K, seed) for `minutes` each (resumable through results.json) and tabulate the curves."""
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    marks = [float(m) for m in range(1, minutes + 1)]
    for k in ks:
        for seed in seeds:
            key = f"K={k}/seed={seed}"
            if key in results:
                continue
            console.print(f"{key}: running for {minutes} min", highlight=False)
            events = run_one(dataset, k, seed, minutes * 60, epochs, out / f"k{k}_s{seed}", extra)
            decided = [e for e in events if e["event"] == "decision"]
            results[key] = {"reached": reached(events, marks), "rounds": len(decided),
                            "candidates_trained": sum(e["event"] == "candidate_result" for e in events)
                            + sum(1 for e in decided if "candidates" not in e and e["decision"] != "invalid")}
            console.print(f"{key}: {results[key]}", highlight=False)
            results_file.write_text(json.dumps(results, indent=1))
    lines = ["| candidates per round | " + " | ".join(f"val acc at {int(m)} min" for m in marks)
             + " | rounds | training runs |", "|---" * (len(marks) + 3) + "|"]
    for k in ks:
        units = [results[f"K={k}/seed={s}"] for s in seeds]
        curves = np.array([u["reached"] for u in units])
        cells = [f"{curves[:, i].mean():.4f} ± {curves[:, i].std():.4f}" for i in range(len(marks))]
        lines.append(f"| K={k} ({'1 thread each' if k > 1 else 'all threads'}) | " + " | ".join(cells)
                     + f" | {np.mean([u['rounds'] for u in units]):.1f} | "
                       f"{np.mean([u['candidates_trained'] for u in units]):.1f} |")
    table = "\n".join(lines) + (f"\n\n{dataset}, offline expert, {epochs}-epoch rounds at most; mean ± std over seeds "
                                f"{seeds}; each run had {minutes} min of wall-clock time on this machine.\n")
    (out / "table.md").write_text(table)
    return {"table": table, "results": results}
