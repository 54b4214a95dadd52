"""The service on PostgreSQL while the database goes away and comes back.

The service reaches the server through a TCP relay in this process; closing the relay
(listener and every open connection) is, to the service, a server that went down;
opening it again on the same port, a server that restarted. Requests that need the
store answer 503 with ``Retry-After`` meanwhile (nothing written, no 500), recommendations
for users the service holds go on, and after the restart the same requests succeed,
every acknowledged event is stored once and nothing is learned twice.
"""

import socket
import threading

import pytest
from fastapi.testclient import TestClient

from lifelongrec.serving import KeyRing, RecommenderService, create_app

TS = 2_000_000_000


class Relay:
    """A TCP relay from a local port to the PostgreSQL server, that can be cut."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.socks: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self.accept_loop, args=(listener,), daemon=True).start()

    def accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:
                self.socks += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        """The server goes down: no new connection, every open one cut."""
        self.listener.close()
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture
def relayed_home(home, service_config, postgres_store_url, copy_store):
    """The tiny home with its store on PostgreSQL, reached through a relay."""
    from urllib.parse import urlsplit

    parts = urlsplit(postgres_store_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    relay.start()
    url = postgres_store_url.replace(parts.netloc, f"{parts.username or ''}@127.0.0.1:{relay.port}")
    url = url.replace("://@", "://")
    copy_store(home, url)
    yield home, {**service_config, "store_url": url}, relay
    relay.stop()


def test_the_store_going_away_is_a_503_and_nothing_acknowledged_is_lost(relayed_home):
    home, config, relay = relayed_home
    service = RecommenderService.open(home, config=config)
    app = create_app(service, KeyRing.open_access())
    try:
        with TestClient(app) as client:
            users = sorted(service.live_model.known_users())[:3]

            def send(j):
                return client.post(
                    "/events",
                    json={
                        "user_id": users[j % 3],
                        "item_id": "i000001",
                        "timestamp": TS + j,
                        "event_id": f"ev-{j}",
                    },
                )

            acked = [j for j in range(5) if send(j).status_code == 201]
            assert acked == list(range(5))
            n0 = service.store.n_events
            relay.stop()  # the database goes down
            down = send(5)
            assert down.status_code == 503 and down.headers["retry-after"] == "1"
            body = down.json()
            assert body["error"] == "StoreUnavailableError"
            assert str(relay.port) not in body["detail"]  # no address given to clients
            # users the service holds are still answered by the champion
            for u in users:
                got = client.get(f"/users/{u}/recommendations", params={"k": 5})
                assert got.status_code == 200 and len(got.json()["items"]) == 5
            relay.start()  # the database is back
            assert send(5).status_code == 201  # the client's retry
            assert send(4).json()["n_duplicates"] == 1  # a retried acknowledged event
            stored = service.store.read(after_seq=n0 - 5)
            assert len(stored) == 6 and stored["timestamp"].is_unique
            assert service.store.n_events == n0 + 1
    finally:
        service.close()
