package hostproto

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/handler/internal/telemetry"
	"github.com/nbtrace/nbtrace/handler/manifest"
)

// Header names the host sets on its requests to the handler.
const (
	HeaderInvocationID = "X-Azure-Functions-InvocationId"
	HeaderHostVersion  = "X-Azure-Functions-HostVersion"
	// headerProxyInvocationID is also set by hosts in proxying mode.
	headerProxyInvocationID = "X-Ms-Invocation-Id"
)

// DefaultMaxBodyBytes is the default limit of a request body.
const DefaultMaxBodyBytes = 256 << 10

// Attribute keys of the invocation span beyond the semantic conventions.
const (
	AttrProtocol     = attribute.Key("nbtrace.host.protocol")
	AttrParentSource = attribute.Key("nbtrace.trace_parent.source")
	AttrHostVersion  = attribute.Key("nbtrace.host.version")
)

// Options configures NewServer.
type Options struct {
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	Logger         *slog.Logger
	// MaxBodyBytes limits each request body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// SiteName is WEBSITE_SITE_NAME; faas.name is "{SiteName}/{function}".
	SiteName string
	// MeterProvider records http.server.request.duration; none by default.
	MeterProvider metric.MeterProvider
	// AfterInvocation runs when an invocation's answer is ready, before
	// it is written (the telemetry flush policy); nothing by default.
	AfterInvocation func(ctx context.Context)
}

// Server serves the functions of an app to the Functions host.
type Server struct {
	app      *manifest.App
	handlers map[string]http.Handler
	opts     Options
	tracer   trace.Tracer
	duration metric.Float64Histogram
	cold     atomic.Bool
}

// NewServer returns the handler's HTTP server logic. handlers holds the Go
// implementation of each function in app, by function name.
func NewServer(app *manifest.App, handlers map[string]http.Handler, opts Options) *Server {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MeterProvider == nil {
		opts.MeterProvider = metricnoop.NewMeterProvider()
	}
	if opts.AfterInvocation == nil {
		opts.AfterInvocation = func(context.Context) {}
	}
	s := &Server{app: app, handlers: handlers, opts: opts,
		tracer: opts.TracerProvider.Tracer(telemetry.ScopeName)}
	// The HTTP semantic conventions' server duration (its count is the
	// request count); creating it cannot fail with the SDK's meter.
	s.duration, _ = opts.MeterProvider.Meter(telemetry.ScopeName).Float64Histogram("http.server.request.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of HTTP server requests (function invocations)."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120, 230))
	s.cold.Store(true)
	return s
}

// ServeHTTP answers the host's readiness and health probe (GET /) at once
// and serves invocations in the protocol the host uses for each function.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ready"}`)
		return
	}
	if s.isForwarded(r) {
		s.serveForwarded(w, r)
		return
	}
	s.servePayload(w, r)
}

// isForwarded tells the protocol a request arrives in, whatever host.json
// says: hosts before 2025 ignore customHandler.enableProxyingHttpRequest
// and send payload invocations, POST /{FunctionName}; forwarding and
// proxying hosts send the original request at its original path,
// /{routePrefix}/... (DefaultHttpWorkerService). With a route prefix the
// path tells them apart. Without one, a request to a function's own name
// whose body is an invocation payload ({"Data": {...}}) is a payload
// invocation; anything else is forwarded.
func (s *Server) isForwarded(r *http.Request) bool {
	if p := s.app.Host.RoutePrefix; p != "" {
		// Routes match without regard to case, the prefix too.
		return len(r.URL.Path) > len(p)+1 && strings.EqualFold(r.URL.Path[:len(p)+2], "/"+p+"/")
	}
	name := strings.Trim(r.URL.Path, "/")
	if _, ok := s.app.Function(name); !ok || r.Method != http.MethodPost || strings.Contains(name, "/") {
		return true
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, s.maxPayloadBytes()))
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
	if err != nil {
		return false // the payload path answers it as a payload too large or unreadable
	}
	var probe struct {
		Data map[string]json.RawMessage `json:"Data"`
	}
	return json.Unmarshal(body, &probe) != nil || probe.Data == nil
}

