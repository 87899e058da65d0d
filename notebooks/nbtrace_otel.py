"""Continue an nbtrace trace inside a Databricks notebook.

The ``notebook`` function starts the Databricks job with the W3C trace
context of its PRODUCER span in the job parameters ``traceparent``,
``tracestate`` and ``baggage``. This module reads them (from dbutils widgets
on Databricks, from papermill parameters or the environment locally), starts
the notebook's CONSUMER span as their child, exports to Azure Monitor and/or
any OTLP/HTTP backend as the job's environment says, stamps Python log
records with the trace and span ids, and always flushes before the notebook
ends, so that nothing is lost when the job cluster stops.

Every run builds its own tracer and logger providers, with the run's
resource, and shuts them down when it ends; nothing global is set. An
interactive cluster runs a notebook many times in one Python process: each
run exports its own spans once, with its own ids.

Every span of a sampled parent is recorded (``ParentBased(ALWAYS_ON)``): a
caller that sampled the trace gets all of it, one that did not (flags
``00``) gets nothing, as on the Go side. ``OTEL_TRACES_SAMPLER`` (with
``OTEL_TRACES_SAMPLER_ARG``), when set, chooses instead: the OpenTelemetry
names, or Azure Monitor's ``microsoft.rate_limited`` and
``microsoft.fixed_percentage``.

Settings come from the settings file the deploy step writes beside this
module (``nbtrace_settings.json``: the settings that are not secret, and the
secret scope and key of each secret, read with ``dbutils.secrets``), the same
on serverless compute, a job cluster and an interactive cluster; the
environment, where set, wins (local runs). Never from the notebook's source:

``APPLICATIONINSIGHTS_CONNECTION_STRING``
    Export spans and log records to Application Insights, with
    ``azure-monitor-opentelemetry-exporter``.
``NBTRACE_INGESTION_CREDENTIAL``
    The Unity Catalog service credential to sign in to Application Insights
    with (Microsoft Entra ID, the identity of an Azure Databricks Access
    Connector, through ``dbutils.credentials.getServiceCredentialsProvider``),
    so that a resource with local authentication off takes the notebook's
    telemetry. Without it, the connection string's key is used.
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT``
    Export spans and log records over OTLP/HTTP (headers from
    ``OTEL_EXPORTER_OTLP_HEADERS``, ``k=v,k2=v2``).
``OTEL_SERVICE_NAME``
    ``service.name``, ``databricks-notebook`` by default.
``NBTRACE_FLUSH_TIMEOUT_MS``
    How long the final flush may take, 30000 by default.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "PARAMETERS",
    "TRACE_PARAMETERS",
    "NotebookRun",
    "Settings",
    "TraceLogFilter",
    "aggregate",
    "parent_context",
    "read_parameters",
    "resource_for",
    "run",
    "sampler_from",
    "service_credential",
    "settings_values",
]

TRACE_PARAMETERS: tuple[str, ...] = ("traceparent", "tracestate", "baggage")
"""Job parameters that carry the trace context (empty by default on the job)."""

PARAMETERS: tuple[str, ...] = (
    *TRACE_PARAMETERS,
    "job_id",
    "run_id",
    "dataset",
    "date",
    "row_count",
    "extract_seconds",
    "transform_seconds",
    "load_seconds",
)
"""Every job parameter the notebook reads."""

SCOPE = "nbtrace.notebook"
LOGGER_NAME = "nbtrace"
log = logging.getLogger(LOGGER_NAME)


class Widgets(Protocol):
    """The part of ``dbutils.widgets`` this module uses."""

    def get(self, name: str) -> str: ...


def read_parameters(
    names: tuple[str, ...] = PARAMETERS,
    *,
    dbutils: Any = None,
    cell_values: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return each job parameter's value, as a string ("" when absent).

    On Databricks the job parameters are the notebook's widgets
    (``dbutils.widgets.get``). Locally, papermill injects them into the
    notebook's parameters cell, whose values come in ``cell_values``. Failing
    both, ``NBTRACE_PARAM_<NAME>`` in the environment is read.
    """
    env = os.environ if environ is None else environ
    cells = cell_values or {}
    values: dict[str, str] = {}
    for name in names:
        value: Any = None
        if dbutils is not None:
            try:
                value = dbutils.widgets.get(name)
            except Exception:  # a widget that is not defined raises
                value = None
        if value in (None, "") and cells.get(name) not in (None, ""):
            value = cells[name]
        if value in (None, ""):
            value = env.get(f"NBTRACE_PARAM_{name.upper()}", "")
        values[name] = "" if value is None else str(value).strip()
    return values


