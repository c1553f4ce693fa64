"""A local HTTP server on 127.0.0.1 speaking Anthropic's Messages API and OpenAI's Chat Completions.

The real `anthropic` and `openai` SDKs talk to it. Replies come from a script: a function
`(role, request_json) -> reply`, where the role is read from the tool / response-format name
the client asked for, and a reply is one of
  {"json": {...}}                 the structured answer (tool input / JSON content)
  {"text": "..."}                 plain text (no tool call; for OpenAI, the message content)
  {"status": 429, "body": {...}}  an HTTP error (headers: retry-after 0)
  {"sleep": seconds, ...}         wait first (to provoke client timeouts), then the rest
Usage is counted as characters / 4, so token accounting is deterministic.
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List

ROLES = {"propose_pipeline": "architect", "choose_group": "analyst", "edit_group": "engineer"}


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class ScriptedLLMServer:
    def __init__(self, script: Callable[[str, Dict[str, Any]], Dict[str, Any]]):
        self.script = script
        self.requests: List[Dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                outer.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                       "body": body})
                if self.path.endswith("/messages"):
                    outer._anthropic(self, body)
                elif self.path.endswith("/chat/completions"):
                    outer._openai(self, body)
                else:
                    self._send(404, {"error": {"type": "not_found", "message": self.path}})

            def _send(self, status: int, payload: Dict[str, Any]):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                if status == 429 or status >= 500:
                    self.send_header("retry-after", "0")
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def anthropic_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _reply(self, role: str, body: Dict[str, Any]) -> Dict[str, Any]:
        reply = dict(self.script(role, body))
        if reply.get("sleep"):
            time.sleep(reply.pop("sleep"))
        return reply

    def _anthropic(self, handler, body):
        tools = body.get("tools") or []
        name = tools[0]["name"] if tools else "edit_group"
        role = ROLES.get(name, "engineer")
        reply = self._reply(role, body)
        if "status" in reply:
            return handler._send(reply["status"], reply.get("body", {"type": "error", "error": {
                "type": "rate_limit_error" if reply["status"] == 429 else "api_error", "message": "scripted"}}))
        prompt = json.dumps(body.get("system", "")) + json.dumps(body.get("messages", []))
        if "json" in reply:
            content = [{"type": "tool_use", "id": "toolu_1", "name": name, "input": reply["json"]}]
            out = json.dumps(reply["json"])
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": reply.get("text", "")}]
            out, stop = reply.get("text", ""), "end_turn"
        handler._send(200, {"id": "msg_1", "type": "message", "role": "assistant", "model": body.get("model"),
                            "content": content, "stop_reason": stop, "stop_sequence": None,
                            "usage": {"input_tokens": _tokens(prompt), "output_tokens": _tokens(out)}})

    def _openai(self, handler, body):
        fmt = (body.get("response_format") or {}).get("json_schema") or {}
        text = json.dumps(body.get("messages", []))
        name = fmt.get("name") or next((n for n in ROLES if n in text), "edit_group")
        reply = self._reply(ROLES.get(name, "engineer"), body)
        if "status" in reply:
            return handler._send(reply["status"], reply.get("body", {"error": {"message": "scripted", "type": "x"}}))
        content = json.dumps(reply["json"]) if "json" in reply else reply.get("text", "")
        handler._send(200, {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
                            "model": body.get("model"),
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": content}}],
                            "usage": {"prompt_tokens": _tokens(text), "completion_tokens": _tokens(content),
                                      "total_tokens": _tokens(text) + _tokens(content)}})
