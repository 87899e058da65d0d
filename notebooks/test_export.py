"""The module's export pipeline, end to end: the real exporters against local ingestion and OTLP endpoints."""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import json
import logging
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.sampling import ParentBased

import nbtrace_otel as nbt

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
IKEY = "00000000-0000-0000-0000-0000000000a1"


class Endpoints:
    """Application Insights ingestion (/v2.1/track) and OTLP/HTTP (/v1/traces, /v1/logs) on one loopback port."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.envelopes: list[dict[str, Any]] = []
        self.authorization: list[str | None] = []  # of each post to /v2.1/track
        self.spans: list[tuple[dict[str, Any], Any]] = []  # (resource attributes, span)
        self.logs: list[Any] = []
        self.headers: list[dict[str, str]] = []  # of each OTLP export
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                path = self.path.lstrip("/")
                with lock:
                    if path == "v2.1/track":
                        outer.authorization.append(self.headers.get("Authorization"))
                        items = json.loads(body)
                        outer.envelopes += items
                        answer = {"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}
                        return self.reply(200, json.dumps(answer).encode(), "application/json")
                    if path in ("v1/traces", "v1/logs"):
                        outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                    if path == "v1/traces":
                        req = ExportTraceServiceRequest()
                        req.ParseFromString(body)
                        for rs in req.resource_spans:
                            res = {a.key: a.value for a in rs.resource.attributes}
                            outer.spans += [(res, s) for ss in rs.scope_spans for s in ss.spans]
                        return self.reply(200, b"", "application/x-protobuf")
                    if path == "v1/logs":
                        logs = ExportLogsServiceRequest()
                        logs.ParseFromString(body)
                        outer.logs += [r for rl in logs.resource_logs for sl in rl.scope_logs for r in sl.log_records]
                        return self.reply(200, b"", "application/x-protobuf")
                self.reply(404, b"", "text/plain")

            def reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={IKEY};IngestionEndpoint={self.url}/"

    def of_kind(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.envelopes if e["name"] == f"Microsoft.ApplicationInsights.{name}"]


@pytest.fixture
def endpoints() -> Iterator[Endpoints]:
    e = Endpoints()
    yield e
    e.server.shutdown()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own authority, and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ingestion test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def tls_endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoints]:
    """Endpoints over HTTPS, trusted through REQUESTS_CA_BUNDLE: Azure's SDKs send a bearer token only over TLS."""
    cert, key = _self_signed(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    e = Endpoints(tls=ctx)
    yield e
    e.server.shutdown()


class FakeToken(NamedTuple):
    token: str
    expires_on: int


class FakeServiceCredential:
    """What dbutils.credentials.getServiceCredentialsProvider returns: an Azure credential (get_token)."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: Any) -> FakeToken:
        self.scopes.append(scopes)
        return FakeToken("token-of-the-access-connector", int(datetime.datetime.now().timestamp()) + 3600)


class CredentialDbutils:
    """dbutils with service credentials (and no widgets or secrets): names of the credentials asked for."""

    def __init__(self, credentials: dict[str, FakeServiceCredential]) -> None:
        self.asked: list[str] = []
        outer = self

        class Credentials:
            def getServiceCredentialsProvider(self, name: str) -> FakeServiceCredential:
                outer.asked.append(name)
                if name not in credentials:
                    raise RuntimeError(f"PERMISSION_DENIED: no ACCESS on service credential {name}")
                return credentials[name]

        self.credentials = Credentials()


def params(run_id: str = "22", flags: str = "01") -> dict[str, str]:
    values = dict.fromkeys(nbt.PARAMETERS, "")
    values.update(job_id="11", run_id=run_id, traceparent=f"00-{TRACE_ID}-{PARENT_ID}-{flags}")
    return values


def test_every_span_of_a_sampled_parent_reaches_application_insights(endpoints: Endpoints) -> None:
    """With nothing but the connection string: the run's Request, every step, every log record; no sampling."""
    with nbt.run(params(), environ={"APPLICATIONINSIGHTS_CONNECTION_STRING": endpoints.connection_string}) as run:
        for i in range(40):
            with run.step(f"step {i}"):
                nbt.log.info("step %d done", i)
    (request,) = endpoints.of_kind("Request")
    assert request["tags"]["ai.operation.id"] == TRACE_ID
    assert request["tags"]["ai.operation.parentId"] == PARENT_ID
    assert request["iKey"] == IKEY
    steps = endpoints.of_kind("RemoteDependency")
    assert len(steps) == 40
    request_id = request["data"]["baseData"]["id"]
    assert all(
        s["tags"]["ai.operation.parentId"] == request_id and s["data"]["baseData"]["type"] == "InProc" for s in steps
    )
    assert all(e.get("sampleRate", 100.0) == 100.0 for e in endpoints.envelopes)
    messages = [m for m in endpoints.of_kind("Message") if m["data"]["baseData"]["message"].startswith("step ")]
    assert len(messages) == 40
    assert {m["tags"]["ai.operation.id"] for m in messages} == {TRACE_ID}


def test_unsampled_parent_records_nothing(endpoints: Endpoints) -> None:
    """A caller that did not sample (flags 00): no span of the run is exported, whatever the exporter's sampler."""
    environ = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": endpoints.connection_string,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoints.url,
    }
    with nbt.run(params(flags="00"), environ=environ) as run, run.step("extract"):
        pass
    assert endpoints.of_kind("Request") == [] and endpoints.of_kind("RemoteDependency") == []
    assert endpoints.spans == []