def parent_context(params: Mapping[str, str]) -> tuple[otel_context.Context, str | None]:
    """Return the context to start the notebook's span in.

    The result holds the remote parent from ``traceparent`` (with its
    ``tracestate``) and the ``baggage``. When ``traceparent`` is missing or
    not valid by the W3C Trace Context rules, the context has no parent, so
    the notebook starts a new trace, and the second value says why; a run
    never joins a fixed or made-up trace.
    """
    carrier = {k: params[k] for k in TRACE_PARAMETERS if params.get(k)}
    ctx = TraceContextTextMapPropagator().extract(carrier)
    ctx = W3CBaggagePropagator().extract(carrier, context=ctx)
    if not params.get("traceparent"):
        return ctx, "no traceparent job parameter: the notebook starts a new trace"
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return ctx, "the traceparent job parameter is not a valid W3C traceparent: the notebook starts a new trace"
    return ctx, None


def resource_for(params: Mapping[str, str], environ: Mapping[str, str] | None = None) -> Resource:
    """Describe the notebook run: service name, Databricks job, run and compute."""
    env = os.environ if environ is None else environ
    attrs: dict[str, str | int] = {
        "service.name": env.get("OTEL_SERVICE_NAME") or "databricks-notebook",
        "cloud.provider": "azure",
    }
    for key, param in (("databricks.job.id", "job_id"), ("databricks.run.id", "run_id")):
        value = params.get(param, "")
        if value.isdigit():
            attrs[key] = int(value)
    cluster = env.get("DB_CLUSTER_ID") or _spark_conf("spark.databricks.clusterUsageTags.clusterId")
    if cluster:
        attrs["databricks.cluster.id"] = cluster
    return Resource.create(attrs)


def _spark_conf(key: str) -> str:
    """Read a Spark conf value when a Spark session exists, else ""."""
    try:
        from pyspark.sql import SparkSession  # type: ignore[import-not-found]
    except ImportError:
        return ""
    session = SparkSession.getActiveSession()
    if session is None:
        return ""
    try:
        return session.conf.get(key, "") or ""
    except Exception:
        return ""


@dataclass(frozen=True)
class Settings:
    """Export settings, read from the environment."""

    connection_string: str = field(default="", repr=False)
    otlp_traces_endpoint: str = ""
    otlp_logs_endpoint: str = ""
    otlp_headers: dict[str, str] = field(default_factory=dict, repr=False)
    flush_timeout_ms: int = 30000
    ingestion_credential: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings; OTLP's per-signal endpoints as the exporters would."""
        env = os.environ if environ is None else environ
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").rstrip("/")
        timeout = env.get("NBTRACE_FLUSH_TIMEOUT_MS", "")
        return cls(
            connection_string=env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", ""),
            otlp_traces_endpoint=env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "") or (base and base + "/v1/traces"),
            otlp_logs_endpoint=env.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "") or (base and base + "/v1/logs"),
            otlp_headers=_headers(env.get("OTEL_EXPORTER_OTLP_HEADERS", "")),
            flush_timeout_ms=int(timeout) if timeout.isdigit() else 30000,
            ingestion_credential=env.get("NBTRACE_INGESTION_CREDENTIAL", "").strip(),
        )

    def describe(self, signed_in: bool = False) -> str:
        """Say where telemetry goes, and how the notebook signs in to Azure Monitor, without showing any credential."""
        targets = []
        if self.connection_string:
            endpoint = _connection_string_field(self.connection_string, "IngestionEndpoint") or "default endpoint"
            how = (
                f"signed in with Microsoft Entra ID through service credential {self.ingestion_credential}"
                if signed_in
                else "with the connection string's instrumentation key"
            )
            targets.append(f"Azure Monitor ({_host_of(endpoint)}, {how})")
        if self.otlp_traces_endpoint or self.otlp_logs_endpoint:
            targets.append(f"OTLP/HTTP ({_host_of(self.otlp_traces_endpoint or self.otlp_logs_endpoint)})")
        return ", ".join(targets) or "nowhere (no exporter configured: spans stay in the notebook)"


