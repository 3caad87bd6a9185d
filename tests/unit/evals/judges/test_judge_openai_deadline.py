"""The openai-compatible judge's timeout bounds a whole request: a server that accepts the connection and
never answers, or answers a byte at a time, is cut off at timeout_s, retried, then a JudgeError."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tamperlab.errors import JudgeError
from tamperlab.evals.judges import JudgeItem, build_judge

ANSWER = b'{"choices": [{"message": {"content": "REFUSAL"}}]}'


def serve(handle) -> tuple[int, threading.Event]:
    """A TCP server on 127.0.0.1 handing each connection to ``handle`` in a thread; set the event to stop."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=handle, args=(conn, stop), daemon=True).start()
        server.close()

    threading.Thread(target=loop, daemon=True).start()
    return server.getsockname()[1], stop


def silent(conn, stop):
    stop.wait(30)
    conn.close()


def trickle(conn, stop):
    conn.recv(65536)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(ANSWER)
    for byte in head + ANSWER:
        if stop.wait(0.1):
            break
        try:
            conn.send(bytes([byte]))
        except OSError:
            break
    conn.close()


def prompt_answer(conn, stop):
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(ANSWER) + ANSWER)
    conn.close()


@pytest.mark.parametrize("handler", [silent, trickle])
def test_a_server_that_never_finishes_answering_is_cut_off(handler):
    port, stop = serve(handler)
    judge = build_judge(
        "openai-compatible",
        {
            "base_url": f"http://127.0.0.1:{port}/v1",
            "model": "m",
            "timeout_s": 0.5,
            "max_retries": 1,
            "backoff_s": 0,
            "concurrency": 2,
        },
    )
    started = time.monotonic()
    try:
        with pytest.raises(JudgeError, match="failed 2 time"):
            judge.judge([JudgeItem("q", "a"), JudgeItem("q2", "a2")])
    finally:
        stop.set()
    assert time.monotonic() - started < 5  # 2 attempts of 0.5 s each, not the ~6 s a trickle takes


def test_a_prompt_server_still_answers():
    port, stop = serve(prompt_answer)
    judge = build_judge(
        "openai-compatible", {"base_url": f"http://127.0.0.1:{port}/v1", "model": "m", "timeout_s": 5}
    )
    try:
        assert [v.refused for v in judge.judge([JudgeItem("q", "a")])] == [True]
    finally:
        stop.set()
