package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/nbtrace/nbtrace/functions/api"
)

// otlpSettings are the OTEL_EXPORTER_OTLP_* settings, read through getenv
// and passed to the exporters explicitly.
type otlpSettings struct {
	traces, logs, metrics string // full URLs, "" when off
	headers               map[string]string
	timeout               time.Duration
	gzip                  bool
	entraScope            string
}

func (o otlpSettings) any() bool { return o.traces != "" || o.logs != "" || o.metrics != "" }

func readOTLP(getenv func(string) string) (otlpSettings, error) {
	o := otlpSettings{timeout: 10 * time.Second, entraScope: getenv("NBTRACE_OTLP_ENTRA_SCOPE")}
	base := getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	for _, sig := range []struct {
		name, path string
		dst        *string
	}{{"TRACES", "/v1/traces", &o.traces}, {"LOGS", "/v1/logs", &o.logs}, {"METRICS", "/v1/metrics", &o.metrics}} {
		if strings.EqualFold(getenv("OTEL_"+sig.name+"_EXPORTER"), "none") {
			continue
		}
		name, raw := "OTEL_EXPORTER_OTLP_"+sig.name+"_ENDPOINT", getenv("OTEL_EXPORTER_OTLP_"+sig.name+"_ENDPOINT")
		if raw == "" && base != "" {
			name, raw = "OTEL_EXPORTER_OTLP_ENDPOINT", strings.TrimSuffix(base, "/")+sig.path
		}
		if raw == "" {
			continue
		}
		u, err := api.HTTPURLSetting(name, raw)
		if err != nil {
			return o, err
		}
		*sig.dst = u
	}
	if h := getenv("OTEL_EXPORTER_OTLP_HEADERS"); h != "" {
		o.headers = map[string]string{}
		for _, pair := range strings.Split(h, ",") {
			k, v, ok := strings.Cut(pair, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return o, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: an entry is not key=value")
			}
			dv, err := url.QueryUnescape(strings.TrimSpace(v))
			if err != nil {
				return o, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: the value of %s is not URL-encoded", k)
			}
			o.headers[k] = dv
		}
	}
	if v := getenv("OTEL_EXPORTER_OTLP_TIMEOUT"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return o, fmt.Errorf("OTEL_EXPORTER_OTLP_TIMEOUT: %q is not a whole number of milliseconds above 0", v)
		}
		o.timeout = time.Duration(ms) * time.Millisecond
	}
	switch c := strings.ToLower(getenv("OTEL_EXPORTER_OTLP_COMPRESSION")); c {
	case "", "none":
	case "gzip":
		o.gzip = true
	default:
		return o, fmt.Errorf("OTEL_EXPORTER_OTLP_COMPRESSION: %q is not gzip or none", c)
	}
	return o, nil
}

type otlpExporters struct {
	traces   sdktrace.SpanExporter
	logs     sdklog.Exporter
	metrics  sdkmetric.Exporter
	describe []string
}

// exporters builds the OTLP/HTTP exporters. They do not dial until they
// export.
func (o otlpSettings) exporters(ctx context.Context, client *http.Client, getenv func(string) string) (otlpExporters, error) {
	var out otlpExporters
	if o.entraScope != "" {
		cred, err := azureCredential(getenv("AZURE_CLIENT_ID"))
		if err != nil {
			return out, fmt.Errorf("NBTRACE_OTLP_ENTRA_SCOPE: %w", err)
		}
		base := http.DefaultTransport
		if client != nil && client.Transport != nil {
			base = client.Transport
		}
		client = &http.Client{Transport: &bearerTransport{next: base, cred: cred, scope: o.entraScope}}
	}
	if o.traces != "" {
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(o.traces), otlptracehttp.WithTimeout(o.timeout)}
		if o.headers != nil {
			opts = append(opts, otlptracehttp.WithHeaders(o.headers))
		}
		if o.gzip {
			opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}
		if client != nil {
			opts = append(opts, otlptracehttp.WithHTTPClient(client))
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return out, fmt.Errorf("otlp trace exporter: %w", err)
		}
		out.traces = exp
		out.describe = append(out.describe, "traces "+hostOf(o.traces))
	}
	if o.logs != "" {
		opts := []otlploghttp.Option{otlploghttp.WithEndpointURL(o.logs), otlploghttp.WithTimeout(o.timeout)}
		if o.headers != nil {
			opts = append(opts, otlploghttp.WithHeaders(o.headers))
		}
		if o.gzip {
			opts = append(opts, otlploghttp.WithCompression(otlploghttp.GzipCompression))
		}
		if client != nil {
			opts = append(opts, otlploghttp.WithHTTPClient(client))
		}
		exp, err := otlploghttp.New(ctx, opts...)
		if err != nil {
			return out, fmt.Errorf("otlp log exporter: %w", err)
		}
		out.logs = exp
		out.describe = append(out.describe, "logs "+hostOf(o.logs))
	}
	if o.metrics != "" {
		opts := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpointURL(o.metrics), otlpmetrichttp.WithTimeout(o.timeout)}
		if o.headers != nil {
			opts = append(opts, otlpmetrichttp.WithHeaders(o.headers))
		}
		if o.gzip {
			opts = append(opts, otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression))
		}
		if client != nil {
			opts = append(opts, otlpmetrichttp.WithHTTPClient(client))
		}
		exp, err := otlpmetrichttp.New(ctx, opts...)
		if err != nil {
			return out, fmt.Errorf("otlp metric exporter: %w", err)
		}
		out.metrics = exp
		out.describe = append(out.describe, "metrics "+hostOf(o.metrics))
	}
	return out, nil
}

// bearerTransport adds a fresh Entra ID token to each export (Azure
// Monitor's OTLP ingestion), renewed 5 minutes before it expires.
type bearerTransport struct {
	next    http.RoundTripper
	cred    azcore.TokenCredential
	scope   string
	mu      sync.Mutex
	token   string
	expires time.Time
}

func (b *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	b.mu.Lock()
	if b.token == "" || time.Until(b.expires) < 5*time.Minute {
		tok, err := b.cred.GetToken(r.Context(), policy.TokenRequestOptions{Scopes: []string{b.scope}})
		if err != nil {
			b.mu.Unlock()
			return nil, fmt.Errorf("entra id token for OTLP: %w", err)
		}
		b.token, b.expires = tok.Token, tok.ExpiresOn
	}
	token := b.token
	b.mu.Unlock()
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	return b.next.RoundTrip(r)
}
