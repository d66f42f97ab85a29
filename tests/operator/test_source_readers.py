"""Each backlog source's reader on the answers a server may give, through a recorded fetch: shapes,
odd values and errors. The readers against the real RabbitMQ and Prometheus are in test_backlog_sources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from qc_operator.errors import SourceError
from qc_operator.sources.base import BacklogReader, GoogleAuth
from qc_operator.sources.prometheus import PromQLBacklog
from qc_operator.sources.pubsub import OLDEST_AGE, UNDELIVERED, PubSubBacklog
from qc_operator.sources.rabbitmq import RabbitMQBacklog


class Recorded:
    """A FetchJson answering from a table (url substring -> JSON), remembering each call."""

    def __init__(self, answers: Mapping[str, Any]) -> None:
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    async def __call__(
        self,
        url: str,
        *,
        what: str,
        params: Any = None,
        headers: Any = None,
        basic_auth: Any = None,
        tls: Any = None,
    ) -> Any:
        self.calls.append(
            {"url": url, "what": what, "params": params, "headers": headers, "auth": basic_auth, "tls": tls}
        )
        key = (params or {}).get("filter", url)
        for pattern, answer in self.answers.items():
            if pattern in key:
                return answer
        raise SourceError(f"{what}: not found (HTTP 404)")


def vector(*values: Any) -> dict[str, Any]:
    result = [{"metric": {}, "value": [0, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


PROMQL = PromQLBacklog("http://prom:9090/", "sum(depth)")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (vector("30", "12"), 42.0),
        ({"status": "success", "data": {"resultType": "scalar", "result": [0, "7"]}}, 7.0),
        (vector(), "returned no series"),
        (vector("NaN"), "not a backlog"),
        (vector("+Inf"), "not a backlog"),
        (vector("-1"), "not a backlog"),
        (vector("lots"), "not a number"),
        (
            {"status": "success", "data": {"resultType": "vector", "result": [{"value": None}]}},
            "not a number",
        ),
        ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "returned a matrix"),
        ({"status": "success", "data": []}, "returned a None"),
        ({"status": "error", "error": "parse error"}, "failed: parse error"),
        (["not", "an", "object"], "failed"),
    ],
)
async def test_promql_answers(answer: Any, expected: float | str) -> None:
    await check(PROMQL, Recorded({"/api/v1/query": answer}), expected)


def series(value: Any) -> dict[str, Any]:
    return {"timeSeries": [{"points": [{"value": value}, {"value": {"int64Value": "1"}}]}]}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (series({"int64Value": "1234"}), 1234.0),
        (series({"doubleValue": 12.5}), 12.5),
        ({}, "no data"),
        ({"timeSeries": []}, "no data"),
        ({"timeSeries": [{"points": []}]}, "no data"),
        ({"timeSeries": "x"}, "no data"),
        (series({}), "no numeric value"),
        (series({"int64Value": "x"}), "no numeric value"),
        (series({"doubleValue": "NaN"}), "not a count"),
        (series("flat"), "no numeric value"),
    ],
)
async def test_cloud_monitoring_answers(answer: Any, expected: float | str) -> None:
    source = PubSubBacklog("proj", "orders", "https://monitoring.example", GoogleAuth("t0ken"), no_google)
    fetch = Recorded({UNDELIVERED: answer, OLDEST_AGE: series({"int64Value": "9"})})
    await check(source, fetch, expected)
    assert fetch.calls[0]["headers"] == {"Authorization": "Bearer t0ken"}
    assert fetch.calls[0]["url"] == "https://monitoring.example/v3/projects/proj/timeSeries"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"messages_ready": 7, "messages_unacknowledged": 3}, 10.0),
        ({"messages_ready": 7}, "no message counts yet"),
        ({"messages_ready": "x", "messages_unacknowledged": 3}, "not numbers"),
        ({"messages_ready": None, "messages_unacknowledged": 3}, "not numbers"),
        ([], "unexpected answer"),
    ],
)
async def test_rabbitmq_management_answers(answer: Any, expected: float | str) -> None:
    source = RabbitMQBacklog("http://us%40r:p%2Fss@rabbit:15672/", "a/b", "/")
    fetch = Recorded({"/api/queues/": answer})
    await check(source, fetch, expected)
    assert fetch.calls[0]["url"] == "http://rabbit:15672/api/queues/%2F/a%2Fb"
    assert fetch.calls[0]["auth"] == ("us@r", "p/ss")
    assert "p/ss" not in fetch.calls[0]["what"], "credentials never in a message"


async def test_a_management_url_with_a_port_that_is_not_a_number_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="port is not a number"):
        await RabbitMQBacklog("http://u:p@rabbit:http/", "q", "/").read(Recorded({}))


async def no_google(service_account_key_json: str | None) -> str:
    raise AssertionError("a bearer token from a Secret needs no Google token")


class IssuedTokens:
    """A GoogleTokenSource recording which key each token was asked for."""

    def __init__(self) -> None:
        self.asked: list[str | None] = []

    async def __call__(self, service_account_key_json: str | None) -> str:
        self.asked.append(service_account_key_json)
        return f"token-{len(self.asked)}"


@pytest.mark.parametrize(
    ("auth", "header", "asked"),
    [
        (GoogleAuth(bearer_token="fixed"), "Bearer fixed", []),
        (GoogleAuth(service_account_key_json="{key}"), "Bearer token-1", ["{key}"]),
        (GoogleAuth(), "Bearer token-1", [None]),
        (GoogleAuth(anonymous=True), None, []),
    ],
)
async def test_google_credentials_come_from_the_secret_the_key_or_application_defaults(
    auth: GoogleAuth, header: str | None, asked: list[str | None]
) -> None:
    tokens = IssuedTokens()
    fetch = Recorded({UNDELIVERED: series({"int64Value": "5"}), OLDEST_AGE: series({"int64Value": "1"})})
    assert (await PubSubBacklog("p", "s", "https://m.example", auth, tokens).read(fetch)).messages == 5
    assert fetch.calls[0]["headers"].get("Authorization") == header
    assert tokens.asked[:1] == asked
    promql = PromQLBacklog(
        "https://m.example/v1/projects/p/location/global/prometheus", "q", None, auth, tokens
    )
    await promql.read(Recorded({"/api/v1/query": vector("3")}))


async def check(reader: BacklogReader, fetch: Recorded, expected: float | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(SourceError, match=expected):
            await reader.read(fetch)
    else:
        assert (await reader.read(fetch)).messages == expected
