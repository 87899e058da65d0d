package bench

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/nbtrace/nbtrace/dev/otlpsink"
	"github.com/nbtrace/nbtrace/functions/validate"
)

// startServices starts services A and B (POST /a, POST /b) on loopback:
// each answers a passing verdict, as the app's simulate function does,
// after delay.
func startServices(delay time.Duration) *httptest.Server {
	verdict, _ := json.Marshal(validate.ServiceVerdict{Passed: true}) // a bool field: cannot fail
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(verdict)
	}))
}

// countingSink is an OTLP/HTTP receiver that decodes each export
// (otlpsink.Decode, as a collector does) and counts its spans and log
// records; unlike
// otlpsink.Sink it keeps no spans, so that it costs the machine as little
// as it can.
type countingSink struct {
	*httptest.Server
	spans atomic.Int64
	logs  atomic.Int64 // log records
	// perTrace counts the spans of the first sampleTraces traces, from
	// which the spans each invocation makes are known once all arrived.
	mu       sync.Mutex
	perTrace map[string]int
}

const sampleTraces = 100

func startSink() *countingSink {
	s := &countingSink{perTrace: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/v1/traces" {
			var req coltrace.ExportTraceServiceRequest
			if _, err := otlpsink.Decode(r.Header, raw, &req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			n := 0
			s.mu.Lock()
			for _, rs := range req.GetResourceSpans() {
				for _, ss := range rs.GetScopeSpans() {
					n += len(ss.GetSpans())
					for _, sp := range ss.GetSpans() {
						id := string(sp.GetTraceId())
						if _, ok := s.perTrace[id]; ok || len(s.perTrace) < sampleTraces {
							s.perTrace[id]++
						}
					}
				}
			}
			s.mu.Unlock()
			s.spans.Add(int64(n))
		}
		if r.URL.Path == "/v1/logs" {
			var req collogs.ExportLogsServiceRequest
			if _, err := otlpsink.Decode(r.Header, raw, &req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			for _, rl := range req.GetResourceLogs() {
				for _, sl := range rl.GetScopeLogs() {
					s.logs.Add(int64(len(sl.GetLogRecords())))
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	return s
}

// spansPerTrace is the most common span count of the sampled traces.
func (s *countingSink) spansPerTrace() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	freq := map[int]int{}
	best := 0
	for _, n := range s.perTrace {
		freq[n]++
		if freq[n] > freq[best] {
			best = n
		}
	}
	return int64(best)
}

// settle waits until no span has arrived for a second (at most 30 s) and
// returns the count.
func (s *countingSink) settle(ctx context.Context) int64 {
	s.settleFor(ctx, time.Second)
	return s.spans.Load()
}

// settleFor waits until no span or log record has arrived for quiet (at
// most 30 s).
func (s *countingSink) settleFor(ctx context.Context, quiet time.Duration) {
	count := func() int64 { return s.spans.Load() + s.logs.Load() }
	last, since := count(), time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(20 * time.Millisecond)
		if n := count(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
	}
}
