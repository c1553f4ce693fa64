"""One structured LLM call, whatever the provider: schema in, JSON object out, accounted and audited.

Each call goes through the provider's own SDK (`anthropic`, `openai`), whose retries handle
429 / 5xx / connection errors / timeouts with exponential backoff; `llm.timeout` bounds each read and,
with `llm.retries`, the whole call (`deadline`: a server that drips its reply cannot hold the run). Refusals (400, 401/403, 404) are not retried (`errors.py`).
Around it: a replay cache keyed by the request, token and cost accounting with budget stops
(`pricing.py`), and an audit file per call (no keys: they live only in the SDK client, read from
the environment). The SDKs' and httpx's request logs stay off the console unless `llm.verbose`.
"""
import hashlib
import importlib
import json
import logging
import os
import re
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from improve.config.paths import round_dir
from improve.journal.events import LLMCall
from improve.llm.errors import KEY_ENV, BudgetExhausted, LLMUnavailable, ReplyError, api_failure
from improve.llm.pricing import PRICES, cost_usd, price_of

DEFAULT_MODELS = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-4o"}
REQUEST_LOGGERS = ("httpx", "httpcore", "openai", "anthropic")  # and their namesakes (httpx2, ...)


def quiet_request_logs(verbose: bool) -> None:
    """Keep "HTTP Request: POST ..." and "Retrying request ..." off the console, unless `llm.verbose`."""
    names = {n for n in logging.root.manager.loggerDict if n.split(".")[0].startswith(REQUEST_LOGGERS)}
    for name in names | set(REQUEST_LOGGERS):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


@dataclass
class Reply:
    data: Dict[str, Any]
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cached: bool


def parse_json_text(text: str, truncated: bool = False, max_tokens: Optional[int] = None) -> Dict[str, Any]:
    """Tolerant JSON-object extraction for servers without schema support: fences, prose around it."""
    if not text or not text.strip():
        raise ReplyError("the reply is empty; answer with one JSON object", "empty", text or "")
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    candidates = [fenced.group(1)] if fenced else []
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start:end + 1])
    candidates.append(text)
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):  # not JSON, a number over Python's digit limit, nested too deeply
            continue
        if isinstance(value, dict):
            return value
    if truncated:
        raise ReplyError(f"the reply was cut off at llm.max_tokens={max_tokens} tokens before its JSON object was "
                         f"complete; answer much more briefly: only the keys you change, a one-sentence rationale",
                         "truncated", text)
    raise ReplyError(f"the reply is not a JSON object: {text.strip()[:200]!r}; answer with one JSON object",
                     "not_json", text)


def text_reply(text: str, usage: Dict[str, int], raw: Any, truncated: bool = False,
               max_tokens: Optional[int] = None) -> Dict[str, Any]:
    """A `_send` result from the reply's text: the JSON object in it, or why there is none."""
    try:
        return {"data": parse_json_text(text, truncated, max_tokens), "usage": usage, "raw": raw}
    except ReplyError as err:
        return {"data": None, "error": str(err), "error_kind": err.kind, "text": text, "usage": usage, "raw": raw}


MAX_BACKOFF_S = 8.0  # the longest the SDKs wait between two tries of a call


