"""Webhook delivery that cannot be turned against the service, and never loses an event."""

import socket
import threading
import time

import pytest

from chalicelib import webhooks
from chalicelib.settings import get_settings
from chalicelib.webhooks import outbound
from chalicelib.webhooks.ssrf import Destination, UnsafeUrl, check_url
from tests.conftest import auth
from tests.unit.helpers import get, sleep_job, submit


def deliveries(client, job_id):
    return get(client, f"/jobs/{job_id}/deliveries").json_body["deliveries"]


class RawServer:
    """A TCP server on 127.0.0.1 (or ::1) that answers every connection with `script(conn)`."""

    def __init__(self, script, host: str = "127.0.0.1", port: int = 0, tls=None) -> None:
        self.tls = tls  # an ssl.SSLContext: each connection is a TLS server's
        self.scripted = 0  # connections that reached the script (after any handshake)
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, args=(script,), daemon=True).start()

    def _serve(self, script) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(script, conn), daemon=True).start()

    def _answer(self, script, conn) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.recv(65536)
            self.scripted += 1
            script(conn, self.stopped)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


DRIP_SECONDS = 20  # how long the dripping receiver keeps a request that has no deadline


def dripping(conn, stopped) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    ends = time.monotonic() + DRIP_SECONDS
    while not stopped.wait(0.05) and time.monotonic() < ends:
        conn.sendall(b"X")  # one byte at a time, never ending the head


def malformed(conn, stopped) -> None:
    conn.sendall(b"this is not http\r\n\r\n")


def destination(port: int, host: str = "hooks.test") -> Destination:
    return Destination("http", host, port, "/hook", ("127.0.0.1",))


# -- SSRF: the address checked is the address used ---------------------------------------


def test_a_rebinding_resolver_cannot_redirect_the_delivery(
    client, stack, receiver, no_wait, monkeypatch, container
):
    """The name answers an allowed address while it is checked, then the metadata address:
    the POST goes to the address that was checked, never to a second lookup."""
    container(webhook_timeout_seconds=0.5)
    hook = receiver([200])
    port = int(hook.url.rsplit(":", 1)[1].split("/")[0])
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host, *args, **kwargs):
        if host != "rebind.test":
            return real(host, *args, **kwargs)
        # submit's check, then delivery's check: loopback (allowed locally); then metadata.
        address = "127.0.0.1" if len(lookups) < 2 else "169.254.169.254"
        lookups.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, args[0]))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = f"http://rebind.test:{port}/hook"
    job_id = submit(client, {**sleep_job(), "webhook": {"url": url}}).json_body["jobId"]
    stack.run_stream()
    stack.run_worker()
    stack.run_stream()
    stack.webhook_pump.run_once()
    assert lookups == ["127.0.0.1", "127.0.0.1"]
    assert len(hook.deliveries) == 1
    assert hook.deliveries[0].headers["host"] == f"rebind.test:{port}"
    assert deliveries(client, job_id)[0]["state"] == "delivered"


@pytest.mark.parametrize(
    "address",
    ["100.64.0.1", "198.18.0.1", "192.0.2.1", "169.254.169.254", "::ffff:100.64.0.9", "fc00::1"],
)
def test_addresses_that_are_not_globally_routable_are_refused(strict, address):
    with pytest.raises(UnsafeUrl, match="not public"):
        check_url("https://hooks.example/x", strict, resolver=lambda host, port: [address])


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "169.254.10.1", "fe80::1"])
def test_the_local_stage_never_allows_link_local_or_metadata(address):
    settings = get_settings()
    assert settings.webhook_allow_private
    with pytest.raises(UnsafeUrl):
        check_url("http://hooks.example/x", settings, resolver=lambda host, port: [address])


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.5", "192.168.1.2"])
def test_the_local_stage_allows_receivers_on_the_laptop(address):
    target = check_url("http://hooks.example/x", get_settings(), lambda h, p: [address])
    assert target.addresses == (address,)


# -- one deadline, and anything that is not HTTP is a failed attempt ---------------------


def test_a_receiver_that_drips_bytes_is_cut_off_at_the_deadline():
    server = RawServer(dripping)
    try:
        start = time.monotonic()
        outcome = outbound.post(destination(server.port), b"{}", {}, deadline_seconds=0.5)
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert outcome.status_code is None and "timed out" in outcome.error
    assert outcome.retryable
    assert elapsed < DRIP_SECONDS / 2  # cut at its 0.5 s, not when the receiver stopped