@pytest.mark.parametrize(
    ("name", "arg", "description"),
    [
        ("", "", "ParentBased{root:AlwaysOnSampler"),
        ("parentbased_always_on", "", "ParentBased{root:AlwaysOnSampler"),
        ("always_off", "", "AlwaysOffSampler"),
        ("traceidratio", "0.25", "TraceIdRatioBased{0.25}"),
        ("parentbased_traceidratio", "0.5", "ParentBased{root:TraceIdRatioBased{0.5}"),
        ("microsoft.rate_limited", "7", "RateLimitedSampler{7.0}"),
        ("microsoft.fixed_percentage", "0.3", "ApplicationInsightsSampler0.3"),
        ("no-such-sampler", "", "ParentBased{root:AlwaysOnSampler"),
    ],
)
def test_sampler_from(name: str, arg: str, description: str) -> None:
    sampler = nbt.sampler_from({"OTEL_TRACES_SAMPLER": name, "OTEL_TRACES_SAMPLER_ARG": arg})
    assert sampler.get_description().startswith(description)


def test_default_sampler_follows_the_parent() -> None:
    assert isinstance(nbt.sampler_from({}), ParentBased)


def test_an_explicit_sampler_is_honoured(endpoints: Endpoints) -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoints.url, "OTEL_TRACES_SAMPLER": "always_off"}
    with nbt.run(params(), environ=environ) as run, run.step("extract"):
        pass
    assert endpoints.spans == []


def test_runs_in_one_process_export_their_own(endpoints: Endpoints, caplog: pytest.LogCaptureFixture) -> None:
    """An interactive cluster: three runs in one process, each exported once, with its own run id; nothing piles up."""
    environ = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": endpoints.connection_string,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoints.url,
    }
    nbt._correlate_logging()  # the module's one lasting handler, added on a first run
    handlers = list(nbt.log.handlers)

    def live_threads() -> int:
        # Not the test server's own threads, one a connection, which end
        # when it sees the client close (after the run has returned).
        return sum(1 for t in threading.enumerate() if "process_request_thread" not in t.name)

    threads = [live_threads()]
    with caplog.at_level(logging.WARNING):
        for run_id in ("101", "102", "103"):
            with nbt.run(params(run_id=run_id), environ=environ) as run, run.step("load"):
                nbt.log.info("run %s loaded", run_id)
            assert nbt.log.handlers == handlers, "a run left a log handler behind"
            threads.append(live_threads())
    assert "Overriding" not in caplog.text
    assert max(threads) == threads[0], f"threads outlived their run: {threads}"
    requests = endpoints.of_kind("Request")
    assert sorted(r["data"]["baseData"]["properties"]["databricks.run.id"] for r in requests) == ["101", "102", "103"]
    roots = [(res, s) for res, s in endpoints.spans if s.name == "notebook distributed_tracing"]
    assert sorted(res["databricks.run.id"].int_value for res, _ in roots) == [101, 102, 103]
    run_of_root = {s.span_id: res["databricks.run.id"].int_value for res, s in roots}
    loads = [(res, s) for res, s in endpoints.spans if s.name == "load"]
    assert len(loads) == 3
    for res, span in loads:
        assert res["databricks.run.id"].int_value == run_of_root[span.parent_span_id], "a step carries another run's id"
    assert len(endpoints.logs) >= 3 and all(
        format(int.from_bytes(r.trace_id, "big"), "032x") == TRACE_ID for r in endpoints.logs if r.trace_id
    )


