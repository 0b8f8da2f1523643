"""realtime.sender against the management stub, over real HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from unittest import mock

import boto3
import botocore.auth
import botocore.config
import botocore.session
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devtools.management_stub import ManagementStub
from realtime import sender as sender_module
from realtime.sender import ConnectionGone, SendError, SendReport, Sender
from tests.management_fixtures import TEST_REGION, TEST_TOKEN, make_sender, stub, test_credentials  # noqa: F401

IDS = ["L0SM9cOFvHcCIhw=", "a+b/c=", "plain", "++//==", "with space", "é-unicode"]


# -- delivery --------------------------------------------------------------------------------
def test_bodies_arrive_intact(stub, make_sender):
    bodies = {cid: f'{{"to":"{cid}"}}'.encode() for cid in IDS}
    bodies["binary"] = bytes(range(256)) * 4
    bodies["large"] = b"x" * 120_000
    bodies["empty"] = b""
    stub.register(*bodies)
    report = make_sender().send_many(bodies.items())
    assert report == SendReport(sent=len(bodies), gone=[], failed=[])
    for cid, body in bodies.items():
        assert stub.received(cid) == [body]


def test_str_data_is_utf8_encoded(stub, make_sender):
    stub.register("a")
    make_sender().send_many([("a", "héllo")])
    assert stub.received("a") == ["héllo".encode()]


def test_gone_ids_are_reported_and_others_delivered(stub, make_sender):
    live = [f"live{i}=" for i in range(20)]
    stub.register(*live)
    gone = ["gone1=", "gone/2+"]
    msgs = [(cid, b"m") for cid in live[:10]] + [(gone[0], b"m")] + [(cid, b"m") for cid in live[10:]] + [(gone[1], b"m")]
    report = make_sender().send_many(msgs)
    assert report.sent == 20
    assert sorted(report.gone) == sorted(gone)
    assert report.failed == []
    for cid in live:
        assert stub.received(cid) == [b"m"]
    for cid in gone:
        assert stub.count(cid) == 1  # 410 is never retried


def test_429_then_200_is_retried_and_delivered(stub, make_sender):
    stub.register("t", "other")
    stub.script("t", 429, 429)
    report = make_sender(max_attempts=4).send_many([("t", b"hello"), ("other", b"x")])
    assert report == SendReport(sent=2, gone=[], failed=[])
    assert stub.received("t") == [b"hello"]
    assert stub.count("t") == 3


def test_503_then_200_is_retried(stub, make_sender):
    stub.register("t")
    stub.script("t", 503)
    assert make_sender().send_many([("t", b"x")]).sent == 1
    assert stub.count("t") == 2


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_persistent_500_fails_after_max_attempts_others_delivered(stub, make_sender):
    stub.register("bad", *[f"ok{i}" for i in range(10)])
    stub.fail("bad", 500)
    msgs = [(f"ok{i}", b"x") for i in range(5)] + [("bad", b"x")] + [(f"ok{i}", b"x") for i in range(5, 10)]
    # A handler on the sender's own logger: other code may stop propagation (Powertools).
    handler, log = ListHandler(), logging.getLogger("realtime.sender")
    log.addHandler(handler)
    try:
        report = make_sender(max_attempts=3).send_many(msgs)
    finally:
        log.removeHandler(handler)
    assert report.sent == 10
    assert report.failed == ["bad"]
    assert report.gone == []
    assert stub.count("bad") == 3
    warnings = [r for r in handler.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and getattr(warnings[0], "recipient") == "bad"
    text = " ".join(r.getMessage() + repr(r.__dict__) for r in handler.records)
    assert TEST_TOKEN not in text and "test/secret+key" not in text


@pytest.mark.parametrize("status", [400, 403, 413])
def test_other_4xx_fail_without_retry(stub, make_sender, status):
    stub.register("x", "y")
    stub.fail("x", status)
    report = make_sender().send_many([("x", b"1"), ("y", b"2")])
    assert report.failed == ["x"] and report.sent == 1
    assert stub.count("x") == 1


def test_timeouts_are_retried(stub, make_sender):
    stub.register("slow", "fast")
    stub.script("slow", "hang")
    report = make_sender(timeout=0.3).send_many([("slow", b"s"), ("fast", b"f")])
    assert report == SendReport(sent=2, gone=[], failed=[])
    assert stub.count("slow") == 2
    assert stub.received("slow") == [b"s"]


def test_dropped_connection_is_retried(stub, make_sender):
    stub.register("d")
    stub.script("d", "drop")
    assert make_sender().send_many([("d", b"x")]).sent == 1
    assert stub.count("d") == 2


def test_timeout_until_max_attempts_is_failed(stub, make_sender):
    stub.register("slow")
    stub.fail("slow", "hang")
    report = make_sender(timeout=0.2, max_attempts=2).send_many([("slow", b"s")])
    assert report.failed == ["slow"] and report.sent == 0


def test_backoff_is_full_jitter_exponential_and_capped(stub, make_sender):
    stub.register("bad")
    stub.fail("bad", 500)
    calls = []
    real_uniform = sender_module.random.uniform

    def spy(a, b):
        calls.append((a, b))
        return real_uniform(a, b) / 100

    with mock.patch.object(sender_module.random, "uniform", side_effect=spy):
        make_sender(max_attempts=5, backoff_base=0.05, backoff_cap=0.15).send_many([("bad", b"x")])
    assert calls == [(0, 0.05), (0, 0.1), (0, 0.15), (0, 0.15)]


# -- bounds -----------------------------------------------------------------------------------
def test_in_flight_never_exceeds_concurrency():
    with ManagementStub(latency=0.02, accept_all=True) as s:
        sender = Sender(s.endpoint, region=TEST_REGION, credentials=test_credentials(), concurrency=8)
        try:
            report = sender.send_many((f"id{i}", b"x") for i in range(200))
        finally:
            sender.close()
        assert report.sent == 200
        assert 2 <= s.max_in_flight <= 8  # concurrent, and bounded
        assert s.stats()["connections"] <= 8  # keep-alive: connections reused


def test_retries_hold_their_slot(stub, make_sender):
    """Backoff sleeps count as in flight: the bound covers retries too."""
    stub.latency = 0.01
    ids = [f"r{i}" for i in range(40)]
    stub.register(*ids)
    for cid in ids:
        stub.script(cid, 429)
    report = make_sender(concurrency=4).send_many((cid, b"x") for cid in ids)
    assert report.sent == 40
    assert stub.max_in_flight <= 4


def test_messages_are_pulled_lazily(stub, make_sender):
    stub.accept_all = True
    stub.latency = 0.005
    concurrency = 4
    pulled = 0
    ahead = []

    def messages():
        nonlocal pulled
        for i in range(150):
            with stub._lock:  # noqa: SLF001 - read the stub's counters consistently
                completed = stub.requests_total - stub.in_flight
            ahead.append(pulled - completed)
            pulled += 1
            yield f"lazy{i}", b"x"

    report = make_sender(concurrency=concurrency).send_many(messages())
    assert report.sent == 150 and pulled == 150
    # Never more than `concurrency` messages taken but not answered yet.
    assert max(ahead) <= concurrency
    assert max(ahead) >= 2  # and it did pull ahead while requests were in flight


def test_iterable_error_propagates(stub, make_sender):
    stub.accept_all = True

    def messages():
        yield "a", b"x"
        raise RuntimeError("dynamodb unavailable")

    with pytest.raises(RuntimeError, match="dynamodb unavailable"):
        make_sender().send_many(messages())


def test_empty_batch(make_sender):
    assert make_sender().send_many([]) == SendReport(0, [], [])


# -- single calls -----------------------------------------------------------------------------
def test_send_delivers_and_raises_connection_gone(stub, make_sender):
    stub.register("live=")
    s = make_sender()
    s.send("live=", b"hello")
    assert stub.received("live=") == [b"hello"]
    with pytest.raises(ConnectionGone) as info:
        s.send("dead=", b"hello")
    assert info.value.connection_id == "dead="
    assert stub.count("dead=") == 1


def test_send_raises_send_error_when_it_finally_fails(stub, make_sender):
    stub.register("bad")
    stub.fail("bad", 500)
    with pytest.raises(SendError) as info:
        make_sender(max_attempts=2).send("bad", b"x")
    assert info.value.status == 500 and info.value.connection_id == "bad"
    assert not isinstance(info.value, ConnectionGone)


def test_get_connection_and_delete(stub, make_sender):
    stub.register("c+1=", source_ip="198.51.100.9")
    s = make_sender()
    info = s.get_connection("c+1=")
    assert info["identity"]["sourceIp"] == "198.51.100.9"
    assert {"connectedAt", "lastActiveAt"} <= info.keys()
    assert s.get_connection("unknown") is None
    assert s.delete_connection("c+1=") is True
    assert s.delete_connection("c+1=") is False
    assert s.get_connection("c+1=") is None
    with pytest.raises(ConnectionGone):
        s.send("c+1=", b"x")


# -- checking many connections (the sweep) --------------------------------------------------
def test_check_connections_sorts_answers_into_live_gone_and_unknown(stub, make_sender):
    stub.register("live=", "throttled-once=", "refused=", "broken=", "slow=")
    stub.script("throttled-once=", 429)  # retried, then 200
    stub.script("slow=", "hang")  # one timeout, then 200
    stub.fail("refused=", 403)  # not retried
    stub.fail("broken=", 500)  # still failing after the retries
    check = make_sender(max_attempts=3, timeout=0.5).check_connections(
        ["live=", "gone=", "throttled-once=", "refused=", "broken=", "slow="])
    assert sorted(check.live) == ["live=", "slow=", "throttled-once="]
    assert check.gone == ["gone="]
    assert sorted(check.unknown) == ["broken=", "refused="]
    assert stub.count("refused=", "GET") == 1 and stub.count("broken=", "GET") == 3
    assert stub.count("live=", "POST") == 0  # asked about, never posted to


def test_check_connections_asks_concurrently_within_the_bound_and_signs(stub, make_sender):
    ids = [f"c{i}=" for i in range(60)]
    stub.register(*ids)
    stub.latency = 0.02
    check = make_sender(concurrency=8).check_connections(ids + ids[:5])  # repeats asked once
    assert sorted(check.live) == sorted(ids) and not check.gone and not check.unknown
    assert 2 <= stub.max_in_flight <= 8
    assert all(stub.count(cid, "GET") == 1 for cid in ids)
    last = stub.recent_requests()[-1]
    assert last["method"] == "GET" and last["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert last["headers"]["X-Amz-Security-Token"] == TEST_TOKEN


def test_check_connections_of_nothing_asks_nothing(stub, make_sender):
    check = make_sender().check_connections([])
    assert (check.live, check.gone, check.unknown) == ([], [], [])
    assert stub.stats()["requests"] == 0


def test_endpoint_with_stage_prefix():
    with ManagementStub(stage="prod") as s:
        s.register("a=")
        sender = Sender(s.endpoint.rstrip("/") + "/", region=TEST_REGION, credentials=test_credentials())
        try:
            assert s.endpoint.endswith("/prod")
            assert sender.send_many([("a=", b"x")]).sent == 1
            assert s.recent_requests()[-1]["path"] == "/prod/@connections/a%3D"
        finally:
            sender.close()


# -- connections --------------------------------------------------------------------------------
@pytest.mark.parametrize("max_attempts", [1, 3])
def test_keepalive_reconnects_after_server_drops_idle_connections(stub, make_sender, max_attempts):
    stub.register("k")
    s = make_sender(max_attempts=max_attempts)
    s.send("k", b"1")
    assert stub.stats()["connections"] == 1
    s.send("k", b"2")
    assert stub.stats()["connections"] == 1  # reused
    assert stub.drop_idle_connections() == 1
    # The pooled connection is now closed by the server; the next request must transparently
    # reopen it, even with max_attempts=1 (the resend does not count as an attempt).
    s.send("k", b"3")
    report = s.send_many([("k", b"4")])
    assert report.sent == 1
    assert stub.drop_idle_connections() == 1
    assert s.send_many([("k", b"5")] * 3).sent == 3
    assert stub.received("k") == [b"1", b"2", b"3", b"4", b"5", b"5", b"5"]


def test_stale_connection_resent_once_through_client(stub, make_sender):
    """The stale path proper: the idle connection is closed after it was taken from the pool."""
    stub.register("k")
    s = make_sender(max_attempts=1)
    s.send("k", b"1")
    stub.drop_idle_connections()
    import time

    time.sleep(0.05)  # the FIN has arrived, but our loop is not running and has not seen it
    s.send("k", b"2")
    st = s._local.state  # noqa: SLF001
    assert (st.client.stale_retries, st.client.connections_opened) == (1, 2)
    assert stub.received("k") == [b"1", b"2"]


def test_threads_and_a_running_event_loop(stub, make_sender):
    """Worker threads each get their own loop, while another loop runs in the main thread;
    and a call from inside running async code works too (it runs on a helper thread)."""
    stub.accept_all = True
    s = make_sender(concurrency=8)
    reports = []

    async def main():
        loop = asyncio.get_running_loop()
        futs = [loop.run_in_executor(None, s.send_many, [(f"t{t}-{i}", b"x") for i in range(50)])
                for t in range(4)]
        reports.extend(await asyncio.gather(*futs))
        reports.append(s.send_many([("inline", b"y")]))  # this thread's loop is running

    asyncio.run(main())
    assert [r.sent for r in reports] == [50, 50, 50, 50, 1]
    assert stub.received("inline") == [b"y"]
    # several threads used: each kept its own state
    assert len(s._states) >= 2  # noqa: SLF001


def test_concurrent_threads_same_sender(stub, make_sender):
    stub.accept_all = True
    s = make_sender(concurrency=4)
    results = {}

    def work(t):
        results[t] = s.send_many((f"th{t}-{i}", b"x") for i in range(100)).sent

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: 100, 1: 100, 2: 100, 3: 100}
    assert stub.stats()["delivered"] == 400


def test_close_then_use_raises(make_sender):
    s = make_sender()
    s.send_many([])
    s.close()
    s.close()
    with pytest.raises(RuntimeError):
        s.send_many([("x", b"y")])


# -- signing ------------------------------------------------------------------------------------
def test_signed_request_carries_auth_headers_and_verifies(stub, make_sender):
    stub.register("sig+/=")
    make_sender().send("sig+/=", b'{"hello":1}')
    req = stub.recent_requests()[-1]
    headers = req["headers"]
    assert headers["X-Amz-Security-Token"] == TEST_TOKEN
    assert headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=ASIATESTACCESSKEY/" + headers["X-Amz-Date"][:8]
        + f"/{TEST_REGION}/execute-api/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, "
    )
    # botocore, given the request exactly as received, computes the same signature.
    when = dt.datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    request = AWSRequest(method="POST", url=f"http://{headers['Host']}{req['path']}", data=b'{"hello":1}')
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        botocore.auth.SigV4Auth(test_credentials(), "execute-api", TEST_REGION).add_auth(request)
    assert request.headers["Authorization"] == headers["Authorization"]


def test_unsigned_sender_sends_no_auth(stub, make_sender):
    stub.register("u")
    make_sender(credentials=None).send("u", b"x")
    headers = stub.recent_requests()[-1]["headers"]
    assert "Authorization" not in headers and "X-Amz-Security-Token" not in headers


class CountingCredentials:
    """Stands in for RefreshableCredentials: rotates on every freeze."""

    def __init__(self):
        self.calls = 0

    def get_frozen_credentials(self):
        self.calls += 1
        return Credentials("ASIAROTATING", "secret", f"token-{self.calls}").get_frozen_credentials()


def test_credentials_frozen_per_batch_not_cached_across_batches(stub, make_sender):
    stub.accept_all = True
    creds = CountingCredentials()
    s = make_sender(credentials=creds)
    s.send_many([("a", b"1"), ("b", b"2")])
    assert stub.recent_requests()[-1]["headers"]["X-Amz-Security-Token"] == "token-1"
    s.send_many([("a", b"3")])
    assert stub.recent_requests()[-1]["headers"]["X-Amz-Security-Token"] == "token-2"
    assert creds.calls == 2


def test_from_session_uses_the_standard_chain(stub, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-session-token")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    stub.register("e")
    s = Sender.from_session(stub.endpoint, botocore.session.Session(), concurrency=2)
    try:
        s.send("e", b"x")
    finally:
        s.close()
    headers = stub.recent_requests()[-1]["headers"]
    assert headers["X-Amz-Security-Token"] == "env-session-token"
    assert "Credential=ASIAFROMENV/" in headers["Authorization"]
    assert "/eu-central-1/execute-api/" in headers["Authorization"]


def test_from_session_region_from_endpoint(monkeypatch):
    for var in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    s = Sender.from_session("https://abc123.execute-api.eu-west-2.amazonaws.com/prod", botocore.session.Session())
    assert s.region == "eu-west-2"
    s.close()


# -- the stub itself (other engineers rely on it) ------------------------------------------------
def test_boto3_client_against_stub_raises_gone_exception(stub):
    stub.register("known=")
    client = boto3.client(
        "apigatewaymanagementapi", endpoint_url=stub.endpoint, region_name=TEST_REGION,
        aws_access_key_id="AKID", aws_secret_access_key="secret", aws_session_token="tok",
    )
    client.post_to_connection(ConnectionId="known=", Data=b"from boto3")
    assert stub.received("known=") == [b"from boto3"]
    assert client.get_connection(ConnectionId="known=")["Identity"]["SourceIp"]
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId="unknown", Data=b"x")
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId="unknown")
    client.delete_connection(ConnectionId="known=")
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId="known=", Data=b"x")
    stub.fail("known=", 429)
    with pytest.raises(client.exceptions.LimitExceededException):
        boto3.client(
            "apigatewaymanagementapi", endpoint_url=stub.endpoint, region_name=TEST_REGION,
            aws_access_key_id="AKID", aws_secret_access_key="secret",
            config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}),
        ).post_to_connection(ConnectionId="known=", Data=b"x")


def test_stub_gone_response_shape(stub):
    import json
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(stub.endpoint + "/@connections/nope", data=b"x"))
    assert info.value.code == 410
    assert info.value.headers["x-amzn-ErrorType"] == "GoneException"
    assert json.loads(info.value.read()) == {"message": None}


# -- the HTTP client's framing and TLS ------------------------------------------------------------
async def _raw_server(answers):
    """A raw asyncio server answering each request with the next bytes of `answers`."""

    async def handle(reader, writer):
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                answer = answers.pop(0)
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_http_client_framing():
    from realtime.http import HTTPClient

    answers = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close",
        b"HTTP/1.1 410 Gone\r\nContent-Length: 17\r\nx-amzn-ErrorType: GoneException\r\n\r\n{\"message\":null}\n",
    ]

    async def main():
        server = await _raw_server(answers)
        port = server.sockets[0].getsockname()[1]
        client = HTTPClient("http", "127.0.0.1", port, f"127.0.0.1:{port}")
        got = [await client.request("POST", "/@connections/a", "", b"x", 2.0) for _ in range(5)]
        await client.aclose()
        server.close()
        return got, client.connections_opened

    got, opened = asyncio.run(main())
    assert [(s, b) for s, _, b in got] == [
        (200, b"hello world"), (201, b"abc"), (204, b""), (200, b"until close"), (410, b'{"message":null}\n'),
    ]
    assert got[4][1]["x-amzn-errortype"] == "GoneException"
    assert opened == 2  # kept alive until the read-until-close answer


def test_http_client_tls(tmp_path):
    """HTTPS with certificate verification (API Gateway is always HTTPS)."""
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from realtime.http import HTTPClient

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cafile=str(cert_file))
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"] * 3

    async def main():
        async def handle(reader, writer):
            while answers:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                    await reader.readexactly(1)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                writer.write(answers.pop(0))
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        good = HTTPClient("https", "localhost", port, f"localhost:{port}", ssl_context=client_ctx)
        got = [await good.request("POST", "/@connections/a", "", b"x", 2.0) for _ in range(2)]
        # without trusting the self-signed certificate, the handshake must fail
        bad = HTTPClient("https", "localhost", port, f"localhost:{port}")
        with pytest.raises(ssl.SSLCertVerificationError):
            await bad.request("POST", "/@connections/a", "", b"x", 2.0)
        await good.aclose()
        server.close()
        return got, good.connections_opened

    got, opened = asyncio.run(main())
    assert [(s, b) for s, _, b in got] == [(200, b"ok"), (200, b"ok")]
    assert opened == 1


def test_states_of_ended_threads_are_disposed(stub, make_sender):
    stub.accept_all = True
    s = make_sender()
    t = threading.Thread(target=lambda: s.send_many([("a", b"x")]))
    t.start()
    t.join()
    (old,) = s._states  # noqa: SLF001
    assert not old.loop.is_closed()
    s.send_many([("b", b"y")])  # a new thread state: the dead thread's one is closed
    assert old.loop.is_closed() and old not in s._states  # noqa: SLF001
