"""The one HTTP client (edgeprof.uplink.http) against real servers on loopback: retries of
repeatable requests with Retry-After, the response-size bound, TLS verification by default, and
the envelope check push makes (edgeprof.report.envelope, no numpy)."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeprof.errors import CollectorUnreachableError, InputError
from edgeprof.report import envelope
from edgeprof.report.store import save_report
from edgeprof.testing.standin_collector import StandinCollector, sample_report
from edgeprof.uplink.http import Backoff, BaseUrl, HttpClient
from edgeprof.uplink.pull import CollectorApi
from edgeprof.uplink.spool import push, spooled

TOKEN = "http-client-token"


def no_jitter() -> float:
    return 0.0


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, str, bytes]:
    """A collector directory holding one report (pushed through a stand-in)."""
    store, up = tmp_path / "store", tmp_path / "up"
    report_id, data = sample_report()
    save_report(data, report_id, store)
    with StandinCollector(up, TOKEN) as c:
        assert push(store, c.url, TOKEN).sent == 1
    return up, report_id, data


def test_reads_are_retried_and_honour_retry_after(stored: tuple[Path, str, bytes]) -> None:
    up, report_id, data = stored
    delays: list[float] = []
    backoff = Backoff(sleep=delays.append, rand=no_jitter)
    with StandinCollector(up, TOKEN, fail_first=2, retry_after_s=7) as c:
        client = HttpClient.make(c.url, TOKEN, attempts=3, backoff=backoff)
        resp = client.request("GET", f"/v1/reports/{report_id}", limit=len(data))
    assert resp.status == 200
    assert resp.body == data
    assert delays == [7.0, 7.0]  # jitter 0 here: the wait is the collector's Retry-After


def test_retries_are_bounded_and_the_last_answer_is_returned(
    stored: tuple[Path, str, bytes],
) -> None:
    up, report_id, _ = stored
    delays: list[float] = []
    with StandinCollector(up, TOKEN, fail_first=10) as c:
        client = HttpClient.make(c.url, TOKEN, attempts=2, backoff=Backoff(sleep=delays.append))
        resp = client.request("GET", f"/v1/reports/{report_id}")
        assert resp.status == 500
        assert len(delays) == 1
        post = client.request("POST", "/v1/reports", b"x", "application/msgpack")
        assert post.status == 500
        assert len(delays) == 1  # a POST is not repeatable: one attempt


def test_retry_after_is_capped(stored: tuple[Path, str, bytes]) -> None:
    up, report_id, _ = stored
    delays: list[float] = []
    backoff = Backoff(cap_s=2.0, sleep=delays.append, rand=no_jitter)
    with StandinCollector(up, TOKEN, fail_first=1, retry_after_s=3600) as c:
        client = HttpClient.make(c.url, TOKEN, attempts=2, backoff=backoff)
        assert client.request("GET", f"/v1/reports/{report_id}").status == 200
    assert delays == [2.0]


def test_the_response_size_is_bounded_and_the_client_stays_usable(
    stored: tuple[Path, str, bytes],
) -> None:
    up, report_id, data = stored
    with StandinCollector(up, TOKEN) as c:
        client = HttpClient.make(c.url, TOKEN)
        with pytest.raises(CollectorUnreachableError, match=r"more than 100"):
            client.request("GET", f"/v1/reports/{report_id}", limit=100)
        again = client.request("GET", f"/v1/reports/{report_id}", limit=len(data))
        assert again.body == data
        api = CollectorApi.make(c.url, TOKEN)
        assert api.fetch(report_id) == data


def test_refused_connection_names_the_cause(tmp_path: Path) -> None:
    client = HttpClient.make("http://127.0.0.1:9", TOKEN, attempts=1)
    with pytest.raises(CollectorUnreachableError, match="ConnectionRefusedError") as info:
        client.request("GET", "/v1/reports")
    assert info.value.transient
    assert TOKEN not in str(info.value)


def test_urls_and_tokens_are_checked() -> None:
    assert BaseUrl.parse("https://[::1]:8600/base/").url("/v1/x") == "https://[::1]:8600/base/v1/x"
    for url in ("ftp://x", "http://u:p@h", "http://h/?q=1", "http://h/#f", "http://h:99999"):
        with pytest.raises(InputError):
            BaseUrl.parse(url)
    with pytest.raises(InputError, match="control characters"):
        HttpClient.make("http://h", "tok\nen")
    with pytest.raises(InputError, match="positive"):
        HttpClient.make("http://h", TOKEN, timeout_s=0)


def test_the_envelope_check_push_makes_names_the_id_or_the_damage() -> None:
    report_id, data = sample_report()
    assert envelope.report_id(data, "x") == report_id
    with pytest.raises(InputError, match="truncated"):
        envelope.report_id(data[:50], "x")


# --- TLS: a real handshake against a self-signed certificate ------------------------------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a fresh self-signed certificate; (url, cert file)."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgeprof-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"reports": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.handle_error = lambda *_: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert_file
    finally:
        server.shutdown()
        server.server_close()


def test_tls_is_verified_by_default(tmp_path: Path, tls_server: tuple[str, Path]) -> None:
    url, cert_file = tls_server
    store = tmp_path / "store"
    report_id, data = sample_report()
    save_report(data, report_id, store)
    delays: list[float] = []
    result = push(store, url, TOKEN, sleep=delays.append)
    assert result.failed == 1
    assert "TLS certificate not accepted" in (result.error or "")
    assert delays == []  # a refused certificate is not retried
    assert [p.stem for p in spooled(store)] == [report_id]
    trusted = HttpClient(BaseUrl.parse(url), TOKEN, ca_file=str(cert_file))
    assert trusted.request("GET", "/v1/reports").status == 200  # the same server, once trusted
