package telemetry

import (
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// DefaultServiceName is service.name when OTEL_SERVICE_NAME is not set.
const DefaultServiceName = "nbtrace"

// Resource describes the process from the app settings that App Service and
// the Functions host set: the site name, region, instance and owner, plus
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES. OTEL_SERVICE_NAME wins
// over a service.name in OTEL_RESOURCE_ATTRIBUTES, as the specification
// says.
func Resource(getenv func(string) string, version string) *resource.Resource {
	attrs := []attribute.KeyValue{
		semconv.ServiceName(DefaultServiceName),
		semconv.CloudProviderAzure,
		semconv.CloudPlatformAzureFunctions,
	}
	if version != "" {
		attrs = append(attrs, semconv.ServiceVersion(version))
	}
	site := getenv("WEBSITE_SITE_NAME")
	if site != "" {
		attrs = append(attrs, semconv.ServiceNamespace(site))
	}
	if v := getenv("REGION_NAME"); v != "" {
		attrs = append(attrs, semconv.CloudRegion(v))
	}
	if v := getenv("WEBSITE_INSTANCE_ID"); v != "" {
		attrs = append(attrs, semconv.ServiceInstanceID(v), semconv.FaaSInstance(v))
	} else if v := getenv("FUNCTIONS_CUSTOMHANDLER_WORKER_ID"); v != "" {
		attrs = append(attrs, semconv.ServiceInstanceID(v))
	}
	if id := siteResourceID(getenv("WEBSITE_OWNER_NAME"), getenv("WEBSITE_RESOURCE_GROUP"), site); id != "" {
		attrs = append(attrs, semconv.CloudResourceID(id))
	}
	attrs = append(attrs, parseResourceAttributes(getenv("OTEL_RESOURCE_ATTRIBUTES"))...)
	if v := getenv("OTEL_SERVICE_NAME"); v != "" {
		attrs = append(attrs, semconv.ServiceName(v))
	}
	// Later attributes win: NewSchemaless keeps the last value of a key.
	return resource.NewWithAttributes(semconv.SchemaURL, dedupe(attrs)...)
}

// siteResourceID builds the ARM id of the Function App. WEBSITE_OWNER_NAME
// is "{subscriptionId}+{resourceGroup}-{region}webspace".
func siteResourceID(owner, group, site string) string {
	sub, _, ok := strings.Cut(owner, "+")
	if !ok || sub == "" || group == "" || site == "" {
		return ""
	}
	return "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.Web/sites/" + site
}

// parseResourceAttributes parses OTEL_RESOURCE_ATTRIBUTES, a comma-separated
// list of key=value with percent-encoded values. Malformed members are
// skipped, as the SDK does.
func parseResourceAttributes(s string) []attribute.KeyValue {
	var out []attribute.KeyValue
	for _, member := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(member, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			continue
		}
		if dv, err := url.PathUnescape(strings.TrimSpace(v)); err == nil {
			out = append(out, attribute.String(k, dv))
		}
	}
	return out
}

func dedupe(attrs []attribute.KeyValue) []attribute.KeyValue {
	idx := map[attribute.Key]int{}
	var out []attribute.KeyValue
	for _, kv := range attrs {
		if i, ok := idx[kv.Key]; ok {
			out[i] = kv
			continue
		}
		idx[kv.Key] = len(out)
		out = append(out, kv)
	}
	return out
}
