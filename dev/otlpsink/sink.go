package otlpsink

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Span is a received span, flattened for assertions and printing.
type Span struct {
	TraceID       string         `json:"traceId"`
	SpanID        string         `json:"spanId"`
	ParentSpanID  string         `json:"parentSpanId,omitempty"`
	TraceState    string         `json:"traceState,omitempty"`
	Name          string         `json:"name"`
	Kind          string         `json:"kind"` // SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL
	Service       string         `json:"service"`
	Scope         string         `json:"scope,omitempty"`
	Start         time.Time      `json:"start"`
	End           time.Time      `json:"end"`
	Attributes    map[string]any `json:"attributes,omitempty"`
	Resource      map[string]any `json:"resource,omitempty"`
	StatusCode    string         `json:"status"` // UNSET, OK, ERROR
	StatusMessage string         `json:"statusMessage,omitempty"`
	Events        []string       `json:"events,omitempty"`
	Links         []string       `json:"links,omitempty"` // "traceid-spanid"
}

// Duration is End - Start.
func (s Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Sink receives spans over OTLP/HTTP. Its zero value is not usable; call New.
type Sink struct {
	mu      sync.Mutex
	traces  map[string]*keptTrace
	order   []string // trace ids, oldest first
	bytes   int      // estimated size of the traces kept
	dropped int      // traces dropped to keep within MaxBytes
	changed chan struct{}
	now     func() time.Time
	// metrics holds each metric's latest value, by service and name.
	metrics map[string]map[string]float64
	// metricExports counts the metric exports received.
	metricExports int
	// logs counts log records by trace id, for the last logTraces traces
	// (logOrder: oldest first).
	logs     map[string]int
	logOrder []string
	// MaxBytes bounds the memory the spans take, as estimated from their
	// contents: past it, the oldest traces are dropped, whole.
	// DefaultMaxBytes by default.
	MaxBytes int
	// Log, when set, is told once when the sink starts dropping traces.
	Log io.Writer
	// Forward, when set, is an OTLP/HTTP base URL (such as a local
	// Jaeger's http://127.0.0.1:4318) that every export received is sent on
	// to, unchanged.
	Forward       string
	forwarder     *http.Client
	forwarderOnce sync.Once
}

// logTraces is how many traces' log records are counted; the oldest are
// forgotten past it.
const logTraces = 10000

// New returns an empty sink.
func New() *Sink {
	return &Sink{traces: map[string]*keptTrace{}, changed: make(chan struct{}), now: time.Now,
		MaxBytes: DefaultMaxBytes, metrics: map[string]map[string]float64{}, logs: map[string]int{}}
}

// ServeHTTP accepts POST /v1/traces, /v1/metrics (latest values kept;
// see Metric) and /v1/logs (counted by trace; see LogRecords), and serves GET /api/traces
// (ids) and GET /api/traces/{traceId} (spans as JSON).
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/traces":
		s.receive(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/api/traces":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.TraceIDs())
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/traces/"):
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Trace(strings.TrimPrefix(r.URL.Path, "/api/traces/")))
	case r.Method == http.MethodPost && r.URL.Path == "/v1/metrics":
		s.receiveMetrics(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/logs":
		s.receiveLogs(w, r)
	default:
		http.NotFound(w, r)
	}
}

// forward sends an export on, unchanged, in the background.
func (s *Sink) forward(r *http.Request, raw []byte) {
	if s.Forward == "" {
		return
	}
	s.forwarderOnce.Do(func() { s.forwarder = &http.Client{Timeout: 10 * time.Second} })
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(s.Forward, "/")+r.URL.Path, bytes.NewReader(raw))
	if err != nil {
		return
	}
	for _, h := range []string{"Content-Type", "Content-Encoding"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	go func() {
		if res, err := s.forwarder.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}()
}

// readExport reads an OTLP/HTTP export into msg and forwards it; on error
// it has answered.
func (s *Sink) readExport(w http.ResponseWriter, r *http.Request, msg proto.Message) (isJSON, ok bool) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return false, false
	}
	s.forward(r, raw)
	isJSON, err = Decode(r.Header, raw, msg)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false, false
	}
	return isJSON, true
}

// Decode reads an OTLP/HTTP export body into msg as a collector's receiver
// does: gzip or not (Content-Encoding), JSON or protobuf (Content-Type).
func Decode(h http.Header, raw []byte, msg proto.Message) (isJSON bool, err error) {
	data := raw
	if strings.EqualFold(h.Get("Content-Encoding"), "gzip") {
		gz, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return false, fmt.Errorf("bad gzip body: %w", err)
		}
		defer gz.Close()
		if data, err = io.ReadAll(gz); err != nil {
			return false, fmt.Errorf("bad gzip body: %w", err)
		}
	}
	isJSON = strings.HasPrefix(h.Get("Content-Type"), "application/json")
	if isJSON {
		err = protojson.Unmarshal(data, msg)
	} else {
		err = proto.Unmarshal(data, msg)
	}
	if err != nil {
		return false, fmt.Errorf("not an OTLP %s: %w", msg.ProtoReflect().Descriptor().Name(), err)
	}
	return isJSON, nil
}

