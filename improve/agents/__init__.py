"""Agents that play the loop's roles. `make_agent` picks one from the `llm` config group."""
import os
from typing import Tuple

from .base import Agent, Choice, Context, Edit, Proposal
from .heuristic import HeuristicAgent

PROVIDERS = {"heuristic": HeuristicAgent}  # LLM providers register here
KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


def make_agent(llm) -> Tuple[Agent, str]:
    """(agent, notice): `llm.provider=auto` takes the first provider whose API key is set, else the offline expert."""
    provider = llm.provider
    if provider == "auto":
        keyed = [p for p, env in KEY_ENV.items() if os.environ.get(env) and p in PROVIDERS]
        if keyed:
            provider = keyed[0]
        else:
            unserved = [env for p, env in KEY_ENV.items() if os.environ.get(env) and p not in PROVIDERS]
            why = (f"{', '.join(unserved)} is set but this version has no client for it"
                   if unserved else "no ANTHROPIC_API_KEY or OPENAI_API_KEY is set")
            return HeuristicAgent(), f"llm=auto: {why}; using the offline expert agent (llm=heuristic)"
    if provider not in PROVIDERS:
        raise ValueError(f"llm.provider={provider!r} is not available; choose one of {sorted(PROVIDERS)} or auto")
    return PROVIDERS[provider](), f"agent: {provider}"


__all__ = ["Agent", "Choice", "Context", "Edit", "Proposal", "HeuristicAgent", "make_agent"]
