"""One structured LLM call, whatever the provider: schema in, JSON object out, accounted and audited.

Each call goes through the provider's own SDK (`anthropic`, `openai`), whose retries handle
429 / 5xx / connection errors / timeouts with exponential backoff; `llm.timeout` and
`llm.retries` bound the total wait. Around it: a replay cache keyed by the request, token and
cost accounting with budget stops, and an audit file per call (no keys: they live only in the
SDK client, read from the environment).
"""
import hashlib
import importlib
import json
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

DEFAULT_MODELS = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-4o"}
KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
DEFAULT_PRICES = {  # USD per million tokens (input, output); llm.prices adds or overrides entries
    "claude-sonnet-4-5": {"input": 3.0, "output": 15.0},
    "claude-haiku-4-5": {"input": 1.0, "output": 5.0},
    "claude-opus-4-1": {"input": 15.0, "output": 75.0},
    "gpt-4o": {"input": 2.5, "output": 10.0},
    "gpt-4o-mini": {"input": 0.15, "output": 0.6},
    "o1": {"input": 15.0, "output": 60.0},
}


class LLMUnavailable(RuntimeError):
    """The API could not be reached or refused the request after the retries."""


class BudgetExhausted(RuntimeError):
    """llm.budget_usd or llm.max_calls is spent: the run ends cleanly."""


class ReplyError(ValueError):
    """The reply holds no usable structured content (no tool call, invalid JSON)."""


@dataclass
class Reply:
    data: Dict[str, Any]
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cached: bool


def parse_json_text(text: str) -> Dict[str, Any]:
    """Tolerant JSON-object extraction for servers without schema support: fences, prose around it."""
    if not text or not text.strip():
        raise ReplyError("the reply is empty; answer with one JSON object")
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    candidates = [fenced.group(1)] if fenced else []
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start:end + 1])
    candidates.append(text)
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise ReplyError(f"the reply is not a JSON object: {text.strip()[:200]!r}; answer with one JSON object")


def text_reply(text: str, usage: Dict[str, int], raw: Any) -> Dict[str, Any]:
    """A `_send` result from the reply's text: the JSON object in it, or why there is none."""
    try:
        return {"data": parse_json_text(text), "error": None, "usage": usage, "raw": raw}
    except ValueError as err:
        return {"data": None, "error": str(err), "usage": usage, "raw": raw}