// answer writes an export's (empty, full success) response in the
// request's encoding.
func answer(w http.ResponseWriter, isJSON bool, resp proto.Message) {
	if isJSON {
		w.Header().Set("Content-Type", "application/json")
		b, _ := protojson.Marshal(resp)
		_, _ = w.Write(b)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(resp)
	_, _ = w.Write(b)
}

func (s *Sink) receive(w http.ResponseWriter, r *http.Request) {
	var req coltrace.ExportTraceServiceRequest
	isJSON, ok := s.readExport(w, r, &req)
	if !ok {
		return
	}
	s.add(flatten(&req))
	answer(w, isJSON, &coltrace.ExportTraceServiceResponse{})
}

// receiveLogs counts an export's log records by trace; the records
// themselves are not kept.
func (s *Sink) receiveLogs(w http.ResponseWriter, r *http.Request) {
	var req collogs.ExportLogsServiceRequest
	isJSON, ok := s.readExport(w, r, &req)
	if !ok {
		return
	}
	s.mu.Lock()
	for _, rl := range req.GetResourceLogs() {
		for _, sl := range rl.GetScopeLogs() {
			for _, lr := range sl.GetLogRecords() {
				id := hex.EncodeToString(lr.GetTraceId())
				if _, known := s.logs[id]; !known {
					if len(s.logOrder) >= logTraces {
						delete(s.logs, s.logOrder[0])
						s.logOrder = s.logOrder[1:]
					}
					s.logOrder = append(s.logOrder, id)
				}
				s.logs[id]++
			}
		}
	}
	s.mu.Unlock()
	answer(w, isJSON, &collogs.ExportLogsServiceResponse{})
}

// LogRecords is the number of log records received of a trace.
func (s *Sink) LogRecords(traceID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs[traceID]
}

func (s *Sink) receiveMetrics(w http.ResponseWriter, r *http.Request) {
	var req colmetrics.ExportMetricsServiceRequest
	isJSON, ok := s.readExport(w, r, &req)
	if !ok {
		return
	}
	s.mu.Lock()
	for _, rm := range req.GetResourceMetrics() {
		service, _ := attrMap(rm.GetResource().GetAttributes())["service.name"].(string)
		if s.metrics[service] == nil {
			s.metrics[service] = map[string]float64{}
		}
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				var points []*metricspb.NumberDataPoint
				switch d := m.GetData().(type) {
				case *metricspb.Metric_Gauge:
					points = d.Gauge.GetDataPoints()
				case *metricspb.Metric_Sum:
					points = d.Sum.GetDataPoints()
				default:
					continue
				}
				total := 0.0
				for _, p := range points {
					switch v := p.GetValue().(type) {
					case *metricspb.NumberDataPoint_AsInt:
						total += float64(v.AsInt)
					case *metricspb.NumberDataPoint_AsDouble:
						total += v.AsDouble
					}
				}
				s.metrics[service][m.GetName()] = total
			}
		}
	}
	s.metricExports++
	s.mu.Unlock()
	answer(w, isJSON, &colmetrics.ExportMetricsServiceResponse{})
}

// Metric returns the latest value of a service's gauge or sum metric (its
// data points added up, as go.memory.used's stack and other parts), and
// whether one arrived.
func (s *Sink) Metric(service, name string) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.metrics[service][name]
	return v, ok
}

// MetricExports is how many metric exports have been received.
func (s *Sink) MetricExports() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.metricExports
}

// Add stores spans. Each is charged its own resource map, which spans
// received over OTLP/HTTP share with the rest of their export.
func (s *Sink) Add(spans ...Span) {
	batches := make([]batch, len(spans))
	for i, sp := range spans {
		batches[i] = batch{spans: spans[i : i+1], resource: attrBytes(sp.Resource)}
	}
	s.add(batches)
}

// TraceIDs lists the ids of the traces kept, oldest first.
func (s *Sink) TraceIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.order...)
}

// Trace returns the spans of a trace, ordered by start time; none once
// it has been dropped (see MaxBytes).
func (s *Sink) Trace(traceID string) []Span {
	s.mu.Lock()
	spans := []Span{}
	if t := s.traces[strings.ToLower(traceID)]; t != nil {
		for _, sp := range t.spans {
			spans = append(spans, *sp)
		}
	}
	s.mu.Unlock()
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].Start.Before(spans[j].Start) })
	return spans
}

// SpanCount is the number of spans kept, of all traces.
func (s *Sink) SpanCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.traces {
		n += len(t.spans)
	}
	return n
}

// WaitFor waits until the trace has at least n spans, or ctx ends; it
// returns the spans it has then.
func (s *Sink) WaitFor(ctx context.Context, traceID string, n int) ([]Span, error) {
	for {
		s.mu.Lock()
		have, changed := 0, s.changed
		if t := s.traces[traceID]; t != nil {
			have = len(t.spans)
		}
		s.mu.Unlock()
		if have >= n {
			return s.Trace(traceID), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return s.Trace(traceID), fmt.Errorf("trace %s: %d of %d spans arrived: %w", traceID, have, n, ctx.Err())
		}
	}
}
