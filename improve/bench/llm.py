"""How the LLM did in a finished run, from its journal: per role, calls, seconds, tokens/s, and how many replies
were usable (parsed) and validated (became the round's pipeline or the analyst's pick).
`python -m improve.bench llm <run dir> ...` prints it."""
from pathlib import Path
from statistics import mean
from typing import Any, Dict, List

from improve.journal.log import Journal
from improve.refine.state import State

ROLES = ("architect", "analyst", "engineer")


def llm_summary(run_dir: Path) -> Dict[str, Dict[str, Any]]:
    events = Journal(Path(run_dir) / "journal.jsonl").events()
    state = State(events)
    calls = [e for e in events if e["event"] == "llm_call" and not e.get("cached")]
    accepted = {
        "architect": int(state.decisions.get(0, {}).get("author") == "architect"),
        "analyst": sum(e["event"] == "analysis" and e.get("author") == "analyst" for e in events),
        "engineer": sum(d["author"] == "engineer" and d["decision"] not in ("invalid", "skipped")
                        for r, d in state.decisions.items() if r > 0),
    }
    out = {}
    for role in ROLES:
        mine = [e for e in calls if e["role"] == role]
        if not mine:
            continue
        timed = [e for e in mine if e.get("seconds")]
        replied = [e for e in timed if not e.get("error") or e.get("error_kind")]
        out[role] = {
            "calls": len(mine), "usable": sum(not e.get("error") for e in mine), "validated": accepted[role],
            "api_failures": sum(bool(e.get("error")) and not e.get("error_kind") for e in mine),
            "truncated": sum(e.get("error_kind") == "truncated" for e in mine),
            "seconds_per_call": round(mean(e["seconds"] for e in timed), 1) if timed else None,
            "output_tokens_per_s": round(sum(e["output_tokens"] for e in replied) /
                                         max(1e-9, sum(e["seconds"] for e in replied)), 1) if replied else None,
        }
    rounds = [d for d in state.decisions.values()]
    llm_seconds = sum(e.get("seconds") or 0 for e in calls)
    out["run"] = {"rounds": len(rounds), "llm_seconds": round(llm_seconds, 1),
                  "llm_seconds_per_round": round(llm_seconds / max(1, len(rounds)), 1),
                  "training_seconds_per_round": round(mean(d["seconds"] for d in rounds), 1) if rounds else None}
    return out


def format_summary(name: str, summary: Dict[str, Dict[str, Any]]) -> List[str]:
    lines = [f"{name}: {summary['run']['rounds']} rounds, {summary['run']['llm_seconds_per_round']} s of LLM calls "
             f"and {summary['run']['training_seconds_per_round']} s of training per round"]
    for role in ROLES:
        if role in summary:
            s = summary[role]
            lines.append(f"  {role:<9} {s['calls']:>3} calls, {s['seconds_per_call']} s each, "
                         f"{s['output_tokens_per_s']} output tok/s; usable {s['usable']}/{s['calls']} "
                         f"(truncated {s['truncated']}, API failures {s['api_failures']}), validated {s['validated']}")
    return lines
