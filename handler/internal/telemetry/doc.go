// Package telemetry sets up the handler's OpenTelemetry tracing from app
// settings (the standard OTEL_* names), describes the process as an Azure
// Functions app in its resource, and provides the slog handler that stamps
// every log record with its trace and span ids and hands an invocation's
// records back to the Functions host.
package telemetry
