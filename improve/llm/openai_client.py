"""OpenAI's Chat Completions API (and OpenAI-compatible servers): JSON-schema response format,
or plain text parsed tolerantly when the server has no schema support (`llm.structured=false`).
Reasoning models (o-series, gpt-5) take `max_completion_tokens` and no temperature."""
from typing import Any, Dict

from improve.llm.client import LLMClient, text_reply, user_text

REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def is_reasoning_model(model: str) -> bool:
    return model.startswith(REASONING_PREFIXES)


class OpenAIClient(LLMClient):
    provider = "openai"
    sdk_class = "OpenAI"

    def _send(self, request: Dict[str, Any]) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = dict(model=request["model"],
                                      messages=[{"role": "system", "content": request["system"]},
                                                {"role": "user", "content": user_text(request)}])
        if is_reasoning_model(request["model"]):
            kwargs["max_completion_tokens"] = request["max_tokens"]
        else:
            kwargs.update(max_tokens=request["max_tokens"], temperature=request["temperature"])
        if request["structured"]:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": request["name"], "schema": request["schema"], "strict": False}}
        completion = self.sdk.chat.completions.create(**kwargs)
        usage = {"input_tokens": completion.usage.prompt_tokens if completion.usage else 0,
                 "output_tokens": completion.usage.completion_tokens if completion.usage else 0}
        raw = completion.model_dump(mode="json")
        choice = completion.choices[0] if completion.choices else None
        text = choice.message.content if choice else ""
        truncated = bool(choice) and choice.finish_reason == "length"
        return text_reply(text or "", usage, raw, truncated, request["max_tokens"])
