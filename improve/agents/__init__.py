"""Agents that play the loop's roles. `make_agent` picks one from the `llm` config group."""
import os
from pathlib import Path
from typing import Optional, Tuple

from improve.agents.base import Agent, Choice, Context, Edit, FirstPipeline
from improve.agents.heuristic import HeuristicAgent
from improve.agents.llm_agent import LLMAgent, RoundSkipped
from improve.llm import KEY_ENV, make_client


def make_agent(llm, cache_dir: Optional[Path] = None) -> Tuple[Agent, str]:
    """(agent, notice): `llm.provider=auto` takes Anthropic, else OpenAI, by which API key is set; else the offline
    expert, and says so."""
    provider = llm.provider
    if provider == "auto":
        keyed = [p for p, env in KEY_ENV.items() if os.environ.get(env)]
        if not keyed:
            return HeuristicAgent(), ("llm=auto: no ANTHROPIC_API_KEY or OPENAI_API_KEY is set; using the offline "
                                      "expert agent (llm=heuristic)")
        provider = keyed[0]
    if provider == "heuristic":
        return HeuristicAgent(), "agent: the offline expert (llm=heuristic)"
    client = make_client(llm, provider, cache_dir)
    where = f" at {llm.base_url}" if llm.base_url else ""
    notice = f"agent: {provider} {client.model}{where} (fallback: {llm.fallback})"
    unpriced = client.unpriced_models()
    if llm.budget_usd and unpriced:
        notice += (f"\nwarning: llm.budget_usd={llm.budget_usd} cannot count calls to {unpriced}: no price is known "
                   f"for them; add e.g. llm.prices.{unpriced[0]}={{input: 3.0, output: 15.0}} (USD per million tokens)")
    return LLMAgent(client, llm.fallback), notice


__all__ = ["Agent", "Choice", "Context", "Edit", "FirstPipeline", "HeuristicAgent", "LLMAgent", "RoundSkipped",
           "make_agent"]