class LLMClient(ABC):
    """Provider-independent part: cache, accounting, budget, audit. Subclasses implement `_send`."""

    provider = ""  # SDK module name: anthropic, openai
    sdk_class = ""  # its client class

    def __init__(self, llm, cache_dir: Optional[Path]):
        module = importlib.import_module(self.provider)
        self._errors = (module.APIError,)
        # The key stays inside the SDK client; local servers (vLLM, Ollama, llama.cpp) accept any key.
        self.sdk = getattr(module, self.sdk_class)(api_key=os.environ.get(KEY_ENV[self.provider]) or "not-set",
                                                   base_url=llm.base_url or None, timeout=llm.timeout,
                                                   max_retries=llm.retries)
        self.cfg = llm
        self.model = llm.model or DEFAULT_MODELS[self.provider]
        self.prices = {**DEFAULT_PRICES, **{k: dict(v) for k, v in (llm.prices or {}).items()}}
        self.cache_dir = Path(cache_dir) / "llm" if (cache_dir and llm.cache) else None
        self.run_dir: Optional[Path] = None
        self.journal = None
        self.calls, self.cost_usd, self.input_tokens, self.output_tokens = 0, 0.0, 0, 0

    def bind(self, run_dir: Path, journal, previous: Optional[Dict[str, float]] = None) -> None:
        """Where audits and accounting go; `previous` carries totals over a resume."""
        self.run_dir, self.journal = Path(run_dir), journal
        if previous:
            self.calls = int(previous.get("calls", 0))
            self.cost_usd = float(previous.get("cost_usd", 0.0))
            self.input_tokens = int(previous.get("input_tokens", 0))
            self.output_tokens = int(previous.get("output_tokens", 0))

    def model_for(self, role: str) -> str:
        return (self.cfg.role_models or {}).get(role) or self.model

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        price = self.prices.get(model) or {"input": 0.0, "output": 0.0}
        return (input_tokens * price["input"] + output_tokens * price["output"]) / 1e6

    def check_budget(self) -> None:
        if self.cfg.max_calls and self.calls >= self.cfg.max_calls:
            raise BudgetExhausted(f"llm.max_calls={self.cfg.max_calls} reached")
        if self.cfg.budget_usd and self.cost_usd >= self.cfg.budget_usd:
            raise BudgetExhausted(f"llm.budget_usd={self.cfg.budget_usd} spent (${self.cost_usd:.4f})")

    def call(self, role: str, round_: int, system: str, user: str, name: str, schema: Dict[str, Any]) -> Reply:
        """Ask for one JSON object matching `schema` (tool / response-format `name`)."""
        self.check_budget()
        model = self.model_for(role)
        request = {"provider": self.provider, "model": model, "system": system, "user": user, "name": name,
                   "schema": schema, "temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens,
                   "structured": self.cfg.structured, "base_url": self.cfg.base_url}
        key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        cached = self._cache_get(key)
        if cached is not None:
            response, cached_hit = cached, True
        else:
            response, cached_hit = self._send(request), False
            self._cache_put(key, response)
        usage = response["usage"]
        cost = 0.0 if cached_hit else self.cost(model, usage["input_tokens"], usage["output_tokens"])
        if not cached_hit:
            self.calls += 1
            self.cost_usd += cost
            self.input_tokens += usage["input_tokens"]
            self.output_tokens += usage["output_tokens"]
        self._audit(role, round_, request, response, cost, cached_hit)
        if self.journal is not None:
            self.journal.append("llm_call", round=round_, role=role, model=model, cached=cached_hit,
                                input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"],
                                cost_usd=round(cost, 6), totals=self.totals())
        if response.get("error"):
            raise ReplyError(response["error"])
        return Reply(response["data"], model, usage["input_tokens"], usage["output_tokens"], cost, cached_hit)

    def totals(self) -> Dict[str, Any]:
        return {"calls": self.calls, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cost_usd": round(self.cost_usd, 6)}

    @abstractmethod
    def _send(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """The provider's wire: {"data": {...} | None, "error": str | None, "usage": {...}, "raw": ...}."""

    def _cache_get(self, key: str) -> Optional[Dict[str, Any]]:
        path = self.cache_dir / f"{key}.json" if self.cache_dir else None
        return json.loads(path.read_text()) if path and path.is_file() else None

    def _cache_put(self, key: str, response: Dict[str, Any]) -> None:
        if self.cache_dir and not response.get("error"):
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_dir / f".{key}.tmp"
            tmp.write_text(json.dumps(response))
            os.replace(tmp, self.cache_dir / f"{key}.json")

    def _audit(self, role: str, round_: int, request, response, cost: float, cached: bool) -> None:
        if self.run_dir is None:
            return
        folder = self.run_dir / "rounds" / f"{round_:02d}" / "llm"
        folder.mkdir(parents=True, exist_ok=True)
        n = len(list(folder.glob("*.json")))
        record = {"role": role, "cached": cached, "cost_usd": cost, "request": request, "response": response}
        (folder / f"{n:03d}-{role}.json").write_text(json.dumps(record, indent=1, default=str))


def user_text(request: Dict[str, Any]) -> str:
    """The user message; without native structured output it also spells out the JSON wanted."""
    if request["structured"]:
        return request["user"]
    return (f"{request['user']}\n\nAnswer with only one JSON object ({request['name']}) matching this JSON schema, "
            f"no prose:\n{json.dumps(request['schema'])}")


def api_error_message(provider: str, err: Exception) -> str:
    status = getattr(err, "status_code", None)
    text = " ".join(str(err).split())[:300]
    if status in (401, 403):
        return f"{provider} refused the API key (HTTP {status}): check {KEY_ENV[provider]}"
    return f"{provider} API unreachable after retries ({type(err).__name__}{f' HTTP {status}' if status else ''}: {text})"
