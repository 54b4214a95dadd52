"""Connections on a real uvicorn server (loopback): an error answer keeps a keep-alive
connection usable, and a refused body closes it honestly."""

import http.client
import socket
import threading
import time

import pytest
import uvicorn

from lifelongrec.serving import create_app

READ_KEY = "read-key-0123456789"  # the keys fixture of conftest.py
WRITE_KEY = "write-key-0123456789"


@pytest.fixture
def server(service, keys):
    app = create_app(service, keys, max_body_bytes=10_000)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield port
    srv.should_exit = True
    thread.join(timeout=10)


def test_a_500_keeps_the_keep_alive_connection(server, service, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "similar", broken)
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    headers = {"X-API-Key": READ_KEY}
    conn.request("GET", "/items/i000001/similar", headers=headers)
    r = conn.getresponse()
    assert r.status == 500 and b"internal error" in r.read()
    assert r.getheader("connection") != "close"
    for _ in range(3):  # the same connection answers the next requests
        conn.request("GET", "/health", headers=headers)
        r = conn.getresponse()
        assert r.status == 200, r.read()
        r.read()
    conn.close()


def test_4xx_answers_keep_the_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    headers = {"X-API-Key": WRITE_KEY, "Content-Type": "application/json"}
    for body in (b'{"user_id": NaN}', b"not json", b'{"user_id":"\\ud800"}'):
        conn.request("POST", "/events", body=body, headers=headers)
        r = conn.getresponse()
        assert r.status == 422, r.read()
        r.read()
    conn.request("GET", "/health")
    assert conn.getresponse().status == 200
    conn.close()


def test_a_chunked_body_over_the_limit_is_413_and_closes(server):
    sock = socket.create_connection(("127.0.0.1", server), timeout=10)
    head = (
        "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {WRITE_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    sock.sendall(head.encode())
    chunk = b"a" * 4_000
    try:
        for _ in range(10):  # 40 kB, over the 10 kB limit
            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    except OSError:
        pass  # the server may close before all of it is sent
    answer = b""
    while True:
        try:
            part = sock.recv(65536)
        except OSError:
            break
        if not part:
            break
        answer += part
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"connection: close" in answer.lower()
