"""Which trigger an invocation came from."""
import pytest

from handlers.intake.dispatch import fits_async, function_ref
from handlers.intake.events import WORKER_KEY, Kind, kind_of, queue_bodies, worker_payload


@pytest.mark.parametrize("event, kind", [
    ({"httpMethod": "POST", "body": ""}, Kind.HTTP),
    ({"requestContext": {}, "httpMethod": "POST"}, Kind.HTTP),
    ({WORKER_KEY: {"version": 1, "body": "<Response/>"}}, Kind.WORKER),
    ({"Records": [{"CMQ": {"msgBody": "<Response/>"}}]}, Kind.QUEUE),
    ({"Type": "Timer", "TriggerName": "sweep", "Time": "2026-11-23T00:00:00Z", "Message": ""}, Kind.TIMER),
    ({"Records": [{"cos": {}}]}, Kind.UNKNOWN),
    ({"Records": []}, Kind.UNKNOWN),
    ({WORKER_KEY: "not a dict"}, Kind.UNKNOWN),
    ("text", Kind.UNKNOWN),
    (None, Kind.UNKNOWN),
])
def test_kind_of(event, kind):
    assert kind_of(event) is kind


def test_worker_payload_round_trip():
    payload = worker_payload("<Response>中</Response>".encode(), "req-1")
    assert kind_of(payload) is Kind.WORKER
    assert payload[WORKER_KEY] == {"version": 1, "body": "<Response>中</Response>", "receivedBy": "req-1"}


def test_queue_bodies():
    event = {"Records": [{"CMQ": {"msgId": "m1", "msgBody": "<a/>"}}, {"CMQ": {"msgId": "m2"}}]}
    assert queue_bodies(event) == [("m1", b"<a/>"), ("m2", b"")]


def test_function_ref_from_context_then_environment():
    ref = function_ref({"function_name": "fn", "namespace": "ns", "function_version": "3"}, {})
    assert (ref.name, ref.namespace, ref.qualifier) == ("fn", "ns", "3")
    ref = function_ref({}, {"SCF_FUNCTIONNAME": "fn2"})
    assert (ref.name, ref.namespace, ref.qualifier) == ("fn2", "default", "$LATEST")
    assert function_ref({}, {}) is None


def test_async_payload_limit():
    assert fits_async({"b": "x" * 1000})
    assert not fits_async({"b": "x" * (128 * 1024)})
