package telemetry

import (
	"context"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// sensitiveQuery are query parameters whose values are credentials:
// Functions keys (code), SAS signatures (sig), and the usual token names.
var sensitiveQuery = []string{"code", "sig", "key", "apikey", "api_key", "token", "access_token", "client_secret", "password", "secret"}

// redactProcessor removes credentials from URL attributes as spans start
// (otelhttp records url.full with its query): each sensitive query value
// becomes REDACTED. Spans are otherwise untouched.
type redactProcessor struct{}

var _ sdktrace.SpanProcessor = redactProcessor{}

func (redactProcessor) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	for _, kv := range s.Attributes() {
		switch kv.Key {
		case "url.full", "http.url", "url.query", "http.target":
			if v := kv.Value.AsString(); strings.Contains(v, "=") {
				if r := redactQuery(v); r != v {
					s.SetAttributes(attribute.String(string(kv.Key), r))
				}
			}
		}
	}
}

func (redactProcessor) OnEnd(sdktrace.ReadOnlySpan)      {}
func (redactProcessor) Shutdown(context.Context) error   { return nil }
func (redactProcessor) ForceFlush(context.Context) error { return nil }

// redactQuery replaces the values of sensitive query parameters in a URL,
// a path with a query, or a bare query.
func redactQuery(s string) string {
	prefix, query, hasQuery := strings.Cut(s, "?")
	if !hasQuery {
		prefix, query = "", s
	}
	fragment := ""
	if i := strings.IndexByte(query, '#'); i >= 0 {
		query, fragment = query[:i], query[i:]
	}
	parts := strings.Split(query, "&")
	changed := false
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		for _, sens := range sensitiveQuery {
			if strings.EqualFold(name, sens) {
				parts[i] = k + "=REDACTED"
				changed = true
			}
		}
	}
	if !changed {
		return s
	}
	out := strings.Join(parts, "&") + fragment
	if hasQuery {
		return prefix + "?" + out
	}
	return out
}