def no_content(conn, stopped) -> None:
    conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")


def post_to(server: RawServer, scheme="http", addresses=("127.0.0.1",), deadline=5.0):
    """One delivery to the server as the host hooks.test resolved to `addresses`; the server
    is closed after it."""
    try:
        target = Destination(scheme, "hooks.test", server.port, "/hook", addresses)
        return outbound.post(target, b"{}", {}, deadline_seconds=deadline)
    finally:
        server.close()


def test_a_receiver_at_an_ipv6_address_is_reached():
    server = RawServer(no_content, host="::1")
    outcome = post_to(server, addresses=("::1",))
    assert (outcome.status_code, outcome.error) == (204, None)


def test_an_address_that_refuses_is_skipped_for_the_next_one_the_host_resolved_to():
    server = RawServer(no_content)  # on 127.0.0.1 only: 127.0.0.2 refuses its port
    outcome = post_to(server, addresses=("127.0.0.2", "127.0.0.1"))
    assert (outcome.status_code, outcome.error) == (204, None)


def test_a_host_whose_every_address_refuses_is_a_network_error():
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))  # bound, never listening: its connect is refused at once
    try:
        target = destination(unused.getsockname()[1])
        outcome = outbound.post(target, b"{}", {}, deadline_seconds=5)
    finally:
        unused.close()
    assert outcome.status_code is None and outcome.error.startswith("network error")
    assert outcome.retryable


def test_a_destination_with_no_address_is_a_network_error_not_a_crash():
    target = Destination("http", "hooks.test", 8080, "/hook", ())
    outcome = outbound.post(target, b"{}", {}, deadline_seconds=1)
    assert outcome.error == "network error: no address to connect to"
    assert outcome.retryable


@pytest.fixture
def test_ca(monkeypatch, tmp_path):
    """A certificate authority the process trusts (SSL_CERT_FILE, which the default TLS
    context reads), standing in for a public CA."""
    import trustme

    authority = trustme.CA()
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return authority


def tls_server(authority, name: str, script=no_content) -> RawServer:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(name).configure_cert(context)
    return RawServer(script, tls=context)


def test_an_https_receiver_is_reached_at_the_pinned_address_under_its_hosts_name(test_ca):
    outcome = post_to(tls_server(test_ca, "hooks.test"), scheme="https")
    assert (outcome.status_code, outcome.error) == (204, None)


def test_a_certificate_for_another_host_at_the_pinned_address_is_refused_before_sending(test_ca):
    """The connection goes to the address the SSRF check pinned, and the certificate is still
    checked against the URL's host: another host's certificate there gets no request."""
    server = tls_server(test_ca, "other.test")
    outcome = post_to(server, scheme="https")
    assert outcome.status_code is None and outcome.error.startswith("TLS error")
    assert server.scripted == 0


def silent(conn, stopped) -> None:
    stopped.wait(DRIP_SECONDS)  # reads the client's first bytes, never answers


def test_a_tls_handshake_never_answered_is_cut_off_at_the_deadline(test_ca):
    server = RawServer(silent)  # takes the connection and the TLS hello, answers nothing
    start = time.monotonic()
    outcome = post_to(server, scheme="https", deadline=0.5)
    elapsed = time.monotonic() - start
    assert outcome.status_code is None and "timed out" in outcome.error
    assert elapsed < DRIP_SECONDS / 2


def full_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A listener whose accept queue is full: the kernel drops further connection attempts,
    so a connect to it is never answered (as a host that drops packets)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    held = []
    while True:  # fill the queue until a connect goes unanswered
        filler = socket.socket()
        filler.settimeout(2)
        held.append(filler)
        try:
            filler.connect(listener.getsockname())
        except TimeoutError:
            return listener, held


def test_a_connect_that_is_never_answered_is_cut_off_at_the_deadline():
    listener, held = full_listener()
    answer: list = []
    try:
        port = listener.getsockname()[1]
        attempt = threading.Thread(
            target=lambda: answer.append(outbound.post(destination(port), b"{}", {}, 0.5)),
            daemon=True,
        )
        attempt.start()
        attempt.join(timeout=60)  # the kernel would give up after about two minutes
    finally:
        for sock in (listener, *held):
            sock.close()
    assert answer, "the connect was not bounded by the attempt's deadline"
    assert answer[0].status_code is None and "timed out" in answer[0].error


