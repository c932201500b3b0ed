"""Attacks on the collector's queries and open routes (issue 13, item 10): never a 5xx for bad
input, and ``/metrics`` only with a token unless the collector is started with
``--public-metrics``.
"""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeprof.testing.attacks import Attack
from edgeprof.testing.collector_server import Deployment, deploy
from edgeprof.testing.sample_reports import minimal_report

pytestmark = pytest.mark.integration

ODD_NUMBERS = ["²", "١٢", "\uff11\uff12", "+5", "-1", " 5", "5 ", "1e3", "0x10", "9" * 40, "", "٣"]


def test_odd_numbers_in_the_query_are_4xx(
    collector: Deployment, attack: Callable[[str], Attack]
) -> None:
    a = attack("non-ASCII digits and other odd numbers in limit, created_after, created_before")
    for name in ("limit", "created_after", "created_before"):
        for value in ODD_NUMBERS:
            q = urllib.parse.urlencode({name: value})
            status, _, _ = collector.request(
                "GET", f"/v1/reports?{q}", token=collector.pipeline_token
            )
            assert a.attempt(status == 400), (name, value, status)
    assert a.failed == 0


def test_repeated_tag_filters_are_capped(
    collector: Deployment, attack: Callable[[str], Attack]
) -> None:
    a = attack("thousands of tag= filters in one query")
    for n in (33, 500, 2000):
        q = "&".join(f"tag=k{i}:v" for i in range(n))
        status, _, _ = collector.request("GET", f"/v1/reports?{q}", token=collector.pipeline_token)
        assert a.attempt(status == 400), (n, status)
    q = "&".join(f"tag=k{i}:v" for i in range(32))
    assert collector.request("GET", f"/v1/reports?{q}", token=collector.pipeline_token)[0] == 200
    assert a.failed == 0


def test_odd_content_length_is_4xx(collector: Deployment, attack: Callable[[str], Attack]) -> None:
    a = attack("Content-Length with non-ASCII digits")
    for value in ("²", "١٢"):
        conn = http.client.HTTPConnection("127.0.0.1", collector.server.port, timeout=30)
        try:
            conn.putrequest("POST", "/v1/reports")
            conn.putheader("Authorization", f"Bearer {collector.device_token}")
            conn.putheader("Content-Type", "application/msgpack")
            conn.putheader("Content-Length", value.encode())
            conn.endheaders()
            status = conn.getresponse().status
        finally:
            conn.close()
        assert a.attempt(400 <= status < 500), (value, status)
    assert a.failed == 0


def test_metrics_need_a_token(collector: Deployment, attack: Callable[[str], Attack]) -> None:
    a = attack("/metrics without a token, or with a device token")
    assert a.attempt(collector.request("GET", "/metrics")[0] == 401)
    assert a.attempt(collector.request("GET", "/metrics", token="epd_nobody")[0] == 401)
    assert a.attempt(collector.request("GET", "/metrics", token=collector.device_token)[0] == 403)
    for token in (collector.pipeline_token, collector.admin_token):
        status, body, _ = collector.request("GET", "/metrics", token=token)
        assert status == 200
        assert b"edgeprof_collector_requests_total" in body
    assert a.failed == 0


def test_public_metrics_is_an_explicit_choice(tmp_path: Path) -> None:
    d = deploy(str(tmp_path / "c.sqlite3"), tmp_path, args=("--public-metrics",))
    try:
        with d.server:
            status, body, _ = d.request("GET", "/metrics")
            assert status == 200
            assert b"edgeprof_collector_requests_total" in body
    finally:
        d.engine.dispose()


_PATHS = [
    "/v1/reports",
    "/v1/reports/{id}",
    "/v1/reports/{id}/decisions",
    "/v1/models/{text}/summary",
    "/v1/tokens",
    "/v1/decisions",
    "/metrics",
    "/healthz",
    "/openapi.json",
]
_KEYS = ["model", "model_sha256", "board", "device", "runner", "created_after", "created_before",
         "tag", "gate_status", "limit", "cursor", "format", "order", "x"]  # fmt: skip
_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)


@st.composite
def _requests(draw: st.DrawFn) -> tuple[str, str, bytes | None]:
    template = draw(st.sampled_from(_PATHS))
    path = template.replace("{id}", urllib.parse.quote(draw(_text), safe="")).replace(
        "{text}", urllib.parse.quote(draw(_text), safe="") or "m"
    )
    pairs = draw(st.lists(st.tuples(st.sampled_from(_KEYS), _text), max_size=6))
    query = urllib.parse.urlencode(pairs)
    method = draw(st.sampled_from(["GET", "GET", "POST", "DELETE"]))
    body = draw(st.one_of(st.none(), st.binary(max_size=200))) if method == "POST" else None
    return method, f"{path}?{query}" if query else path, body


def test_fuzzed_requests_never_5xx(collector: Deployment, attack: Callable[[str], Attack]) -> None:
    a = attack("hypothesis-fuzzed paths, query strings and bodies on every route")
    assert collector.upload(collector.signed(minimal_report()))[0] == 201

    @settings(
        max_examples=120,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        database=None,
    )
    @given(req=_requests(), role=st.sampled_from(["pipeline", "admin", "device"]))
    def one(req: tuple[str, str, bytes | None], role: str) -> None:
        method, path, body = req
        token = getattr(collector, f"{role}_token")
        status, data, _ = collector.request(method, path, token=token, body=body)
        assert a.attempt(status < 500), (method, path, status, data[:200])

    one()
    assert a.failed == 0
