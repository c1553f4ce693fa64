"""OpenAI's Chat Completions API (and OpenAI-compatible servers): JSON-schema response format,
or plain text parsed tolerantly when the server has no schema support (`llm.structured=false`)."""
from typing import Any, Dict

from .client import LLMClient, LLMUnavailable, api_error_message, text_reply, user_text


class OpenAIClient(LLMClient):
    provider = "openai"
    sdk_class = "OpenAI"

    def _send(self, request: Dict[str, Any]) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = dict(model=request["model"], temperature=request["temperature"],
                                      max_tokens=request["max_tokens"],
                                      messages=[{"role": "system", "content": request["system"]},
                                                {"role": "user", "content": user_text(request)}])
        if request["structured"]:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": request["name"], "schema": request["schema"], "strict": False}}
        try:
            completion = self.sdk.chat.completions.create(**kwargs)
        except self._errors as err:
            raise LLMUnavailable(api_error_message(self.provider, err)) from None
        usage = {"input_tokens": completion.usage.prompt_tokens if completion.usage else 0,
                 "output_tokens": completion.usage.completion_tokens if completion.usage else 0}
        raw = completion.model_dump(mode="json")
        text = completion.choices[0].message.content if completion.choices else ""
        return text_reply(text or "", usage, raw)
