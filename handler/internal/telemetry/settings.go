package telemetry

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/handler/appinsights"
)

// FlushPolicy says when telemetry is flushed besides at shutdown.
type FlushPolicy string

// Flush policies.
const (
	// FlushBatch exports every OTEL_BSP_SCHEDULE_DELAY only.
	FlushBatch FlushPolicy = "batch"
	// FlushAsync starts a flush when an invocation ends, without making
	// the invocation wait.
	FlushAsync FlushPolicy = "async"
	// FlushSync flushes before the invocation answers, up to
	// NBTRACE_FLUSH_TIMEOUT.
	FlushSync FlushPolicy = "sync"
)

// Settings lists the telemetry settings the handler reads.
var Settings = []api.Setting{
	{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Default: "", Doc: "OTLP/HTTP base URL (such as http://127.0.0.1:4318); /v1/traces, /v1/logs and /v1/metrics are appended. Unset: no OTLP export.", Azure: api.Optional},
	{Name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", Default: "", Doc: "OTLP/HTTP traces URL, used as is; wins over OTEL_EXPORTER_OTLP_ENDPOINT (likewise _LOGS_ and _METRICS_ENDPOINT).", Azure: api.Optional},
	{Name: "OTEL_EXPORTER_OTLP_HEADERS", Default: "", Doc: "Headers sent with each OTLP export: key=value,… (values URL-encoded).", Azure: api.Optional},
	{Name: "OTEL_EXPORTER_OTLP_TIMEOUT", Default: "10000", Doc: "Time limit of one OTLP export, in milliseconds.", Azure: api.Optional},
	{Name: "OTEL_EXPORTER_OTLP_COMPRESSION", Default: "none", Doc: "gzip or none.", Azure: api.Optional},
	{Name: "OTEL_TRACES_EXPORTER", Default: "otlp", Doc: "none turns OTLP trace export off (likewise OTEL_LOGS_EXPORTER and OTEL_METRICS_EXPORTER).", Azure: api.Optional},
	{Name: "NBTRACE_OTLP_ENTRA_SCOPE", Default: "", Doc: "When set (such as https://monitor.azure.com/.default), OTLP exports carry an Entra ID token for this scope, from the managed identity (AZURE_CLIENT_ID).", Azure: api.Optional},
	{Name: "APPLICATIONINSIGHTS_CONNECTION_STRING", Default: "", Doc: "Export traces, logs and metrics to Application Insights (v2.1/track). Unset: no App Insights export.", Azure: api.ByInfra},
	{Name: "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", Default: "", Doc: "Authorization=AAD[;ClientId=…]: sign in to ingestion with Entra ID (the managed identity), as the Functions host does.", Azure: api.ByInfra},
	{Name: "OTEL_TRACES_SAMPLER", Default: "parentbased_always_on", Doc: "Sampler: always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio.", Azure: api.Optional},
	{Name: "OTEL_TRACES_SAMPLER_ARG", Default: "1", Doc: "The ratio of the traceidratio samplers, 0 to 1.", Azure: api.Optional},
	{Name: "OTEL_SERVICE_NAME", Default: DefaultServiceName, Doc: "service.name (App Insights cloud_RoleName, after service.namespace).", Azure: api.ByInfra},
	{Name: "OTEL_RESOURCE_ATTRIBUTES", Default: "", Doc: "Extra resource attributes, key=value,…", Azure: api.Optional},
	{Name: "OTEL_SDK_DISABLED", Default: "false", Doc: "true: export nothing at all.", Azure: api.Optional},
	{Name: "OTEL_BSP_SCHEDULE_DELAY", Default: "5000", Doc: "Milliseconds between span batches.", Azure: api.Optional},
	{Name: "OTEL_METRIC_EXPORT_INTERVAL", Default: "60000", Doc: "Milliseconds between metric exports.", Azure: api.Optional},
	{Name: "NBTRACE_FLUSH_POLICY", Default: string(FlushAsync), Doc: "When telemetry leaves besides the batches and shutdown: async (a flush starts when each invocation ends, the invocation does not wait), sync (the invocation waits for it, up to NBTRACE_FLUSH_TIMEOUT) or batch (only the batches).", Azure: api.Optional},
	{Name: "NBTRACE_FLUSH_TIMEOUT", Default: "2s", Doc: "Longest one flush after an invocation may take.", Azure: api.Optional},
}

type settings struct {
	disabled       bool
	sampler        sdktrace.Sampler
	otlp           otlpSettings
	ai             *appinsights.Connection
	aiAuth         appinsights.Auth
	batchDelay     time.Duration
	metricInterval time.Duration
	flushPolicy    FlushPolicy
	flushTimeout   time.Duration
}

func readSettings(getenv func(string) string) (settings, error) {
	s := settings{disabled: strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true"), flushPolicy: FlushAsync}
	var err error
	if s.sampler, err = samplerFrom(getenv); err != nil {
		return s, err
	}
	if s.otlp, err = readOTLP(getenv); err != nil {
		return s, err
	}
	if cs := getenv("APPLICATIONINSIGHTS_CONNECTION_STRING"); cs != "" {
		c, err := appinsights.ParseConnectionString(cs)
		if err != nil {
			return s, err
		}
		s.ai = &c
		if s.aiAuth, err = appinsights.ParseAuthenticationString(getenv("APPLICATIONINSIGHTS_AUTHENTICATION_STRING")); err != nil {
			return s, err
		}
		if s.aiAuth.EntraID && !c.TLSOrLoopback() {
			return s, fmt.Errorf("APPLICATIONINSIGHTS_AUTHENTICATION_STRING: an Entra ID token is sent only over HTTPS, and IngestionEndpoint %s is not", c.IngestionEndpoint)
		}
	}
	if s.batchDelay, err = millis(getenv, "OTEL_BSP_SCHEDULE_DELAY", 5*time.Second); err != nil {
		return s, err
	}
	if s.metricInterval, err = millis(getenv, "OTEL_METRIC_EXPORT_INTERVAL", time.Minute); err != nil {
		return s, err
	}
	switch p := FlushPolicy(strings.ToLower(getenv("NBTRACE_FLUSH_POLICY"))); p {
	case "":
	case FlushBatch, FlushAsync, FlushSync:
		s.flushPolicy = p
	default:
		return s, fmt.Errorf("NBTRACE_FLUSH_POLICY: %q is not async, sync or batch", p)
	}
	if s.flushTimeout, err = api.DurationSetting(getenv, "NBTRACE_FLUSH_TIMEOUT", 2*time.Second, time.Millisecond, time.Minute); err != nil {
		return s, err
	}
	return s, nil
}

// millis reads a setting in milliseconds, as the OTEL_* settings are.
func millis(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: %q is not a whole number of milliseconds above 0", name, v)
	}
	return time.Duration(n) * time.Millisecond, nil
}

func samplerFrom(getenv func(string) string) (sdktrace.Sampler, error) {
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	ratio := 1.0
	if arg := getenv("OTEL_TRACES_SAMPLER_ARG"); arg != "" && strings.Contains(name, "traceidratio") {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q is not a ratio from 0 to 1", arg)
		}
		ratio = r
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER: %q is not one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio", name)
}

// azureCredential is the managed identity with clientID, else the default
// chain.
func azureCredential(clientID string) (azcore.TokenCredential, error) {
	if clientID != "" {
		return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(clientID)})
	}
	return azidentity.NewDefaultAzureCredential(nil)
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Host
}