class FakeSecrets:
    def __init__(self, values: dict[tuple[str, str], str]) -> None:
        self.values = values
        self.read: list[tuple[str, str]] = []

    def get(self, scope: str, key: str) -> str:
        self.read.append((scope, key))
        if (scope, key) not in self.values:
            raise ValueError(f"Secret does not exist with scope: {scope} and key: {key}")
        return self.values[(scope, key)]


class FakeDbutils:
    def __init__(self, secrets: FakeSecrets) -> None:
        self.secrets = secrets


def test_settings_come_from_the_file_and_the_secret_scope(tmp_path: Any, endpoints: Endpoints) -> None:
    """The same settings on any compute: the file beside the module, secrets through dbutils, the environment first."""
    path = tmp_path / nbt.SETTINGS_FILE
    path.write_text(
        json.dumps(
            {
                "settings": {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoints.url, "OTEL_SERVICE_NAME": "etl"},
                "secrets": {
                    "APPLICATIONINSIGHTS_CONNECTION_STRING": {"scope": "nbtrace", "key": "cs"},
                    "OTEL_EXPORTER_OTLP_HEADERS": {"scope": "nbtrace", "key": "h"},
                },
            }
        )
    )
    secrets = FakeSecrets({("nbtrace", "cs"): endpoints.connection_string, ("nbtrace", "h"): "x-api-key=s3cr3t"})
    values = nbt.settings_values({}, dbutils=FakeDbutils(secrets), settings_file=path)
    assert values["OTEL_SERVICE_NAME"] == "etl"
    assert values["APPLICATIONINSIGHTS_CONNECTION_STRING"] == endpoints.connection_string
    settings = nbt.Settings.from_environ(values)
    assert settings.otlp_headers == {"x-api-key": "s3cr3t"} and "s3cr3t" not in repr(settings)
    # The environment wins, and a secret it sets is not read.
    secrets.read.clear()
    values = nbt.settings_values(
        {"OTEL_SERVICE_NAME": "local", "OTEL_EXPORTER_OTLP_HEADERS": "a=b"},
        dbutils=FakeDbutils(secrets),
        settings_file=path,
    )
    assert values["OTEL_SERVICE_NAME"] == "local" and values["OTEL_EXPORTER_OTLP_HEADERS"] == "a=b"
    assert secrets.read == [("nbtrace", "cs")]
    # Locally, without dbutils: the stand-in's secrets; a missing one fails the run as dbutils would.
    local = {"NBTRACE_LOCAL_SECRETS": json.dumps({"nbtrace": {"cs": "InstrumentationKey=x", "h": "a=b"}})}
    assert (
        nbt.settings_values(local, settings_file=path)["APPLICATIONINSIGHTS_CONNECTION_STRING"]
        == "InstrumentationKey=x"
    )
    with pytest.raises(ValueError, match="Secret does not exist with scope: nbtrace and key: cs"):
        nbt.settings_values({"NBTRACE_LOCAL_SECRETS": "{}"}, settings_file=path)
    # No file: the environment alone, as before.
    assert nbt.settings_values({"A": "1"}, settings_file=tmp_path / "none.json") == {"A": "1"}