def _headers(value: str) -> dict[str, str]:
    """Parse OTEL_EXPORTER_OTLP_HEADERS (``k=v,k2=v2``, values URL-encoded)."""
    from urllib.parse import unquote

    out = {}
    for part in value.split(","):
        key, sep, val = part.partition("=")
        if sep and key.strip():
            out[key.strip()] = unquote(val.strip())
    return out


SETTINGS_FILE = "nbtrace_settings.json"
"""The settings file the deploy step writes beside this module."""


def settings_values(
    environ: Mapping[str, str] | None = None,
    *,
    dbutils: Any = None,
    settings_file: Path | None = None,
) -> dict[str, str]:
    """Return the notebook's settings by name: the settings file's, its secrets, then the environment's.

    The settings file (``SETTINGS_FILE`` beside this module unless given)
    holds ``{"settings": {name: value}, "secrets": {name: {"scope", "key"}}}``.
    A secret is read with ``dbutils.secrets.get`` on Databricks; without
    dbutils, from ``NBTRACE_LOCAL_SECRETS`` (scope to key to value, what the
    local Databricks stand-in gives a run). A secret that does not exist
    raises, as dbutils does. A setting set in the environment wins over the
    file and is not read from a secret.
    """
    env = os.environ if environ is None else environ
    path = settings_file or Path(__file__).with_name(SETTINGS_FILE)
    values: dict[str, str] = {}
    if path.is_file():
        data = json.loads(path.read_text())
        values.update({k: str(v) for k, v in (data.get("settings") or {}).items()})
        for name, ref in (data.get("secrets") or {}).items():
            if not env.get(name):
                values[name] = _secret(ref["scope"], ref["key"], dbutils, env)
    values.update({k: v for k, v in env.items() if v})
    return values


def _secret(scope: str, key: str, dbutils: Any, env: Mapping[str, str]) -> str:
    if dbutils is not None:
        return str(dbutils.secrets.get(scope=scope, key=key))
    local = json.loads(env.get("NBTRACE_LOCAL_SECRETS") or "{}")
    try:
        return str(local[scope][key])
    except KeyError:
        raise ValueError(f"Secret does not exist with scope: {scope} and key: {key}") from None


def service_credential(name: str, *, dbutils: Any = None, environ: Mapping[str, str] | None = None) -> Any:
    """Return an Azure credential (``get_token``) of the Unity Catalog service credential ``name``.

    On Databricks it is ``dbutils.credentials.getServiceCredentialsProvider``
    (Databricks Runtime 16.2 and later, and serverless), which needs the run's
    principal to own the credential or hold ``ACCESS`` on it. Without dbutils,
    ``NBTRACE_LOCAL_SERVICE_CREDENTIALS`` (credential name to the client id of
    its managed identity: what the local Databricks stand-in gives a run for
    the credentials its principal may use) names a managed identity, signed in
    through the identity endpoint of the environment. A credential the run
    may not use raises.
    """
    if dbutils is not None:
        return dbutils.credentials.getServiceCredentialsProvider(name)
    env = os.environ if environ is None else environ
    local = json.loads(env.get("NBTRACE_LOCAL_SERVICE_CREDENTIALS") or "{}")
    if name not in local:
        raise PermissionError(f"service credential {name} does not exist or the run's principal holds no ACCESS on it")
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=local[name])


def _connection_string_field(cs: str, name: str) -> str:
    for part in cs.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == name.lower():
            return value.strip()
    return ""


def _host_of(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0].rsplit("@", 1)[-1]


