"""A local HTTP server on 127.0.0.1 speaking Anthropic's Messages API and OpenAI's Chat Completions.

The real `anthropic` and `openai` SDKs talk to it. Replies come from a script: a function
`(role, request_json) -> reply`, where the role is read from the tool / response-format name
the client asked for, and a reply is one of
  {"json": {...}}                 the structured answer (tool input / JSON content)
  {"text": "..."}                 plain text (no tool call; for OpenAI, the message content)
  {"status": 429, "body": {...}}  an HTTP error (headers: retry-after 0): 400 context overflow, 401 bad key, ...
  {"sleep": seconds, ...}         wait first (to provoke client timeouts), then the rest
  {"drip": seconds, ...}          send the reply one byte at a time, `seconds` apart (each read within a timeout)
  {"truncated": "..."}            text cut off at max_tokens (finish_reason "length" / stop_reason "max_tokens")
  {"echo": True}                  the prompt echoed back as plain text (what small base models do)
  {"usage": {...}, ...}           extra usage fields (Anthropic's cache_read_input_tokens, ...)
Usage is counted as characters / 4, so token accounting is deterministic.
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List

from omegaconf import OmegaConf

from improve.agents import Context
from improve.config.schema import LLMConfig

ROLES = {"propose_pipeline": "architect", "choose_group": "analyst", "edit_group": "engineer"}


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _text(reply: Dict[str, Any], prompt: str) -> str:
    if reply.get("echo"):
        return prompt
    return reply["truncated"] if "truncated" in reply else reply.get("text", "")


class ScriptedLLMServer:
    def __init__(self, script: Callable[[str, Dict[str, Any]], Dict[str, Any]]):
        self.script = script
        self.requests: List[Dict[str, Any]] = []
        self.drips: Dict[int, float] = {}  # request thread -> seconds between the bytes of its reply
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
                drip = outer.drips.pop(threading.get_ident(), 0)
                try:
                    for start in range(0, len(data), 1 if drip else len(data) or 1):
                        self.wfile.write(data[start:start + 1] if drip else data)
                        if drip:
                            self.wfile.flush()
                            time.sleep(drip)
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
        if reply.get("drip"):
            self.drips[threading.get_ident()] = reply.pop("drip")
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
            out = _text(reply, body["messages"][-1]["content"])
            content = [{"type": "text", "text": out}]
            stop = "max_tokens" if "truncated" in reply else "end_turn"
        handler._send(200, {"id": "msg_1", "type": "message", "role": "assistant", "model": body.get("model"),
                            "content": content, "stop_reason": stop, "stop_sequence": None,
                            "usage": {"input_tokens": _tokens(prompt), "output_tokens": _tokens(out),
                                      **reply.get("usage", {})}})

    def _openai(self, handler, body):
        fmt = (body.get("response_format") or {}).get("json_schema") or {}
        text = json.dumps(body.get("messages", []))
        name = fmt.get("name") or next((n for n in ROLES if n in text), "edit_group")
        reply = self._reply(ROLES.get(name, "engineer"), body)
        if "status" in reply:
            return handler._send(reply["status"], reply.get("body", {"error": {"message": "scripted", "type": "x"}}))
        content = json.dumps(reply["json"]) if "json" in reply else _text(reply, body["messages"][-1]["content"])
        handler._send(200, {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
                            "model": body.get("model"),
                            "choices": [{"index": 0, "finish_reason": "length" if "truncated" in reply else "stop",
                                         "message": {"role": "assistant", "content": content}}],
                            "usage": {"prompt_tokens": _tokens(text), "completion_tokens": _tokens(content),
                                      "total_tokens": _tokens(text) + _tokens(content)}})


# ---------------------------------------------------------------- scripts and settings the tests share
SECRET = "sk-test-THIS-MUST-NEVER-BE-WRITTEN"
ARCHITECT = {"rationale": "tiny digits: a small ResNet from scratch, no flips",
             "augment": {"image_size": 32, "train_transforms": [{"name": "Affine", "translate_percent": [-0.05, 0.05],
                                                                 "p": 0.5}],
                         "mean": [0.3], "std": [0.35], "mixup_alpha": 0.0, "cutmix_alpha": 0.0, "mix_prob": 1.0,
                         "switch_prob": 0.5},
             "model": {"name": "test_resnet", "pretrained": False, "pretrained_file": None, "drop_rate": 0.1,
                       "drop_path_rate": 0.0, "kwargs": {}},
             "trainer": {"epochs": 1, "batch_size": 64, "optimizer": "adamw", "lr": 0.003, "weight_decay": 0.05,
                         "momentum": 0.9, "scheduler": "cosine", "warmup_epochs": 0.0, "min_lr": 1e-5,
                         "step_epochs": 30, "step_gamma": 0.1, "label_smoothing": 0.0, "grad_clip": 0.0,
                         "early_stopping": 0}}


class Script:
    """Per-role queues of replies; when a queue runs dry its last reply repeats."""

    def __init__(self, **queues):
        self.queues = {role: list(replies) for role, replies in queues.items()}
        self.seen = []

    def __call__(self, role, body):
        self.seen.append(role)
        queue = self.queues[role]
        return queue.pop(0) if len(queue) > 1 else queue[0]


def good_script(**over):
    queues = {
        "architect": [{"json": ARCHITECT}],
        "analyst": [{"json": {"group": "trainer", "feedback": "lower the learning rate"}},
                    {"json": {"group": "model", "feedback": "a bit more dropout"}}],
        "engineer": [{"json": {"rationale": "too aggressive", "config": {"lr": -1}}},  # invalid: repaired next
                     {"json": {"rationale": "halve the lr", "config": {**ARCHITECT["trainer"], "lr": 0.0015}}},
                     {"json": {"rationale": "more dropout", "config": {**ARCHITECT["model"], "drop_rate": 0.3}}}],
    }
    queues.update(over)
    return Script(**queues)


def llm_cfg(provider, url, **over):
    return OmegaConf.merge(OmegaConf.structured(LLMConfig), {"provider": provider, "base_url": url, "retries": 2,
                                                              "timeout": 5, **over})


def url_for(server, provider):
    return server.anthropic_url if provider == "anthropic" else server.openai_url


def ctx(description="handwritten digits"):
    profile = {"name": "digits", "description": description, "num_classes": 10, "channels": 1, "train_images": 900,
               "native_size": {"median": [8, 8]}, "pixel_mean": [0.3], "pixel_std": [0.3],
               "pretrained_reachable": False, "constraints": {}}
    return Context(profile=profile, incumbent={"round": 0, "pipeline": {g: ARCHITECT[g] for g in
                                                                         ("augment", "model", "trainer")},
                                               "val_acc": 0.9, "summary": {"diagnosis": "ok"}},
                   rounds=[], round=1)
