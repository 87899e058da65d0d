// Package otlpsink is a trace backend for local development and tests: an
// OTLP/HTTP receiver (POST /v1/traces, protobuf or JSON, optionally gzip,
// as every OTLP exporter sends) that keeps the spans it receives (the
// newest traces, within a memory budget), answers queries for a trace's
// spans, and prints each trace as an indented tree with a waterfall of
// durations: once when it is complete, and again when spans arrive later
// (a notebook run's, say).
//
// It is a stand-in for a real OTLP backend (Jaeger, Azure Monitor's OTLP
// ingestion): it speaks the same OTLP/HTTP request and response encoding,
// so exporters cannot tell the difference.
package otlpsink