def test_a_malformed_answer_is_a_failed_attempt_not_an_exception():
    server = RawServer(malformed)
    try:
        outcome = outbound.post(destination(server.port), b"{}", {}, deadline_seconds=2)
    finally:
        server.close()
    assert outcome.status_code is None and "malformed" in outcome.error
    assert "not http" not in outcome.error  # the log never echoes what another port says
    assert outcome.retryable


def test_a_header_with_a_line_break_is_refused_not_sent():
    server = RawServer(malformed)
    try:
        outcome = outbound.post(
            destination(server.port), b"{}", {"X-A": "b\r\nX-Injected: 1"}, deadline_seconds=1
        )
    finally:
        server.close()
    assert outcome.status_code is None and "cannot carry" in outcome.error
    assert server.connections == 0


def test_a_malformed_answer_is_logged_and_retried(client, stack, no_wait, receiver):
    server = RawServer(malformed)
    try:
        url = f"http://127.0.0.1:{server.port}/hook"
        job_id = submit(client, {**sleep_job(), "webhook": {"url": url}}).json_body["jobId"]
        stack.settle()
    finally:
        server.close()
    log = deliveries(client, job_id)
    assert len(log) == webhooks.MAX_ATTEMPTS
    assert all("malformed" in attempt["error"] for attempt in log)
    assert log[-1]["state"] == "exhausted"


def test_a_transient_dns_failure_is_retried_not_final(
    client, stack, no_wait, receiver, monkeypatch
):
    hook = receiver([200])
    port = int(hook.url.rsplit(":", 1)[1].split("/")[0])
    real = socket.getaddrinfo
    lookups = {"n": 0}

    def flaky(host, *args, **kwargs):
        if host == "flaky.test":
            lookups["n"] += 1
            if lookups["n"] == 2:  # the first delivery's lookup
                raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", args[0]))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", flaky)
    url = f"http://flaky.test:{port}/hook"
    job_id = submit(client, {**sleep_job(), "webhook": {"url": url}}).json_body["jobId"]
    stack.settle()
    log = deliveries(client, job_id)
    assert [attempt["state"] for attempt in log] == ["retrying", "delivered"]
    assert "resolve" in log[0]["error"]
    assert len(hook.deliveries) == 1


# -- a terminal webhook is never lost --------------------------------------------------------


def test_an_sqs_fault_between_storing_the_event_and_queueing_it_loses_nothing(
    client, stack, receiver, monkeypatch
):
    hook = receiver([200])
    job_id = submit(client, {**sleep_job(), "webhook": {"url": hook.url}}).json_body["jobId"]
    stack.run_stream()
    stack.run_worker()  # the task completes; its stream record will create the event
    real_enqueue = webhooks.WebhookDispatcher.enqueue
    faults = {"left": 1}

    def failing_once(self, message, delay=0):
        if faults["left"]:
            faults["left"] -= 1
            raise ConnectionError("SQS unreachable")
        return real_enqueue(self, message, delay)

    monkeypatch.setattr(webhooks.WebhookDispatcher, "enqueue", failing_once)
    stack.run_stream()  # stores the event, then fails to queue it: the record is retried
    assert faults["left"] == 0
    stack.settle()
    assert len(hook.deliveries) == 1
    assert deliveries(client, job_id)[0]["state"] == "delivered"


# -- manual redelivery -------------------------------------------------------------------------


def test_manual_redelivery_is_rate_limited_per_task_with_retry_after(client, stack, receiver):
    hook = receiver([200])
    job_id = submit(client, {**sleep_job(), "webhook": {"url": hook.url}}).json_body["jobId"]
    stack.settle()
    first = client.http.post(f"/jobs/{job_id}/webhook", headers=auth())
    second = client.http.post(f"/jobs/{job_id}/webhook", headers=auth())
    assert first.status_code == 202
    assert second.status_code == 429
    assert 1 <= int(second.headers["Retry-After"]) <= webhooks.REDELIVERY_INTERVAL_SECONDS
    stack.settle()
    assert len(hook.deliveries) == 2


