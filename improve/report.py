"""What a person reads: one console line per round, and report.md with the round table."""
from pathlib import Path
from typing import Any, Optional

STYLE = {"kept": "green", "reverted": "yellow", "failed": "red", "invalid": "red", "skipped": "red"}


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def console_line(r: int, group: str, change: str, val: Optional[float], delta: Optional[float], decision: str,
                 seconds: float, reason: Optional[str] = None, llm: Optional[dict] = None) -> str:
    val_s = f"{val:.4f}" if val is not None else "  -   "
    delta_s = f"{delta:+.4f}" if delta is not None else "   -   "
    line = (f"round {r:>2}  {group:<22} {_short(change, 48):<48} val {val_s}  Δ {delta_s}  "
            f"[{STYLE.get(decision, 'white')}]{decision:<8}[/] {seconds:6.1f} s")
    if llm and llm.get("calls"):
        line += f"  {llm['input_tokens'] + llm['output_tokens']:,} tok ${llm['cost_usd']:.4f}"
    if reason and decision in ("failed", "invalid"):
        line += f"\n          {_short(reason, 200)}"
    return line


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_report(run_dir: Path, state) -> Path:
    """report.md: the run's round table and its outcome (rewritten after every round)."""
    lines = [f"# Refinement run `{run_dir.name}`", ""]
    profile = state.profile or {}
    if profile:
        lines += [f"Dataset **{profile.get('name')}**: {profile.get('train_images')} training images, "
                  f"{profile.get('num_classes')} classes, {profile.get('channels')} channel(s)."
                  + (f" Description: {profile.get('description')}" if profile.get("description") else ""), ""]
    if state.incumbent:
        inc = state.incumbent
        lines.append(f"Incumbent: round {inc['round']}, validation accuracy **{inc['val_acc']:.4f}**.")
    if state.final and state.final.get("test_acc") is not None:
        lines.append(f"Final test accuracy of the incumbent (evaluated once, at the end): "
                     f"**{state.final['test_acc']:.4f}**"
                     + (f" (the first pipeline, round 0: {state.final['round0_test_acc']:.4f})."
                        if state.final.get("round0_test_acc") is not None else "."))
    lines += ["", "| round | author | group | change | rationale | val acc | Δ | decision | seconds | tokens | cost |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(state.decisions):
        d, p = state.decisions[r], state.proposals.get(r, {})
        val = f"{d['val_acc']:.4f}" if d["val_acc"] is not None else "-"
        delta = f"{d['delta']:+.4f}" if d["delta"] is not None else "-"
        decision = d["decision"] + (f" ({_short(d['reason'], 120)})" if d.get("reason") else "")
        lines.append(f"| {r} | {d['author']} | {d['group']} | {_cell('; '.join(d['changes'])[:300] or '-')} | "
                     f"{_cell(_short(p.get('rationale') or d.get('reason') or '', 160))} | {val} | {delta} | "
                     f"{_cell(decision)} | {d['seconds']} | {_tokens(d)} | {_cost(d)} |")
    if state.final and state.final.get("llm"):
        t = state.final["llm"]
        lines += ["", f"LLM use: {t['calls']} calls, {t['input_tokens']:,} input and {t['output_tokens']:,} output "
                      f"tokens, ${t['cost_usd']:.4f}."]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _tokens(decision: dict) -> str:
    llm = decision.get("llm") or {}
    return f"{llm['input_tokens'] + llm['output_tokens']:,}" if llm.get("calls") else "-"


def _cost(decision: dict) -> str:
    llm = decision.get("llm") or {}
    return f"${llm['cost_usd']:.4f}" if llm.get("calls") else "-"
