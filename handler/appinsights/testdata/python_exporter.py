"""Export the spans of spans.json with Microsoft's Python Azure Monitor exporter.

Usage: python python_exporter.py spans.json <ingestion endpoint URL>

The envelopes are posted to the given endpoint, as the exporter posts them
to Application Insights; the Go test compares them with its own.
"""

import json
import sys

from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

KINDS = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT, "producer": SpanKind.PRODUCER,
         "consumer": SpanKind.CONSUMER, "internal": SpanKind.INTERNAL}
STATUS = {"unset": StatusCode.UNSET, "ok": StatusCode.OK, "error": StatusCode.ERROR}


def ctx(trace_id: str, span_id: str, remote: bool = False) -> SpanContext:
    return SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=remote, trace_flags=TraceFlags(1))


def main() -> None:
    fixture = json.load(open(sys.argv[1]))
    resource = Resource(fixture["resource"])
    spans = []
    for s in fixture["spans"]:
        status = Status(STATUS[s["status"]], s.get("description") or None) if s["status"] == "error" else Status(STATUS[s["status"]])
        spans.append(ReadableSpan(
            name=s["name"],
            context=ctx(s["trace_id"], s["span_id"]),
            parent=ctx(s["trace_id"], s["parent_id"], remote=True) if s["parent_id"] else None,
            resource=resource,
            attributes=s.get("attributes", {}),
            events=[Event(e["name"], e.get("attributes", {}), e["time"]) for e in s.get("events", [])],
            links=[Link(ctx(l["trace_id"], l["span_id"])) for l in s.get("links", [])],
            kind=KINDS[s["kind"]],
            status=status,
            start_time=s["start"],
            end_time=s["end"],
            instrumentation_scope=InstrumentationScope("github.com/nbtrace/nbtrace/handler"),
        ))
    cs = "InstrumentationKey=00000000-0000-0000-0000-0000000000aa;IngestionEndpoint=" + sys.argv[2]
    exporter = AzureMonitorTraceExporter(connection_string=cs, disable_offline_storage=True)
    result = exporter.export(spans)
    print(result.name)


if __name__ == "__main__":
    main()