def sampler_from(environ: Mapping[str, str] | None = None) -> Sampler:
    """The sampler of a run: every span of a sampled parent, unless ``OTEL_TRACES_SAMPLER`` says otherwise.

    ``configure_azure_monitor`` would sample at 5 traces per second with a
    rate limiter that starts near 0 % and ignores the parent's sampled flag,
    dropping most runs' spans; this module never defaults to it. An
    explicit ``OTEL_TRACES_SAMPLER`` is honoured: ``always_on``,
    ``always_off``, ``traceidratio``, their ``parentbased_`` forms, and
    Azure Monitor's ``microsoft.rate_limited`` (traces per second, 5 by
    default) and ``microsoft.fixed_percentage`` (a ratio, 1.0 by default),
    with ``OTEL_TRACES_SAMPLER_ARG``. An unknown name is logged and the
    default used.
    """
    env = os.environ if environ is None else environ
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()

    def arg(default: float) -> float:
        try:
            return float(raw) if raw else default
        except ValueError:
            log.warning("OTEL_TRACES_SAMPLER_ARG=%r is not a number; using %s", raw, default)
            return default

    if name in ("", "parentbased_always_on"):
        return ParentBased(ALWAYS_ON)
    if name in ("microsoft.rate_limited", "microsoft.fixed_percentage", "microsoft.fixed.percentage"):
        from azure.monitor.opentelemetry.exporter import ApplicationInsightsSampler, RateLimitedSampler

        if name == "microsoft.rate_limited":
            return RateLimitedSampler(target_spans_per_second_limit=arg(5.0))
        return ApplicationInsightsSampler(sampling_ratio=arg(1.0))
    samplers: dict[str, Callable[[], Sampler]] = {
        "always_on": lambda: ALWAYS_ON,
        "always_off": lambda: ALWAYS_OFF,
        "traceidratio": lambda: TraceIdRatioBased(arg(1.0)),
        "parentbased_always_off": lambda: ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": lambda: ParentBased(TraceIdRatioBased(arg(1.0))),
    }
    if name not in samplers:
        log.warning(
            "OTEL_TRACES_SAMPLER=%r is not a sampler this module knows; every span of a sampled parent is kept", name
        )
        return ParentBased(ALWAYS_ON)
    return samplers[name]()


# Process-wide services of the Azure Monitor exporter that a run's exporters
# would start and tie to the first run, outliving it: the control plane's
# hourly polling of settings.sdk.monitor.azure.com, SDK statistics sent to the
# first run's resource, and Microsoft's own statsbeat. Off unless the
# environment says otherwise.
_AZURE_MONITOR_DEFAULTS = {
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
}


@dataclass
class _Pipeline:
    """One run's providers and what to close when it ends."""

    tracer_provider: TracerProvider
    logger_provider: LoggerProvider | None = None
    handler: logging.Handler | None = None
    clients: list[Any] = field(default_factory=list)
    signed_in: bool = False

    def close(self, timeout_ms: int) -> None:
        """Flush every span and log record, then shut the providers down and close their connections."""
        providers: list[Any] = [self.tracer_provider]
        if self.logger_provider is not None:
            providers.append(self.logger_provider)
        _flush(providers, timeout_ms)
        if self.handler is not None:
            log.removeHandler(self.handler)
        for p in providers:
            try:
                p.shutdown()
            except Exception:
                log.exception("telemetry shutdown failed")
        for client in self.clients:
            try:
                client.close()
            except Exception:
                log.exception("closing an exporter's connection failed")


def _pipeline(settings: Settings, resource: Resource, sampler: Sampler, credential: Any = None) -> _Pipeline:
    """Build one run's providers, exporting where settings say; what was built is closed again if a part fails."""
    pipeline = _Pipeline(tracer_provider=TracerProvider(resource=resource, sampler=sampler))
    try:
        _build(pipeline, settings, resource, credential)
    except BaseException:
        pipeline.close(1000)
        raise
    return pipeline


