"""A loopback OpenAI-compatible server for throughput benchmarks: every reply after a fixed delay.

    python benchmarks/fake_openai_server.py --port 8911 --delay 0.2

It answers POST /v1/chat/completions and /v1/completions with a fixed, valid body (usage
included) after ``--delay`` seconds. It is a minimal HTTP/1.1 keep-alive server on
asyncio protocols (uvloop when installed), so its own CPU cost stays small next to the
client under test: on a two-core machine a heavier server would cap every client alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

CHAT = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "A short reasoning. <answer>A</answer>"}}],
    "usage": {"prompt_tokens": 42, "completion_tokens": 12, "total_tokens": 54},
}).encode()
COMPLETION = json.dumps({
    "id": "cmpl-bench", "object": "text_completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "finish_reason": "stop", "text": " a continuation.", "logprobs": None}],
    "usage": {"prompt_tokens": 42, "completion_tokens": 4, "total_tokens": 46},
}).encode()


def _response(body: bytes) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


RESPONSES = {b"/v1/chat/completions": _response(CHAT), b"/v1/completions": _response(COMPLETION)}
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class Counter:
    requests = 0
    started = 0.0


class BenchProtocol(asyncio.Protocol):
    """Parses requests (Content-Length bodies only) and answers each after the delay."""

    delay = 0.2

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = b""
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            path = head.split(b" ", 2)[1]
            self.buf = self.buf[end + 4 + length:]
            Counter.requests += 1
            self.loop.call_later(self.delay, self._reply, RESPONSES.get(path, NOT_FOUND))

    def _reply(self, payload: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(payload)


async def serve(host: str, port: int, delay: float) -> None:
    BenchProtocol.delay = delay
    server = await asyncio.get_running_loop().create_server(BenchProtocol, host, port, backlog=4096)
    print(f"listening on http://{host}:{port}/v1 (delay {delay}s)", flush=True)
    Counter.started = time.monotonic()
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8911)
    ap.add_argument("--delay", type=float, default=0.2)
    args = ap.parse_args()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        try:
            runner.run(serve(args.host, args.port, args.delay))
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
