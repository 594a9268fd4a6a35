"""A small OpenAI-compatible HTTP server for tests: a real (tiny) model behind /v1/completions and
/v1/chat/completions, on 127.0.0.1 with an ephemeral port, in a background thread.

    with OpenAIServer() as server:                  # loads tiny-llama, or pass backend=...
        server.fail_next(2, status=429)             # the next 2 requests answer 429 (Retry-After: 0)
        server.delay_next(1, 2.0)                   # the next request sleeps 2 s before answering
        OpenAIBackend(BackendConfig(kind="openai", base_url=server.base_url, ...))
        server.count                                # requests received, failed ones included

Answers come from `TransformersBackend.complete` with the request's parameters, in OpenAI's JSON
shape (choices with text or message, finish_reason, usage). No chat template: a chat request's
message contents, joined by newlines, are the prompt, so a one-message chat request continues the
same text as /v1/completions would. Requests are served concurrently, generation one at a time.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpenAIServer:
    def __init__(self, backend=None, model: str = "tiny-llama"):
        if backend is None:
            from llmkit.selfinstruct.backends import BackendConfig
            from llmkit.selfinstruct.local import TransformersBackend

            backend = TransformersBackend(BackendConfig(model=model))
        self.backend = backend
        self.model = model
        self.received: list[tuple[str, dict]] = []  # (path, request body) in arrival order
        self._faults: list[tuple[str, object]] = []  # ("fail", status) or ("delay", seconds), one per request
        self._lock = threading.Lock()  # guards received and _faults
        self._generate_lock = threading.Lock()  # one generate() at a time
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- control

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def fail_next(self, n: int, status: int = 429, message: str = "injected failure") -> None:
        """The next n requests answer `status` with an OpenAI-style error body (429 adds Retry-After: 0)."""
        with self._lock:
            self._faults += [("fail", (status, message))] * n

    def delay_next(self, n: int, seconds: float) -> None:
        """The next n requests sleep `seconds` before answering (to trip client timeouts)."""
        with self._lock:
            self._faults += [("delay", seconds)] * n

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self._faults.clear()

    def start(self) -> OpenAIServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="openai-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -------------------------------------------------------------- serving

    def _next_fault(self, path: str, body: dict):
        with self._lock:
            self.received.append((path, body))
            return self._faults.pop(0) if self._faults else None

    def answer(self, path: str, body: dict) -> tuple[int, dict, dict]:
        """-> (status, headers, JSON body) for one request."""
        fault = self._next_fault(path, body)
        if fault and fault[0] == "delay":
            time.sleep(fault[1])
        elif fault:
            status, message = fault[1]
            headers = {"Retry-After": "0"} if status == 429 else {}
            return status, headers, _error(message, "rate_limit_error" if status == 429 else "server_error")
        chat = path.endswith("/chat/completions")
        if not (chat or path.endswith("/completions")):
            return 404, {}, _error(f"no route {path}", "not_found_error")
        if chat:
            prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        else:
            prompt = body.get("prompt", "")
            prompt = prompt[0] if isinstance(prompt, list) else prompt
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 16
        with self._generate_lock:
            [c] = self.backend.complete(
                [prompt], max_tokens=max_tokens, temperature=body.get("temperature", 1.0),
                top_p=body.get("top_p", 1.0), stop=stop, presence_penalty=body.get("presence_penalty", 0.0),
                frequency_penalty=body.get("frequency_penalty", 0.0), seed=body.get("seed"),
            )
            tok = self.backend.tokenizer
            n_prompt, n_out = len(tok(prompt).input_ids), len(tok(c.text).input_ids)
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish_reason}
        else:
            choice = {"index": 0, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason}
        with self._lock:
            n = len(self.received)
        return 200, {}, {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{n}", "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()), "model": body.get("model", self.model), "choices": [choice],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out},
        }


def _error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _handler(server: OpenAIServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the openai SDK's connection pool expects

        def do_POST(self):
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            except json.JSONDecodeError as e:
                return self._send(400, {}, _error(f"invalid JSON: {e}", "invalid_request_error"))
            try:
                status, headers, payload = server.answer(self.path, body)
            except Exception as e:  # a test-server bug should read as a 500, not a hung client
                status, headers, payload = 500, {}, _error(f"{type(e).__name__}: {e}", "server_error")
            self._send(status, headers, payload)

        def _send(self, status: int, headers: dict, payload: dict):
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and hung up
                pass

        def log_message(self, *args):  # quiet
            pass

    return Handler