def _ingestion_credential(settings: Settings, dbutils: Any, environ: Mapping[str, str]) -> Any:
    """The Azure credential to sign in to Application Insights with, or None for the connection string's key.

    A service credential that cannot be had is logged as an error and the key
    is used: the run goes on, and a resource that takes keys still gets its
    telemetry (one with local authentication off refuses it, and the exporter
    logs that).
    """
    if not (settings.connection_string and settings.ingestion_credential):
        return None
    try:
        return service_credential(settings.ingestion_credential, dbutils=dbutils, environ=environ)
    except Exception as exc:
        log.error(
            "cannot use service credential %s (%s: %s); Application Insights gets the connection string's key instead",
            settings.ingestion_credential,
            type(exc).__name__,
            exc,
        )
        return None


def _build(pipeline: _Pipeline, settings: Settings, resource: Resource, credential: Any = None) -> None:
    """Add the exporters settings ask for to pipeline, signing in to Azure Monitor with credential when given."""
    span_exporters: list[Any] = []
    log_exporters: list[Any] = []
    headers = settings.otlp_headers or None
    if settings.otlp_traces_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporters.append(OTLPSpanExporter(endpoint=settings.otlp_traces_endpoint, headers=headers))
    if settings.otlp_logs_endpoint:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        log_exporters.append(OTLPLogExporter(endpoint=settings.otlp_logs_endpoint, headers=headers))
    if settings.connection_string:
        for key, value in _AZURE_MONITOR_DEFAULTS.items():
            os.environ.setdefault(key, value)
        from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter, AzureMonitorTraceExporter

        common: dict[str, Any] = {"connection_string": settings.connection_string, "disable_offline_storage": True}
        if credential is not None:
            common["credential"] = credential
            pipeline.signed_in = True
        traces = AzureMonitorTraceExporter(tracer_provider=pipeline.tracer_provider, **common)
        logs = AzureMonitorLogExporter(**common)
        span_exporters.append(traces)
        log_exporters.append(logs)
        pipeline.clients += [traces.client, logs.client]
    for exporter in span_exporters:
        pipeline.tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    if log_exporters:
        from opentelemetry.instrumentation.logging.handler import LoggingHandler

        pipeline.logger_provider = LoggerProvider(resource=resource)
        for exporter in log_exporters:
            pipeline.logger_provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        pipeline.handler = LoggingHandler(logger_provider=pipeline.logger_provider)
        log.addHandler(pipeline.handler)


class TraceLogFilter(logging.Filter):
    """Add ``trace_id`` and ``span_id`` of the current span to log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else "-"
        record.span_id = format(ctx.span_id, "016x") if ctx.is_valid else "-"
        return True


def _correlate_logging() -> None:
    """Stamp the module's log records with trace ids and print them."""
    if any(isinstance(f, TraceLogFilter) for f in log.filters):
        return
    log.addFilter(TraceLogFilter())
    log.setLevel(logging.INFO)
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [trace_id=%(trace_id)s span_id=%(span_id)s] %(message)s")
    )
    log.addHandler(handler)


@dataclass
class NotebookRun:
    """The notebook's span and its tracer, for steps."""

    tracer: trace.Tracer
    span: trace.Span
    params: Mapping[str, str]

    @contextmanager
    def step(self, name: str, **attributes: Any) -> Iterator[trace.Span]:
        """Run a step in a child span; an exception is recorded and raised."""
        with self.tracer.start_as_current_span(name, attributes=_clean(attributes)) as span:
            yield span

    def seconds(self, param: str, default: float = 0.0) -> float:
        """A job parameter as a duration in seconds, between 0 and 3600."""
        try:
            value = float(self.params.get(param) or default)
        except ValueError:
            log.warning("job parameter %s=%r is not a number; using %s", param, self.params.get(param), default)
            value = default
        return min(max(value, 0.0), 3600.0)

    def sleep(self, param: str, default: float = 0.0) -> float:
        """Wait as long as the job parameter says (the simulated work)."""
        seconds = self.seconds(param, default)
        time.sleep(seconds)
        return seconds