def test_every_manual_attempt_appears_in_the_delivery_log(
    client, stack, receiver, no_wait, monkeypatch
):
    monkeypatch.setattr(webhooks, "REDELIVERY_INTERVAL_SECONDS", 0)
    hook = receiver([500, 200])
    job_id = submit(client, {**sleep_job(), "webhook": {"url": hook.url}}).json_body["jobId"]
    stack.run_stream()
    stack.run_worker()
    stack.run_stream()
    stack.webhook_pump.run_once()  # attempt 1 fails; attempt 2 is scheduled
    for _ in range(2):
        assert client.http.post(f"/jobs/{job_id}/webhook", headers=auth()).status_code == 202
    stack.settle()
    log = deliveries(client, job_id)
    assert len(log) == len(hook.deliveries) == 4
    assert sum(attempt["manual"] for attempt in log) == 2


# -- the SSRF check, case by case (fast: no AWS) ----------------------------------------------


def public(host, port):
    return ["93.184.216.34"]


def test_strict_stages_refuse_plain_http(strict):
    with pytest.raises(UnsafeUrl, match="https"):
        check_url("http://hooks.example/x", strict, resolver=public)


@pytest.mark.parametrize(
    ("url", "port"), [("https://hooks.example/x", 443), ("https://hooks.example:8443/x", 8443)]
)
def test_the_destination_carries_the_port_and_path(strict, url, port):
    asked = []

    def resolver(host, port):
        asked.append((host, port))
        return ["93.184.216.34"]

    target = check_url(url + "?a=1", strict, resolver=resolver)
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example", port)
    assert target.path == "/x?a=1"
    assert asked == [("hooks.example", port)]


def test_the_local_stage_still_accepts_https():
    assert check_url("https://hooks.example/", get_settings(), public).scheme == "https"


def test_plain_http_defaults_to_port_80_where_allowed():
    target = check_url("http://hooks.example", get_settings(), resolver=public)
    assert (target.port, target.path) == (80, "/")


@pytest.mark.parametrize(
    "url",
    [
        "https:///x",
        "https://user:pw@hooks.example/",
        "https://user@hooks.example/",
        "https://:pw@hooks.example/",
        "https://hooks.example:99999/",
    ],
)
def test_urls_without_a_host_with_credentials_or_a_bad_port_are_refused(strict, url):
    with pytest.raises(UnsafeUrl):
        check_url(url, strict, resolver=public)


def test_a_host_that_resolves_to_nothing_is_unresolvable_not_forbidden(strict):
    from chalicelib.webhooks.ssrf import UnresolvableHost

    with pytest.raises(UnresolvableHost):
        check_url("https://hooks.example/", strict, resolver=lambda h, p: [])


def test_one_forbidden_address_among_public_ones_refuses_the_host(strict):
    with pytest.raises(UnsafeUrl, match="not public"):
        check_url("https://hooks.example/", strict, lambda h, p: ["93.184.216.34", "10.0.0.1"])


@pytest.mark.parametrize(
    "address", ["224.0.0.1", "0.0.0.0", "::", "ff02::1", "fe80::1%eth0", "::ffff:169.254.169.254"]
)
def test_multicast_unspecified_and_scoped_link_local_are_refused_even_locally(address):
    with pytest.raises(UnsafeUrl):
        check_url("http://hooks.example/", get_settings(), resolver=lambda h, p: [address])


@pytest.mark.parametrize("address", ["::ffff:127.0.0.1", "::ffff:10.1.2.3", "127.0.0.1"])
def test_ipv4_mapped_private_addresses_are_refused_on_strict_stages(strict, address):
    with pytest.raises(UnsafeUrl, match="not public"):
        check_url("https://hooks.example/", strict, resolver=lambda h, p: [address])


def test_a_public_ipv4_mapped_address_is_allowed(strict):
    target = check_url("https://hooks.example/", strict, lambda h, p: ["::ffff:93.184.216.34"])
    assert target.addresses == ("::ffff:93.184.216.34",)


@pytest.mark.parametrize(
    "address",
    [
        "::a9fe:a9fe",  # IPv4-compatible form of 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 of the metadata address
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:0a00:0001::1",  # 6to4 of 10.0.0.1
    ],
)
def test_ipv6_forms_that_embed_an_internal_ipv4_address_are_refused(strict, address):
    with pytest.raises(UnsafeUrl, match="not public"):
        check_url("https://hooks.example/", strict, resolver=lambda h, p: [address])