def test_otlp_headers_reach_the_endpoint(endpoints: Endpoints) -> None:
    """OTEL_EXPORTER_OTLP_HEADERS (from the secret scope on Databricks) go with every OTLP export, of spans and logs."""
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoints.url,
        "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cr3t,x-tenant=a%20b",
    }
    with nbt.run(params(), environ=environ) as run, run.step("extract"):
        nbt.log.info("extracted")
    assert len(endpoints.headers) >= 2
    assert all(h.get("x-api-key") == "s3cr3t" and h.get("x-tenant") == "a b" for h in endpoints.headers)


def test_logs_alone_over_otlp(endpoints: Endpoints) -> None:
    """A logs endpoint without a traces one still exports the log records."""
    with nbt.run(params(), environ={"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": endpoints.url + "/v1/logs"}):
        nbt.log.info("only logs")
    assert endpoints.logs and endpoints.spans == []


def test_the_service_credential_signs_in_to_ingestion(
    tls_endpoints: Endpoints, caplog: pytest.LogCaptureFixture
) -> None:
    """With NBTRACE_INGESTION_CREDENTIAL, every post carries the credential's token for Azure Monitor."""
    cred = FakeServiceCredential()
    dbutils = CredentialDbutils({"nbtrace-ingestion": cred})
    environ = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": tls_endpoints.connection_string,
        "NBTRACE_INGESTION_CREDENTIAL": "nbtrace-ingestion",
    }
    level = caplog.at_level(logging.INFO, logger=nbt.LOGGER_NAME)
    with level, nbt.run(params(), environ=environ, dbutils=dbutils) as run, run.step("load"):
        nbt.log.info("loaded")
    assert dbutils.asked == ["nbtrace-ingestion"]
    assert {s for scopes in cred.scopes for s in scopes} == {"https://monitor.azure.com//.default"}
    assert tls_endpoints.authorization, "nothing was posted"
    assert set(tls_endpoints.authorization) == {"Bearer token-of-the-access-connector"}
    assert len(tls_endpoints.of_kind("Request")) == 1
    assert len(tls_endpoints.of_kind("Message")) >= 1
    assert "signed in with Microsoft Entra ID through service credential nbtrace-ingestion" in caplog.text


def test_without_a_service_credential_the_key_is_used(endpoints: Endpoints, caplog: pytest.LogCaptureFixture) -> None:
    dbutils = CredentialDbutils({})
    environ = {"APPLICATIONINSIGHTS_CONNECTION_STRING": endpoints.connection_string}
    with caplog.at_level(logging.INFO, logger=nbt.LOGGER_NAME), nbt.run(params(), environ=environ, dbutils=dbutils):
        pass
    assert dbutils.asked == []
    assert endpoints.authorization and set(endpoints.authorization) == {None}
    assert "with the connection string's instrumentation key" in caplog.text


def test_a_credential_the_run_may_not_use_falls_back_to_the_key(
    endpoints: Endpoints, caplog: pytest.LogCaptureFixture
) -> None:
    """The run goes on; the error names the credential and the fallback."""
    environ = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": endpoints.connection_string,
        "NBTRACE_INGESTION_CREDENTIAL": "not-granted",
    }
    with nbt.run(params(), environ=environ, dbutils=CredentialDbutils({})):
        pass
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("cannot use service credential not-granted" in m and "key instead" in m for m in errors), errors
    assert endpoints.authorization and set(endpoints.authorization) == {None}
    assert len(endpoints.of_kind("Request")) == 1


def test_locally_a_service_credential_is_a_managed_identity() -> None:
    from azure.identity import ManagedIdentityCredential

    client_id = "11111111-2222-3333-4444-555555555555"
    env = {"NBTRACE_LOCAL_SERVICE_CREDENTIALS": json.dumps({"nbtrace-ingestion": client_id})}
    assert isinstance(nbt.service_credential("nbtrace-ingestion", environ=env), ManagedIdentityCredential)
    with pytest.raises(PermissionError, match="holds no ACCESS"):
        nbt.service_credential("other", environ=env)
