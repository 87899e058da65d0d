"""Tests of the notebook-side module, with the real OpenTelemetry SDK."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import nbtrace_otel as nbt

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


class FlushSpy(TracerProvider):
    """A tracer provider that counts its flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flushes += 1
        return super().force_flush(timeout_millis)


@pytest.fixture
def provider() -> tuple[FlushSpy, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    spy = FlushSpy()
    spy.add_span_processor(SimpleSpanProcessor(exporter))
    return spy, exporter


def params(**overrides: str) -> dict[str, str]:
    values = dict.fromkeys(nbt.PARAMETERS, "")
    values.update(job_id="11", run_id="22")
    values.update(overrides)
    return values


@pytest.mark.parametrize(
    ("traceparent", "valid"),
    [
        (TRACEPARENT, True),
        ("", False),  # missing
        (f"ff-{TRACE_ID}-{PARENT_ID}-01", False),  # version ff
        (f"00-{'0' * 32}-{PARENT_ID}-01", False),  # all-zero trace id
        (f"00-{TRACE_ID}-{'0' * 16}-01", False),  # all-zero span id
        (f"00-{TRACE_ID.upper()}-{PARENT_ID}-01", False),  # upper-case hex
        (f"00-{TRACE_ID[:30]}-{PARENT_ID}-01", False),  # wrong length
        ("not a traceparent", False),
    ],
)
def test_parent_context(traceparent: str, valid: bool, provider: tuple[FlushSpy, InMemorySpanExporter]) -> None:
    spy, exporter = provider
    with nbt.run(params(traceparent=traceparent), tracer_provider=spy, environ={}):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.CONSUMER
    if valid:
        assert format(span.context.trace_id, "032x") == TRACE_ID
        assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
        assert span.parent.is_remote
    else:
        assert span.parent is None, "an invalid or missing traceparent must start a new trace"
        assert format(span.context.trace_id, "032x") != TRACE_ID


def test_unsampled_parent_is_respected(provider: tuple[FlushSpy, InMemorySpanExporter]) -> None:
    """A caller that did not sample the trace: the notebook follows its decision, as the Go side does."""
    spy, exporter = provider
    _, problem = nbt.parent_context(params(traceparent=f"00-{TRACE_ID}-{PARENT_ID}-00"))
    assert problem is None
    with nbt.run(params(traceparent=f"00-{TRACE_ID}-{PARENT_ID}-00"), tracer_provider=spy, environ={}) as run:
        assert format(run.span.get_span_context().trace_id, "032x") == TRACE_ID
    assert exporter.get_finished_spans() == ()


def test_missing_traceparent_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    _, problem = nbt.parent_context(params())
    assert problem and "new trace" in problem
    with (
        caplog.at_level(logging.WARNING, logger=nbt.LOGGER_NAME),
        nbt.run(params(), tracer_provider=TracerProvider(), environ={}),
    ):
        pass
    assert any("no traceparent" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_tracestate_and_baggage_are_carried(provider: tuple[FlushSpy, InMemorySpanExporter]) -> None:
    spy, exporter = provider
    p = params(traceparent=TRACEPARENT, tracestate="congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", baggage="tenant=contoso")
    with nbt.run(p, tracer_provider=spy, environ={}) as run, run.step("extract"):
        pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    root = spans["notebook distributed_tracing"]
    assert root.context.trace_state.get("congo") == "t61rcWkgMzE"
    assert root.context.trace_state.get("rojo") == PARENT_ID
    assert root.attributes["baggage.tenant"] == "contoso"
    assert root.attributes["databricks.job.id"] == 11
    assert root.attributes["databricks.run.id"] == 22
    assert spans["extract"].parent.span_id == root.context.span_id


def test_failure_is_recorded_flushed_and_raised(provider: tuple[FlushSpy, InMemorySpanExporter]) -> None:
    spy, exporter = provider
    with (
        pytest.raises(ValueError, match="bad data"),
        nbt.run(params(traceparent=TRACEPARENT), tracer_provider=spy, environ={}) as run,
        run.step("transform"),
    ):
        raise ValueError("bad data")
    assert spy.flushes == 1, "the exporter must be flushed when the notebook fails"
    spans = {s.name: s for s in exporter.get_finished_spans()}
    root = spans["notebook distributed_tracing"]
    assert root.status.status_code is StatusCode.ERROR
    assert "bad data" in (root.status.description or "")
    assert [e.name for e in root.events] == ["exception"]
    assert spans["transform"].status.status_code is StatusCode.ERROR


def test_success_is_flushed(provider: tuple[FlushSpy, InMemorySpanExporter]) -> None:
    spy, _ = provider
    with nbt.run(params(), tracer_provider=spy, environ={}):
        pass
    assert spy.flushes == 1


def test_logs_carry_trace_ids(
    provider: tuple[FlushSpy, InMemorySpanExporter], caplog: pytest.LogCaptureFixture
) -> None:
    spy, exporter = provider
    with (
        caplog.at_level(logging.INFO, logger=nbt.LOGGER_NAME),
        nbt.run(params(traceparent=TRACEPARENT), tracer_provider=spy, environ={}) as run,
        run.step("load"),
    ):
        nbt.log.info("loaded")
    (record,) = [r for r in caplog.records if r.getMessage() == "loaded"]
    load = next(s for s in exporter.get_finished_spans() if s.name == "load")
    assert record.trace_id == TRACE_ID
    assert record.span_id == format(load.context.span_id, "016x")


def test_no_secrets_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    key = "4f8d3c1e-0000-1111-2222-abcdefabcdef"
    environ = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={key};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD;ClientId=11111111-2222-3333-4444-555555555555",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:hunter2@otlp.example.com",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer s3cr3t",
    }
    settings = nbt.Settings.from_environ(environ)
    assert key not in repr(settings)
    with (
        caplog.at_level(logging.DEBUG),
        nbt.run(params(), settings=settings, tracer_provider=TracerProvider(), environ=environ),
    ):
        nbt.log.info("working")
    text = caplog.text
    assert "westeurope-5.in.applicationinsights.azure.com" in text and "otlp.example.com" in text
    for secret in (key, "InstrumentationKey", "hunter2", "s3cr3t", "ClientId"):
        assert secret not in text


def test_read_parameters_precedence() -> None:
    class Widgets:
        def get(self, name: str) -> str:
            if name == "missing":
                raise ValueError("InputWidgetNotDefined")
            return {"traceparent": TRACEPARENT, "dataset": ""}.get(name, "")

    class DBUtils:
        widgets = Widgets()

    got = nbt.read_parameters(
        ("traceparent", "dataset", "date", "missing"),
        dbutils=DBUtils(),
        cell_values={"traceparent": "cell", "dataset": "from-cell", "date": None},
        environ={"NBTRACE_PARAM_DATE": "2026-11-25", "NBTRACE_PARAM_MISSING": "env"},
    )
    assert got == {"traceparent": TRACEPARENT, "dataset": "from-cell", "date": "2026-11-25", "missing": "env"}


def test_resource() -> None:
    res = nbt.resource_for(params(job_id="5", run_id="6"), {"DB_CLUSTER_ID": "0101-abc", "OTEL_SERVICE_NAME": "etl"})
    assert res.attributes["service.name"] == "etl"
    assert res.attributes["databricks.job.id"] == 5
    assert res.attributes["databricks.run.id"] == 6
    assert res.attributes["databricks.cluster.id"] == "0101-abc"
    assert nbt.resource_for(params(job_id="{{job.id}}"), {}).attributes.get("databricks.job.id") is None


def test_settings_from_environ() -> None:
    s = nbt.Settings.from_environ(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/", "NBTRACE_FLUSH_TIMEOUT_MS": "500"}
    )
    assert s.otlp_traces_endpoint == "http://127.0.0.1:4318/v1/traces"
    assert s.flush_timeout_ms == 500
    s = nbt.Settings.from_environ(
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://h/t", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
    )
    assert s.otlp_traces_endpoint == "http://h/t"
    assert "nowhere" in nbt.Settings.from_environ({}).describe()


def test_seconds_are_bounded() -> None:
    run = nbt.NotebookRun(tracer=None, span=None, params={"a": "2.5", "b": "-1", "c": "x", "d": "99999"})  # type: ignore[arg-type]
    assert run.seconds("a") == 2.5
    assert run.seconds("b") == 0
    assert run.seconds("c", 1) == 1
    assert run.seconds("d") == 3600
    assert run.seconds("absent", 0.5) == 0.5


def test_aggregate_with_pandas() -> None:
    result = nbt.aggregate(1200)
    assert result["engine"] == "pandas"
    assert result["rows_in"] == 1200
    assert result["rows_out"] == 7
    assert sum(result["totals"].values()) == pytest.approx(sum((i * 37 % 1000) / 10 for i in range(1200)))
    assert nbt.aggregate(0)["rows_out"] == 0


def test_otlp_export_reaches_the_endpoint_before_run_returns() -> None:
    """The real OTLP/HTTP exporter, against a local endpoint: the final flush delivers every span."""
    received: list[ExportTraceServiceRequest] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces":  # log records go to /v1/logs
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                received.append(req)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}"}
        with nbt.run(params(traceparent=TRACEPARENT), environ=environ) as run, run.step("extract"):
            pass
        spans = [s for r in received for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert sorted(s.name for s in spans) == ["extract", "notebook distributed_tracing"]
        assert all(s.trace_id.hex() == TRACE_ID for s in spans)
        resource = {a.key: a.value for r in received for rs in r.resource_spans for a in rs.resource.attributes}
        assert resource["service.name"].string_value == "databricks-notebook"
        assert resource["databricks.run.id"].int_value == 22
    finally:
        server.shutdown()