class LLMClient(ABC):
    """Provider-independent part: cache, accounting, budget, audit. Subclasses implement `_send`."""

    provider = ""  # SDK module name: anthropic, openai
    sdk_class = ""  # its client class

    def __init__(self, llm, cache_dir: Optional[Path]):
        module = importlib.import_module(self.provider)
        self._errors = (module.APIError,)
        self.cfg = llm
        self.sdk = self._connect()
        quiet_request_logs(llm.verbose)  # after the SDK made its loggers
        self.model = llm.model or DEFAULT_MODELS[self.provider]
        self.prices = {**PRICES, **{k: dict(v) for k, v in (llm.prices or {}).items()}}
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

    def _connect(self):
        """The SDK client. The key stays inside it; local servers (vLLM, Ollama, llama.cpp) accept any key."""
        module, llm = importlib.import_module(self.provider), self.cfg
        return getattr(module, self.sdk_class)(api_key=os.environ.get(KEY_ENV[self.provider]) or "not-set",
                                               base_url=llm.base_url or None, timeout=llm.timeout,
                                               max_retries=llm.retries)

    def deadline(self) -> float:
        """Seconds one call may take in all: every try under llm.timeout, and the SDK's waits between tries."""
        return self.cfg.timeout * (self.cfg.retries + 1) + MAX_BACKOFF_S * self.cfg.retries

    def _send_within_deadline(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """`_send`, bounded in total time: the SDK's timeout bounds each read, so a server that sends its reply a
        byte at a time would otherwise hold the run for as long as it likes."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm-call")
        deadline = self.deadline()
        try:
            return pool.submit(self._send, request).result(timeout=deadline)
        except FutureTimeout:
            stalled, self.sdk = self.sdk, self._connect()
            stalled.close()  # its connection goes, and the call's thread ends with an error
            where = f" at {self.cfg.base_url}" if self.cfg.base_url else ""
            raise LLMUnavailable(f"{self.provider}{where} had not finished its reply after {deadline:.0f} s "
                                 f"(llm.timeout={self.cfg.timeout} s per read, {self.cfg.retries + 1} tries): a "
                                 f"server sending its answer slower than that; check the server, or raise "
                                 f"llm.timeout") from None
        finally:
            pool.shutdown(wait=False)

    def model_for(self, role: str) -> str:
        return (self.cfg.role_models or {}).get(role) or self.model

    def unpriced_models(self) -> list:
        """Models this run may call that have no known price: a budget cannot count them."""
        models = {self.model, *(m for m in (self.cfg.role_models or {}).values() if m)}
        return sorted(m for m in models if price_of(m, self.prices) is None)

    def cost(self, model: str, usage: Dict[str, int]) -> float:
        return cost_usd(price_of(model, self.prices), usage)

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
            start = time.perf_counter()
            try:
                response, cached_hit = self._send_within_deadline(request), False
            except (*self._errors, LLMUnavailable) as err:
                failure = err if isinstance(err, LLMUnavailable) else api_failure(self.provider, err, self.cfg)
                self._journal_call(role, round_, model, {}, 0.0, False, error=str(failure),
                                   permanent=failure.permanent, seconds=round(time.perf_counter() - start, 2))
                raise failure from None
            response["seconds"] = round(time.perf_counter() - start, 2)
            self._cache_put(key, response)
        usage = response["usage"]
        cost = 0.0 if cached_hit else self.cost(model, usage)
        if not cached_hit:
            self.calls += 1
            self.cost_usd += cost
            self.input_tokens += usage["input_tokens"] + usage.get("cache_read_tokens", 0) + \
                usage.get("cache_write_tokens", 0)
            self.output_tokens += usage["output_tokens"]
        self._audit(role, round_, request, response, cost, cached_hit)
        self._journal_call(role, round_, model, usage, cost, cached_hit, error=response.get("error"),
                           error_kind=response.get("error_kind"), seconds=None if cached_hit else response["seconds"])
        if response.get("error"):
            raise ReplyError(response["error"], response.get("error_kind") or "not_json", response.get("text", ""))
        return Reply(response["data"], model, usage["input_tokens"], usage["output_tokens"], cost, cached_hit)

    def _journal_call(self, role: str, round_: int, model: str, usage: Dict[str, int], cost: float, cached: bool,
                      **outcome: Any) -> None:
        if self.journal is None:
            return
        self.journal.write(LLMCall(round=round_, role=role, model=model, cached=cached,
                                   input_tokens=usage.get("input_tokens", 0), output_tokens=usage.get("output_tokens", 0),
                                   cache_read_tokens=usage.get("cache_read_tokens", 0),
                                   cache_write_tokens=usage.get("cache_write_tokens", 0), cost_usd=round(cost, 6),
                                   totals=self.totals(), extra={k: v for k, v in outcome.items() if v is not None}))

    def totals(self) -> Dict[str, Any]:
        return {"calls": self.calls, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cost_usd": round(self.cost_usd, 6)}

    @abstractmethod
    def _send(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """The provider's wire: {"data": {...} | None, "error"?: str, "error_kind"?: str, "usage": {...}, "raw": ...}.
        SDK errors propagate (the caller classifies them)."""

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
        folder = round_dir(self.run_dir, round_) / "llm"
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
