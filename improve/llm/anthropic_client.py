"""Anthropic's Messages API: the JSON object comes back as the input of a forced tool call."""
from typing import Any, Dict

from improve.llm.client import LLMClient, text_reply, user_text


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
        message = self.sdk.messages.create(**kwargs)
        u = message.usage
        usage = {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                 "cache_read_tokens": getattr(u, "cache_read_input_tokens", None) or 0,
                 "cache_write_tokens": getattr(u, "cache_creation_input_tokens", None) or 0}
        raw = message.model_dump(mode="json")
        truncated = message.stop_reason == "max_tokens"
        tool = next((b for b in message.content if b.type == "tool_use" and b.name == request["name"]), None)
        text = "".join(b.text for b in message.content if b.type == "text")
        if tool is not None and isinstance(tool.input, dict) and not truncated:
            return {"data": tool.input, "usage": usage, "raw": raw}
        if request["structured"] and not truncated:
            return {"data": None, "usage": usage, "raw": raw, "error_kind": "no_tool", "text": text,
                    "error": f"no call of the {request['name']} tool in the reply (text: {text[:200]!r}); "
                             f"answer by calling the tool"}
        if tool is not None and isinstance(tool.input, dict):  # cut off, but the tool input parsed: keep it
            return {"data": tool.input, "usage": usage, "raw": raw, "truncated": True}
        return text_reply(text, usage, raw, truncated, request["max_tokens"])
