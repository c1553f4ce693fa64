"""What can go wrong with an LLM call, told apart: unreachable, refused for good, or a reply we cannot use.

Each message names what happened and what to do. Permanent refusals (a bad request, a wrong key, an
unknown model) are not retried by the SDKs and are never called "unreachable".
"""
from typing import Optional

KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


class LLMUnavailable(RuntimeError):
    """The call failed: `permanent` for refusals that will not change by retrying (400, 401/403, 404)."""

    def __init__(self, message: str, permanent: bool = False, status: Optional[int] = None):
        super().__init__(message)
        self.permanent, self.status = permanent, status


class BudgetExhausted(RuntimeError):
    """llm.budget_usd or llm.max_calls is spent: the run ends cleanly."""


class ReplyError(ValueError):
    """The reply holds no usable structured content. `kind`: truncated, not_json, no_tool or empty."""

    def __init__(self, message: str, kind: str = "not_json", text: str = ""):
        super().__init__(message)
        self.kind, self.text = kind, text


def api_failure(provider: str, err: Exception, llm) -> LLMUnavailable:
    """An SDK exception as an LLMUnavailable whose message says what happened and what to do."""
    status = getattr(err, "status_code", None)
    detail = " ".join(str(err).split())[:300]
    where = f" at {llm.base_url}" if llm.base_url else ""
    if status in (401, 403):
        return LLMUnavailable(f"{provider}{where} refused the API key (HTTP {status}): check {KEY_ENV[provider]}, or "
                              f"use llm=heuristic", permanent=True, status=status)
    if status == 404:
        return LLMUnavailable(f"{provider}{where} does not know the model or endpoint (HTTP 404: {detail}): check "
                              f"llm.model and llm.base_url", permanent=True, status=status)
    if status is not None and 400 <= status < 500 and status not in (408, 409, 429):
        return LLMUnavailable(f"{provider}{where} rejected the request (HTTP {status}: {detail}); a prompt longer "
                              f"than the server's context or an unsupported parameter does this: give the server a "
                              f"larger context, or lower llm.max_tokens", permanent=True, status=status)
    if "Timeout" in type(err).__name__:
        return LLMUnavailable(f"{provider}{where} did not answer within llm.timeout={llm.timeout} s "
                              f"({llm.retries + 1} tries): raise llm.timeout for a slow (local) model")
    if status is None:
        return LLMUnavailable(f"{provider}{where} unreachable after {llm.retries + 1} tries "
                              f"({type(err).__name__}: {detail}): check llm.base_url and the network")
    return LLMUnavailable(f"{provider}{where} failed after {llm.retries + 1} tries (HTTP {status}: {detail})",
                          status=status)
