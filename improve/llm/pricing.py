"""What a call costs: USD per million tokens by model, cache tokens included.

The table holds list prices of current Anthropic and OpenAI models; `llm.prices` adds or overrides
entries. A dated or suffixed name (claude-sonnet-4-5-20250929, gpt-4o-2024-08-06) takes the price
of the longest listed name it starts with. Anthropic bills cache reads at 0.1x and cache writes at
1.25x the input price.
"""
from typing import Dict, Optional

PRICES = {  # USD per million tokens
    "claude-opus-4-5": {"input": 5.0, "output": 25.0},
    "claude-opus-4-1": {"input": 15.0, "output": 75.0},
    "claude-opus-4": {"input": 15.0, "output": 75.0},
    "claude-sonnet-4-5": {"input": 3.0, "output": 15.0},
    "claude-sonnet-4": {"input": 3.0, "output": 15.0},
    "claude-3-7-sonnet": {"input": 3.0, "output": 15.0},
    "claude-haiku-4-5": {"input": 1.0, "output": 5.0},
    "claude-3-5-haiku": {"input": 0.8, "output": 4.0},
    "gpt-5": {"input": 1.25, "output": 10.0},
    "gpt-5-mini": {"input": 0.25, "output": 2.0},
    "gpt-5-nano": {"input": 0.05, "output": 0.4},
    "gpt-4.1": {"input": 2.0, "output": 8.0},
    "gpt-4.1-mini": {"input": 0.4, "output": 1.6},
    "gpt-4.1-nano": {"input": 0.1, "output": 0.4},
    "gpt-4o": {"input": 2.5, "output": 10.0},
    "gpt-4o-mini": {"input": 0.15, "output": 0.6},
    "o1": {"input": 15.0, "output": 60.0},
    "o3": {"input": 2.0, "output": 8.0},
    "o3-mini": {"input": 1.1, "output": 4.4},
    "o4-mini": {"input": 1.1, "output": 4.4},
}
CACHE_READ, CACHE_WRITE = 0.1, 1.25  # of the input price


def price_of(model: str, prices: Dict[str, Dict[str, float]]) -> Optional[Dict[str, float]]:
    """The price entry for `model`: exact, else the longest entry it starts with; None when unknown."""
    if model in prices:
        return prices[model]
    prefixes = [name for name in prices if model.startswith(name + "-")]
    return prices[max(prefixes, key=len)] if prefixes else None


def cost_usd(price: Optional[Dict[str, float]], usage: Dict[str, int]) -> float:
    if not price:
        return 0.0
    return (usage.get("input_tokens", 0) * price["input"] + usage.get("output_tokens", 0) * price["output"]
            + usage.get("cache_read_tokens", 0) * price["input"] * CACHE_READ
            + usage.get("cache_write_tokens", 0) * price["input"] * CACHE_WRITE) / 1e6