// servePayload handles POST /{FunctionName}. Protocol-level problems (an
// unknown function, a malformed payload) are answered with a 4xx problem
// body, still as application/json since the host parses every answer; the
// host then fails the invocation. The function's own answer, whatever its
// status, goes into its output binding with a 200.
func (s *Server) servePayload(w http.ResponseWriter, r *http.Request) {
	name := strings.Trim(r.URL.Path, "/")
	fn, ok := s.app.Function(name)
	if !ok || strings.Contains(name, "/") {
		s.protocolError(w, r, fn, api.Errorf(api.ENOTFOUND, "there is no function %q", name))
		return
	}
	if r.Method != http.MethodPost {
		s.protocolError(w, r, fn, &api.Error{Code: api.EMETHOD, Message: "the host invokes functions with POST", Allow: []string{http.MethodPost}})
		return
	}
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxPayloadBytes()))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		// A caller's body far over the limit: the payload is not read to
		// its end, and the caller gets the documented 413 through the
		// output binding (a protocol-level 4xx would reach it as the
		// host's bare 500).
		s.answerTooLarge(w, r, fn)
		return
	}
	if err != nil {
		s.protocolError(w, r, fn, &api.Error{Code: api.EINVALID, Message: "the invocation payload could not be read", Err: err})
		return
	}
	_, data, err := DecodeInvocation(payload, fn.Trigger)
	if err != nil {
		s.protocolError(w, r, fn, err)
		return
	}
	ctx, src := ExtractParent(r.Context(), s.opts.Propagator, r.Header, data.Headers.HTTP())
	inner, buildErr := data.NewRequest(ctx, s.opts.MaxBodyBytes)
	if buildErr != nil {
		// Still answer through the output binding, so the caller sees the
		// problem: the request was delivered, its content is wrong.
		inner, _ = http.NewRequestWithContext(ctx, strings.ToUpper(data.Method), "/", http.NoBody)
		if inner == nil {
			inner, _ = http.NewRequestWithContext(ctx, http.MethodPost, "/", http.NoBody)
		}
	}
	bw, logs := s.invoke(fn, r, inner, src, buildErr, manifest.Payload)
	writeResult(w, fn, bw, logs)
}

// answerTooLarge answers an invocation whose payload is over
// maxPayloadBytes with a 413 problem in the function's output binding.
func (s *Server) answerTooLarge(w http.ResponseWriter, r *http.Request, fn manifest.Function) {
	ctx, src := ExtractParent(r.Context(), s.opts.Propagator, r.Header, nil)
	inner, _ := http.NewRequestWithContext(ctx, http.MethodPost, "/", http.NoBody)
	bw, logs := s.invoke(fn, r, inner, src, api.Errorf(api.ETOOLARGE, "the body is larger than %d bytes", s.opts.MaxBodyBytes), manifest.Payload)
	writeResult(w, fn, bw, logs)
}

// writeResult writes the invocation result: the function's answer in its
// output binding ($return: ReturnValue), and its log lines.
func writeResult(w http.ResponseWriter, fn manifest.Function, bw *bufferedWriter, logs []string) {
	resp := InvokeResponse{Outputs: map[string]any{}, Logs: logs}
	if fn.Output == manifest.ReturnBinding {
		resp.ReturnValue = bw.output()
	} else {
		resp.Outputs[fn.Output] = bw.output()
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(resp)
}

// serveForwarded handles a forwarded request at its original path and
// answers it as plain HTTP.
func (s *Server) serveForwarded(w http.ResponseWriter, r *http.Request) {
	fn, values, found, methodMismatch := s.app.Match(r.Method, r.URL.EscapedPath())
	if !found {
		ctx, src := ExtractParent(r.Context(), s.opts.Propagator, r.Header, nil)
		r = r.WithContext(ctx)
		var err error = api.Errorf(api.ENOTFOUND, "no function serves %s", r.URL.Path)
		if methodMismatch {
			err = &api.Error{Code: api.EMETHOD, Message: fmt.Sprintf("%s is not allowed here", r.Method), Allow: s.allowed(r.URL.EscapedPath())}
		}
		bw, _ := s.invoke(manifest.Function{}, r, r, src, err, manifest.Forwarding)
		bw.relay(w)
		return
	}
	for k, v := range values {
		r.SetPathValue(k, v)
	}
	ctx, src := ExtractParent(r.Context(), s.opts.Propagator, r.Header, nil)
	inner := r.WithContext(ctx)
	var preErr error
	if r.ContentLength > s.opts.MaxBodyBytes {
		preErr = api.Errorf(api.ETOOLARGE, "the body is larger than %d bytes", s.opts.MaxBodyBytes)
	}
	inner.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	bw, _ := s.invoke(fn, r, inner, src, preErr, manifest.Forwarding)
	bw.relay(w)
}

func (s *Server) allowed(path string) []string {
	var methods []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		if _, _, ok, _ := s.app.Match(m, path); ok {
			methods = append(methods, m)
		}
	}
	return methods
}

func (s *Server) maxPayloadBytes() int64 {
	// The body is in the payload twice (Data's Body, and a JSON body's
	// properties in Metadata) and JSON escaping can take up to 6 bytes
	// per body byte (\u00XX); the rest (headers, sys) is allowed 1 MiB.
	return 2*6*s.opts.MaxBodyBytes + 1<<20
}

// protocolError answers a request the host should never send with a 4xx
// problem body, in its own span so the trace id it names exists.
func (s *Server) protocolError(w http.ResponseWriter, r *http.Request, fn manifest.Function, err error) {
	ctx, src := ExtractParent(r.Context(), s.opts.Propagator, r.Header, nil)
	bw, _ := s.invoke(fn, r, r.WithContext(ctx), src, err, manifest.Payload)
	out := bw.output()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if out.Headers["Allow"] != "" {
		w.Header().Set("Allow", out.Headers["Allow"])
	}
	w.WriteHeader(out.StatusCode)
	_, _ = io.WriteString(w, out.Body)
}