def test_ipv6_forms_that_embed_the_metadata_address_are_refused_even_locally():
    for address in ("::a9fe:a9fe", "2002:a9fe:a9fe::1"):
        with pytest.raises(UnsafeUrl):
            check_url("http://hooks.example/", get_settings(), lambda h, p, a=address: [a])


def test_a_nat64_form_of_a_public_address_is_allowed(strict):
    target = check_url("https://hooks.example/", strict, lambda h, p: ["64:ff9b::5db8:d822"])
    assert target.addresses == ("64:ff9b::5db8:d822",)


def test_a_teredo_address_is_checked_for_the_ipv4_address_it_carries(strict):
    with pytest.raises(UnsafeUrl, match="not public"):
        check_url(
            "https://hooks.example/", strict, lambda h, p: ["2001:0:4136:e378:8000:63bf:3fff:fdd2"]
        )


def test_a_public_ipv6_address_is_not_mistaken_for_an_embedded_private_one(strict):
    """Its last 32 bits spell 10.0.0.1, but it embeds nothing: it is allowed."""
    target = check_url("https://hooks.example/", strict, lambda h, p: ["2606:4700::a00:1"])
    assert target.addresses == ("2606:4700::a00:1",)


@pytest.mark.parametrize("port", [22, 25, 110, 389, 1023])
def test_a_webhook_to_a_service_port_is_refused_before_any_lookup(strict, port):
    """The delivery log would otherwise tell an attacker which ports of a host are open."""
    asked = []

    def resolver(host, port):
        asked.append(port)
        return ["93.184.216.34"]

    with pytest.raises(UnsafeUrl, match="port must be 80, 443 or from 1024"):
        check_url(f"https://hooks.example:{port}/", strict, resolver=resolver)
    assert asked == []


@pytest.mark.parametrize("port", [80, 443, 1024, 8443, 65535])
def test_web_and_unprivileged_ports_are_accepted(strict, port):
    assert check_url(f"https://hooks.example:{port}/", strict, resolver=public).port == port


def test_a_name_server_that_never_answers_is_given_up_on(monkeypatch):
    """An attacker's slow name server must not hold the delivery for the resolver's retries."""
    from chalicelib.webhooks import ssrf

    release = threading.Event()

    def never_answers(*args, **kwargs):
        release.wait(10)
        raise socket.gaierror("too late")

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", never_answers)
    try:
        with pytest.raises(OSError, match=r"no answer within 0\.2 s"):
            ssrf.resolve("slow.example", 443, timeout=0.2)
    finally:
        release.set()


def test_a_lookup_failure_reaches_the_caller(monkeypatch):
    from chalicelib.webhooks import ssrf

    def fails(*args, **kwargs):
        raise socket.gaierror("Name or service not known")

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", fails)
    with pytest.raises(socket.gaierror, match="not known"):
        ssrf.resolve("nowhere.example", 443)


def test_a_prompt_answer_is_returned():
    from chalicelib.webhooks import ssrf

    assert ssrf.resolve("127.0.0.1", 80) == ["127.0.0.1"]


def test_a_slow_host_lookup_is_spent_from_the_attempts_deadline(
    client, stack, receiver, monkeypatch
):
    """The attack: a name server that takes its 5 s on every lookup. Outside the 15 s send
    deadline, a batch of 3 deliveries took 59.7 s against the function's 60 s."""
    from chalicelib.bootstrap import container

    hook = receiver([200])
    port = int(hook.url.rsplit(":", 1)[1].split("/")[0])
    attempt_clock = {"now": 0.0}  # the dispatcher's monotonic clock: injected, not wall time
    real = socket.getaddrinfo

    def slow(host, *args, **kwargs):
        if host == "slow.test":
            attempt_clock["now"] += 5.0  # the name server's 5 s
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", args[0]))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    dispatcher = container().webhooks
    deadlines = []

    def recording(destination, body, headers, deadline, method):
        deadlines.append(deadline)
        return outbound.post(destination, body, headers, deadline, method)

    monkeypatch.setattr(dispatcher, "monotonic", lambda: attempt_clock["now"], raising=False)
    monkeypatch.setattr(dispatcher, "sender", recording)
    url = f"http://slow.test:{port}/hook"
    job_id = submit(client, {**sleep_job(), "webhook": {"url": url}}).json_body["jobId"]
    stack.settle()
    assert [attempt["state"] for attempt in deliveries(client, job_id)] == ["delivered"]
    assert deadlines == [get_settings().webhook_timeout_seconds - 5.0]
