// Package appinsights exports OpenTelemetry traces, logs and metrics to
// Application Insights. There is no maintained Go exporter, so this one
// follows Microsoft's Python azure-monitor-opentelemetry-exporter (the
// reference its tests compare against, field by field): SERVER and CONSUMER
// spans become Request envelopes, CLIENT, PRODUCER and INTERNAL spans
// RemoteDependency envelopes, span events Exception or Message envelopes,
// log records Message envelopes, and metric points Metric envelopes, all
// carrying the operation id (trace id) and parent id, cloud role and
// instance.
//
// Envelopes are posted, gzip-compressed, to {IngestionEndpoint}v2.1/track,
// with an Entra ID token when the connection is set up for it. Sending runs
// in the background from a bounded queue: exporting never blocks a request,
// and what cannot be queued or sent is dropped and counted. Throttling
// (429), server errors and the retriable items of a partial success (206)
// are retried with backoff, honouring Retry-After.
package appinsights
