package appinsights

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// SDKVersion goes into ai.internal.sdkVersion.
var SDKVersion = "go" + strings.TrimPrefix(runtime.Version(), "go") + ":otel1.47.0:nbtrace"

// Attributes that are fields of the envelope rather than custom properties,
// as the Python exporter decides (_is_standard_attribute). Its prefix list
// spells "fass."; faas.* attributes are custom properties there and here.
var standardPrefixes = []string{"http.", "db.", "message.", "messaging.", "rpc.", "enduser.", "net.", "peer.",
	"exception.", "thread.", "fass.", "code."}

var standardKeys = map[string]bool{
	"session.id": true, "_MS.sampleRate": true, "microsoft.custom_measurements": true,
	"client.address": true, "client.port": true, "server.address": true, "server.port": true, "url.full": true,
	"url.path": true, "url.query": true, "url.scheme": true, "url.template": true, "error.type": true,
	"network.local.address": true, "network.local.port": true, "network.protocol.name": true,
	"network.peer.address": true, "network.peer.port": true, "network.protocol.version": true,
	"network.transport": true, "user_agent.original": true, "user_agent.synthetic.type": true,
}

func isStandard(key string) bool {
	if standardKeys[key] {
		return true
	}
	for _, p := range standardPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// attrs is a span's attributes by key.
type attrs map[attribute.Key]attribute.Value

func attrsOf(kvs []attribute.KeyValue) attrs {
	m := make(attrs, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func (a attrs) str(k string) string {
	v, ok := a[attribute.Key(k)]
	if !ok {
		return ""
	}
	return valueString(v)
}

func (a attrs) has(k string) bool { _, ok := a[attribute.Key(k)]; return ok }

// valueString writes an attribute value as the Python exporter's str()
// does for scalars (booleans as True and False); arrays as JSON.
func valueString(v attribute.Value) string {
	switch v.Type() {
	case attribute.BOOL:
		if v.AsBool() {
			return "True"
		}
		return "False"
	case attribute.STRING:
		return v.AsString()
	case attribute.INT64:
		return strconv.FormatInt(v.AsInt64(), 10)
	case attribute.FLOAT64:
		return strconv.FormatFloat(v.AsFloat64(), 'g', -1, 64)
	default:
		b, _ := json.Marshal(v.AsInterface())
		return string(b)
	}
}

// properties are the custom properties: every non-standard attribute, keys
// of at most 150 characters, values cut to 8 KiB.
func properties(kvs []attribute.KeyValue) map[string]string {
	p := map[string]string{}
	for _, kv := range kvs {
		k := string(kv.Key)
		if k == "" || len(k) > 150 || isStandard(k) {
			continue
		}
		p[k] = truncate(valueString(kv.Value), 8192)
	}
	return p
}

// partA holds the tags every envelope of a resource carries.
func partA(res *resource.Resource) map[string]string {
	tags := map[string]string{TagSDKVersion: SDKVersion}
	a := attrsOf(res.Attributes())
	role := a.str("service.name")
	if ns := a.str("service.namespace"); ns != "" && role != "" {
		role = ns + "." + role
	}
	tags[TagCloudRole] = role
	inst := a.str("service.instance.id")
	if inst == "" {
		inst, _ = os.Hostname()
	}
	tags[TagCloudRoleInstance], tags[TagNodeName] = inst, inst
	if v := a.str("service.version"); v != "" {
		tags[TagApplicationVer] = v
	}
	return tags
}

func newEnvelope(name, ikey string, tags map[string]string, baseType string, data any, t string) Envelope {
	return Envelope{Ver: 1, Name: name, Time: t, IKey: ikey, Tags: tags, Data: Data{BaseType: baseType, BaseData: data}}
}

func copyTags(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+4)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// SpanEnvelopes maps one span to its envelope and its events' envelopes.
func SpanEnvelopes(s sdktrace.ReadOnlySpan, ikey string, base map[string]string) []Envelope {
	a := attrsOf(s.Attributes())
	sc := s.SpanContext()
	tags := copyTags(base)
	tags[TagOperationID] = sc.TraceID().String()
	if p := s.Parent(); p.SpanID().IsValid() {
		tags[TagOperationParentID] = p.SpanID().String()
	}
	ok := s.Status().Code != codes.Error
	dur := formatDuration(s.EndTime().Sub(s.StartTime()))
	props := properties(s.Attributes())
	if links := s.Links(); len(links) > 0 {
		// Written as the Python exporter's json.dumps writes it; at most
		// 103 links fit the 8 KiB of a property.
		var b strings.Builder
		b.WriteByte('[')
		for i, l := range links {
			if i > 102 {
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, `{"operation_Id": "%s", "id": "%s"}`, l.SpanContext.TraceID(), l.SpanContext.SpanID())
		}
		b.WriteByte(']')
		props["_MS.links"] = b.String()
	}
	method := a.str("http.request.method")
	if method == "" {
		method = a.str("http.method")
	}
	status := statusCode(a)
	var env Envelope
	switch s.SpanKind() {
	case trace.SpanKindServer, trace.SpanKindConsumer:
		d := &RequestData{Ver: 2, ID: sc.SpanID().String(), Name: s.Name(), Duration: dur, ResponseCode: "0", Success: ok,
			Properties: props, Measurements: map[string]float64{}}
		tags[TagOperationName] = s.Name()
		if ip := a.str("client.address"); ip != "" {
			tags[TagLocationIP] = ip
		}
		if method != "" {
			if ua := a.str("user_agent.original"); ua != "" {
				tags[TagUserAgent] = ua
			}
			d.URL = requestURL(a)
			if route := a.str("http.route"); route != "" {
				tags[TagOperationName] = method + " " + route
			} else if d.URL != "" {
				if u, err := url.Parse(d.URL); err == nil {
					path := u.Path
					if path == "" {
						path = "/"
					}
					tags[TagOperationName] = method + " " + path
				}
			}
			d.ResponseCode = strconv.Itoa(status)
			d.Success = ok && status != 0 && (status < 400 || status >= 500)
		}
		d.Name = truncate(tags[TagOperationName], 1024)
		d.URL = truncate(d.URL, 2048)
		env = newEnvelope(RequestName, ikey, tags, "RequestData", d, formatTime(s.StartTime()))
	default:
		d := &RemoteDependencyData{Ver: 2, Name: s.Name(), ID: sc.SpanID().String(), ResultCode: "0", Duration: dur, Success: ok,
			Properties: props, Measurements: map[string]float64{}}
		tags[TagOperationName] = s.Name()
		target := peerTarget(a)
		switch s.SpanKind() {
		case trace.SpanKindClient:
			switch {
			case method != "":
				d.Type = "HTTP"
				if ua := a.str("user_agent.original"); ua != "" {
					tags[TagUserAgent] = ua
				}
				full := a.str("url.full")
				if full == "" {
					full = a.str("http.url")
				}
				if route := a.str("http.route"); route != "" {
					tags[TagOperationName] = method + " " + route
				}
				d.Data = full
				var path string
				target, path = httpTarget(a, full)
				if path != "" {
					d.Name = method + " " + path
					tags[TagOperationName] = d.Name
				}
				d.ResultCode = strconv.Itoa(status)
			case a.has("messaging.system"):
				d.Type = a.str("messaging.system")
				if target == "" {
					target = firstOf(a, "messaging.destination", "messaging.system")
				}
			case a.has("rpc.system"):
				d.Type = "rpc.system"
				if target == "" {
					target = a.str("rpc.system")
				}
			default:
				d.Type = "N/A"
			}
		case trace.SpanKindProducer:
			d.Type = "Queue Message"
			if sys := a.str("messaging.system"); sys != "" {
				d.Type += " | " + sys
			}
			if target == "" {
				target = firstOf(a, "messaging.destination", "messaging.system")
			}
		default:
			d.Type = "InProc"
		}
		d.Name = truncate(tags[TagOperationName], 1024)
		d.Data = truncate(d.Data, 8192)
		d.Target = truncate(target, 1024)
		env = newEnvelope(DependencyName, ikey, tags, "RemoteDependencyData", d, formatTime(s.StartTime()))
	}
	out := []Envelope{env}
	for _, ev := range s.Events() {
		etags := copyTags(base)
		etags[TagOperationID] = sc.TraceID().String()
		etags[TagOperationParentID] = sc.SpanID().String()
		ea := attrsOf(ev.Attributes)
		eprops := properties(ev.Attributes)
		if ev.Name == "exception" {
			typ, msg := ea.str("exception.type"), ea.str("exception.message")
			if typ == "" {
				typ = "Exception"
			}
			if msg == "" {
				msg = "Exception"
			}
			stack := ea.str("exception.stacktrace")
			data := &ExceptionData{Ver: 2, Properties: eprops, Measurements: map[string]float64{}, Exceptions: []ExceptionDetails{{
				TypeName: truncate(typ, 1024), Message: truncate(msg, 32768), HasFullStack: ea.has("exception.stacktrace"), Stack: truncate(stack, 32768),
			}}}
			out = append(out, newEnvelope(ExceptionName, ikey, etags, "ExceptionData", data, formatTime(ev.Time)))
			continue
		}
		data := &MessageData{Ver: 2, Message: truncate(ev.Name, 32768), Properties: eprops, Measurements: map[string]float64{}}
		out = append(out, newEnvelope(MessageName, ikey, etags, "MessageData", data, formatTime(ev.Time)))
	}
	return out
}

func statusCode(a attrs) int {
	for _, k := range []string{"http.response.status_code", "http.status_code"} {
		if v, ok := a[attribute.Key(k)]; ok {
			if n, err := strconv.Atoi(valueString(v)); err == nil {
				return n
			}
		}
	}
	return 0
}

func firstOf(a attrs, keys ...string) string {
	for _, k := range keys {
		if v := a.str(k); v != "" {
			return v
		}
	}
	return ""
}

// requestURL is url.full, else scheme://server.address[:port]path?query.
func requestURL(a attrs) string {
	if v := firstOf(a, "url.full", "http.url"); v != "" {
		return v
	}
	scheme := firstOf(a, "url.scheme", "http.scheme")
	target := a.str("url.path")
	if target != "" && a.has("url.query") {
		target += "?" + a.str("url.query")
	}
	if target == "" {
		target = a.str("http.target")
	}
	if scheme == "" || target == "" {
		return ""
	}
	host := a.str("server.address")
	if host != "" && a.has("server.port") {
		host += ":" + a.str("server.port")
	}
	if host == "" {
		host = a.str("http.host")
	}
	if host == "" {
		return ""
	}
	return scheme + "://" + host + target
}

func defaultPort(a attrs) string {
	switch firstOf(a, "url.scheme", "http.scheme") {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return "0"
}

// httpTarget is the dependency's target and path, as the Python exporter
// derives them.
func httpTarget(a attrs, full string) (target, path string) {
	path = "/"
	var u *url.URL
	if full != "" {
		if pu, err := url.Parse(full); err == nil {
			u = pu
			if pu.Path != "" {
				path = pu.Path
			}
		}
	}
	switch {
	case a.has("server.address"):
		target = a.str("server.address")
		// The Python exporter appends the port whenever it is not the
		// scheme's default, even when there is none ("host:None").
		if port := a.str("server.port"); port != "" && port != defaultPort(a) {
			target += ":" + port
		}
	case a.has("peer.service"):
		target = a.str("peer.service")
	case a.has("http.host"):
		target = a.str("http.host")
	case u != nil:
		target = u.Host
		if u.Port() == defaultPort(a) {
			target = u.Hostname()
		}
	}
	if target == "" {
		target = peerTarget(a)
	}
	return target, path
}

// peerTarget is peer.service, else net.peer.name or ip with a port.
func peerTarget(a attrs) string {
	if v := a.str("peer.service"); v != "" {
		return v
	}
	t := firstOf(a, "net.peer.name", "net.peer.ip")
	if p := a.str("net.peer.port"); p != "" && p != defaultPort(a) {
		t = fmt.Sprintf("%s:%s", t, p)
	}
	return t
}

// TraceExporter is an sdktrace.SpanExporter that queues envelopes on a
// Transmitter; it never blocks on the network.
type TraceExporter struct {
	tx   *Transmitter
	ikey string
}

var _ sdktrace.SpanExporter = (*TraceExporter)(nil)

// NewTraceExporter returns an exporter that sends through tx.
func NewTraceExporter(tx *Transmitter) *TraceExporter {
	return &TraceExporter{tx: tx, ikey: tx.conn.InstrumentationKey}
}

// ExportSpans converts spans and queues their envelopes.
func (e *TraceExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	var envs []Envelope
	var base map[string]string
	var res *resource.Resource
	for _, s := range spans {
		if s.Resource() != res {
			res, base = s.Resource(), partA(s.Resource())
		}
		envs = append(envs, SpanEnvelopes(s, e.ikey, base)...)
	}
	e.tx.Enqueue(envs)
	return nil
}

// Shutdown sends what is queued, within ctx.
func (e *TraceExporter) Shutdown(ctx context.Context) error { return e.tx.Shutdown(ctx) }
