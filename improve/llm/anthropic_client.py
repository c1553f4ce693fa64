"""Anthropic's Messages API: the JSON object comes back as the input of a forced tool call."""
from typing import Any, Dict

from .client import LLMClient, LLMUnavailable, api_error_message, text_reply, user_text


class AnthropicClient(LLMClient):
    provider = "anthropic"
    sdk_class = "Anthropic"

    def _send(self, request: Dict[str, Any]) -> Dict[str, Any]:
        # The installed Messages API takes no temperature: llm.temperature applies to OpenAI-compatible servers.
        kwargs: Dict[str, Any] = dict(model=request["model"], max_tokens=request["max_tokens"],
                                      system=request["system"],
                                      messages=[{"role": "user", "content": user_text(request)}])
        if request["structured"]:
            kwargs["tools"] = [{"name": request["name"], "description": "Return your answer through this tool.",
                                "input_schema": request["schema"]}]
            kwargs["tool_choice"] = {"type": "tool", "name": request["name"]}
        try:
            message = self.sdk.messages.create(**kwargs)
        except self._errors as err:
            raise LLMUnavailable(api_error_message(self.provider, err)) from None
        usage = {"input_tokens": message.usage.input_tokens, "output_tokens": message.usage.output_tokens}
        raw = message.model_dump(mode="json")
        tool = next((b for b in message.content if b.type == "tool_use" and b.name == request["name"]), None)
        text = "".join(b.text for b in message.content if b.type == "text")
        if tool is not None and isinstance(tool.input, dict):
            return {"data": tool.input, "error": None, "usage": usage, "raw": raw}
        if request["structured"]:
            return {"data": None, "usage": usage, "raw": raw,
                    "error": f"no call of the {request['name']} tool in the reply (text: {text[:200]!r}); "
                             f"answer by calling the tool"}
        return text_reply(text, usage, raw)
