"""LLM clients: Anthropic and OpenAI (or OpenAI-compatible servers) behind one `call()`."""
import os
from pathlib import Path
from typing import Optional

from improve.llm.client import DEFAULT_MODELS, LLMClient, parse_json_text
from improve.llm.errors import KEY_ENV, BudgetExhausted, LLMUnavailable, ReplyError


def make_client(llm, provider: str, cache_dir: Optional[Path]) -> LLMClient:
    """The client for `provider`; a missing key is an error unless a local `llm.base_url` is given."""
    if provider == "anthropic":
        from improve.llm.anthropic_client import AnthropicClient as cls
    elif provider == "openai":
        from improve.llm.openai_client import OpenAIClient as cls
    else:
        raise ValueError(f"llm.provider={provider!r} has no client; use anthropic, openai, heuristic or auto")
    if not os.environ.get(KEY_ENV[provider]) and not llm.base_url:
        raise ValueError(f"llm.provider={provider} needs {KEY_ENV[provider]} in the environment (or llm.base_url "
                         f"for a local server); or use llm=heuristic, the offline expert")
    return cls(llm, cache_dir)


__all__ = ["make_client", "LLMClient", "LLMUnavailable", "BudgetExhausted", "ReplyError", "DEFAULT_MODELS",
           "KEY_ENV", "parse_json_text"]