def aggregate(rows: int, spark: Any = None) -> dict[str, Any]:
    """The notebook's real data step: total ``rows`` synthetic sales rows per category.

    It runs on Spark when a Spark session is given (on Databricks) and on
    pandas otherwise (locally). It returns the engine, rows in and rows out,
    and the totals by category.
    """
    rows = max(int(rows), 0)
    if spark is not None:
        df = spark.range(rows).selectExpr(
            "CAST(id % 7 AS INT) AS category",
            "CAST(id * 37 % 1000 AS DOUBLE) / 10 AS amount",
        )
        result = df.groupBy("category").sum("amount").collect()
        totals = {int(r["category"]): round(float(r["sum(amount)"]), 2) for r in result}
        engine = "spark"
    else:
        import pandas as pd

        ids = pd.RangeIndex(rows)
        df = pd.DataFrame({"category": ids % 7, "amount": (ids * 37 % 1000) / 10})
        grouped = df.groupby("category")["amount"].sum()
        totals = {int(k): round(float(v), 2) for k, v in grouped.items()}
        engine = "pandas"
    return {"engine": engine, "rows_in": rows, "rows_out": len(totals), "totals": dict(sorted(totals.items()))}


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None and v != ""}


@contextmanager
def run(
    params: Mapping[str, str],
    *,
    name: str = "distributed_tracing",
    settings: Settings | None = None,
    tracer_provider: TracerProvider | None = None,
    environ: Mapping[str, str] | None = None,
    dbutils: Any = None,
) -> Iterator[NotebookRun]:
    """Run the notebook body inside its CONSUMER span.

    The span is a child of the job parameters' trace context (or a new
    root, with a warning, when there is none). An exception in the body is
    recorded on the span, which is marked as an error, and raised again so
    the job fails visibly. Settings are read with ``settings_values`` (pass
    ``dbutils`` on Databricks, for the secrets). Whatever happens, every span and log record is
    flushed before this returns.
    """
    _correlate_logging()
    values = settings_values(environ, dbutils=dbutils) if settings is None or tracer_provider is None else {}
    settings = settings or Settings.from_environ(values)
    pipeline: _Pipeline | None = None
    if tracer_provider is None:
        credential = _ingestion_credential(settings, dbutils, values)
        pipeline = _pipeline(settings, resource_for(params, values), sampler_from(values), credential)
        if credential is not None and dbutils is None and hasattr(credential, "close"):
            pipeline.clients.append(credential)
        tracer_provider = pipeline.tracer_provider
    try:
        signed_in = pipeline is not None and pipeline.signed_in
        yield from _traced(params, name, settings, tracer_provider, signed_in=signed_in)
    finally:
        if pipeline is not None:
            pipeline.close(settings.flush_timeout_ms)
        else:
            _flush([tracer_provider], settings.flush_timeout_ms)


def _traced(
    params: Mapping[str, str],
    name: str,
    settings: Settings,
    tracer_provider: TracerProvider,
    *,
    signed_in: bool = False,
) -> Iterator[NotebookRun]:
    """The body of run: the notebook's CONSUMER span around its work."""
    log.info("telemetry goes to %s", settings.describe(signed_in))
    ctx, problem = parent_context(params)
    if problem:
        log.warning(problem)
    tracer = tracer_provider.get_tracer(SCOPE)
    attributes = _clean(
        {
            "databricks.job.id": int(params["job_id"]) if params.get("job_id", "").isdigit() else None,
            "databricks.run.id": int(params["run_id"]) if params.get("run_id", "").isdigit() else None,
            "notebook.name": name,
            "nbtrace.dataset": params.get("dataset"),
            "nbtrace.date": params.get("date"),
        }
    )
    token = otel_context.attach(ctx)
    try:
        with tracer.start_as_current_span(
            f"notebook {name}",
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            for key, value in otel_baggage.get_all().items():
                span.set_attribute(f"baggage.{key}", str(value))
            try:
                yield NotebookRun(tracer=tracer, span=span, params=params)
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                log.exception("the notebook failed")
                raise
            else:
                log.info("the notebook finished")
    finally:
        otel_context.detach(token)


def _flush(providers: list[Any], timeout_ms: int) -> None:
    """Flush spans and log records; report, never raise, a flush failure."""
    for p in providers:
        flush = getattr(p, "force_flush", None)
        if flush is None:
            continue
        try:
            if not flush(timeout_ms):
                log.warning("telemetry flush did not finish within %d ms: some spans may be lost", timeout_ms)
        except Exception:
            log.exception("telemetry flush failed")