// invoke runs one invocation inside its SERVER span: fn's handler on inner
// (or, when preErr is set, the problem preErr describes). host is the host's
// request to the handler, in protocol mode. It returns the buffered answer
// and, in payload mode (an answer with Logs), the invocation's log lines
// below Warn, which then go nowhere else to the host.
func (s *Server) invoke(fn manifest.Function, host, inner *http.Request, src Source, preErr error, mode manifest.Mode) (*bufferedWriter, []string) {
	start := time.Now()
	ctx := inner.Context()
	route := ""
	if fn.Name != "" {
		route = fn.Path(s.app.Host.RoutePrefix)
	}
	spanName := inner.Method
	if route != "" {
		spanName += " " + route
	}
	attrs := []attribute.KeyValue{
		semconv.FaaSTriggerHTTP,
		semconv.HTTPRequestMethodKey.String(inner.Method),
		AttrParentSource.String(string(src)),
		AttrProtocol.String(mode.String()),
	}
	if fn.Name != "" {
		attrs = append(attrs, semconv.FaaSName(s.faasName(fn.Name)), semconv.HTTPRoute(route),
			semconv.FaaSColdstart(s.cold.Swap(false)))
	}
	if id := invocationID(host.Header); id != "" {
		attrs = append(attrs, semconv.FaaSInvocationID(id))
		ctx = api.WithInvocationID(ctx, id)
	}
	if v := host.Header.Get(HeaderHostVersion); v != "" {
		attrs = append(attrs, AttrHostVersion.String(v))
	}
	if inner.URL != nil {
		attrs = append(attrs, semconv.URLPath(inner.URL.Path))
		if inner.URL.Scheme != "" {
			attrs = append(attrs, semconv.URLScheme(inner.URL.Scheme))
		}
	}
	if inner.Host != "" {
		attrs = append(attrs, semconv.ServerAddress(hostOnly(inner.Host)))
	}
	if ua := inner.Header.Get("User-Agent"); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	ctx, span := s.tracer.Start(ctx, spanName, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	var capture *telemetry.Capture
	if mode == manifest.Payload {
		ctx, capture = telemetry.CaptureLogs(ctx)
	}
	inner = inner.WithContext(ctx)

	bw := newBufferedWriter()
	sc := span.SpanContext()
	func() {
		defer func() {
			if p := recover(); p != nil {
				bw.reset()
				span.RecordError(fmt.Errorf("panic: %v", p), trace.WithAttributes(semconv.ExceptionStacktrace(string(debug.Stack()))))
				api.WriteError(bw, inner, &api.Error{Code: api.EINTERNAL, Message: "the function panicked", Err: fmt.Errorf("panic: %v", p)})
			}
		}()
		switch {
		case preErr != nil:
			api.WriteError(bw, inner, preErr)
		case !fn.Allows(inner.Method):
			api.WriteError(bw, inner, &api.Error{Code: api.EMETHOD, Message: fmt.Sprintf("%s is not allowed here", inner.Method), Allow: fn.Methods})
		default:
			h, ok := s.handlers[fn.Name]
			if !ok {
				panic("no handler for function " + fn.Name) // NewServer's caller checked this
			}
			h.ServeHTTP(bw, inner)
		}
	}()
	status := bw.statusCode()
	bw.header.Set("Traceresponse", fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags()))
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
	}
	mattrs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(inner.Method), semconv.HTTPResponseStatusCode(status)}
	if route != "" {
		mattrs = append(mattrs, semconv.HTTPRoute(route))
	}
	if status >= 500 {
		mattrs = append(mattrs, semconv.ErrorTypeKey.String(strconv.Itoa(status)))
	}
	s.duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(mattrs...))
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	s.opts.Logger.Log(ctx, level, "invocation finished", "function", fn.Name, "method", inner.Method,
		"status", status, "duration_ms", time.Since(start).Milliseconds())
	// The span ends when the answer is ready, so that the flush policy
	// can send it with the rest of the invocation's telemetry.
	span.End()
	s.opts.AfterInvocation(ctx)
	if capture == nil {
		return bw, nil
	}
	return bw, capture.Lines()
}

func (s *Server) faasName(fn string) string {
	if s.opts.SiteName == "" {
		return fn
	}
	return s.opts.SiteName + "/" + fn
}

func invocationID(h http.Header) string {
	if id := h.Get(HeaderInvocationID); id != "" {
		return id
	}
	return h.Get(headerProxyInvocationID)
}

func hostOnly(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i > 0 && !strings.Contains(hostport[i:], "]") {
		return hostport[:i]
	}
	return hostport
}

var _ http.Handler = (*Server)(nil)
