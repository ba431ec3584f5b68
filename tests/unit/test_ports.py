"""Whether a port is taken, as a server would find it: a restart after Ctrl-C is not refused."""

import errno
import socket

from infra.ports import in_use


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
