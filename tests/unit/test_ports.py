"""Whether a port is taken, as a server would find it: a restart after Ctrl-C is not refused."""

import errno
import socket

import pytest

from infra.ports import in_use
from local.launcher import exited_on_a_taken_port


def _leave_time_wait_connections(count: int) -> int:
    """A stopped server's port: connections it closed first wait in TIME_WAIT, nothing listens."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    clients = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server's side closes first: its end goes to TIME_WAIT
        clients.append(client)
    server.close()
    for client in clients:
        client.recv(1)  # the server's FIN arrived
        client.close()
    return port


def _plain_bind_refused(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
        return False


def test_a_port_left_with_time_wait_connections_is_free():
    port = _leave_time_wait_connections(5)
    assert _plain_bind_refused(port), "no connection in TIME_WAIT: the test would prove nothing"
    assert not in_use(port)


def test_a_port_a_server_listens_on_is_in_use():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert in_use(server.getsockname()[1])


def test_a_port_a_server_listens_on_with_reuse_address_is_in_use():
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert in_use(server.getsockname()[1])


def test_a_port_a_server_listens_on_for_every_address_is_in_use():
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", 0))
        server.listen()
        assert in_use(server.getsockname()[1])


def test_a_port_nothing_uses_is_free():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert not in_use(port)


def test_a_chosen_port_is_below_the_range_outgoing_connections_take(tmp_path):
    """A port from the ephemeral range could become a connection's own port before the
    child process binds it (a CI run failed on that: EADDRINUSE at the stack's start)."""
    from infra.ports import LOWEST, ephemeral_range, free_port

    low, _ = ephemeral_range()
    ports = {free_port() for _ in range(50)}
    assert all(LOWEST <= port < low for port in ports), sorted(ports)[:5]
    assert not any(in_use(port) for port in ports)


def test_with_no_room_below_the_ephemeral_range_the_os_chooses(tmp_path):
    from infra.ports import free_port

    narrow = tmp_path / "ip_local_port_range"
    narrow.write_text("10500\t60999\n")
    assert free_port(narrow) >= 10500


def test_a_port_something_listens_on_is_never_chosen(monkeypatch):
    import infra.ports

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        busy = listening.getsockname()[1]
        picks = iter([busy, busy, 12345])
        monkeypatch.setattr(infra.ports.random, "randrange", lambda low, high: next(picks))
        monkeypatch.setattr(infra.ports, "ephemeral_range", lambda path=None: (busy + 1, 60999))
        monkeypatch.setattr(infra.ports, "LOWEST", min(busy, 12345))
        assert infra.ports.free_port() == 12345


@pytest.mark.parametrize(
    "log_tail",
    [
        "port 15211 is in use: set PORT=... or stop what uses it",
        "OSError: [Errno 98] Address already in use",
        "OSError: [Errno 98] error while attempting to bind on address ('127.0.0.1', 15211): "
        "address already in use",  # asyncio's wording: the WebSocket gateway (fresh-clone run 13)
    ],
    ids=["make-dev-check", "socket-bind", "asyncio-bind"],
)
def test_a_stack_that_exits_on_a_taken_port_is_started_again(log_tail):
    assert exited_on_a_taken_port(log_tail)


def test_a_stack_that_exits_for_another_reason_is_not_started_again():
    assert not exited_on_a_taken_port("ModuleNotFoundError: No module named 'chalice'")
