package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/otlpsink"
)

// serviceFault is how a stand-in for service A or B misbehaves.
type serviceFault string

const (
	serviceOK      serviceFault = ""
	serviceSlow    serviceFault = "slow"  // answers long after VALIDATE_SERVICE_TIMEOUT
	service500     serviceFault = "500"   // Internal Server Error
	service503     serviceFault = "503"   // Service Unavailable, with Retry-After
	serviceReset   serviceFault = "reset" // resets the connection without an answer
	serviceHTML    serviceFault = "html"  // 200, but an HTML page instead of a verdict
	serviceStalled serviceFault = "stall" // 200 headers at once, then no body
)

// faultyServices stands in for services A (/a) and B (/b) on loopback,
// each misbehaving as the test says.
type faultyServices struct {
	*httptest.Server
	mu     sync.Mutex
	faults map[string]serviceFault
	quit   chan struct{}
}

func newFaultyServices(t *testing.T) *faultyServices {
	t.Helper()
	f := &faultyServices{faults: map[string]serviceFault{}, quit: make(chan struct{})}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		close(f.quit)
		f.Close()
	})
	return f
}

func (f *faultyServices) set(a, b serviceFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults["/a"], f.faults["/b"] = a, b
}

func (f *faultyServices) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	f.mu.Lock()
	fault := f.faults[r.URL.Path]
	f.mu.Unlock()
	hold := func() {
		select {
		case <-r.Context().Done():
		case <-f.quit:
		case <-time.After(30 * time.Second):
		}
	}
	switch fault {
	case serviceSlow:
		hold()
	case service500:
		http.Error(w, `{"error":"boom"}`, http.StatusInternalServerError)
		return
	case service503:
		w.Header().Set("Retry-After", "5")
		http.Error(w, `{"error":"busy"}`, http.StatusServiceUnavailable)
		return
	case serviceReset:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		_ = conn.(*net.TCPConn).SetLinger(0) // RST, not FIN
		_ = conn.Close()
		return
	case serviceHTML:
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html><body>Service temporarily moved</body></html>")
		return
	case serviceStalled:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		hold()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"passed":true}`)
}

// TestServiceFaults points validate at services A and B that are slow,
// fail, reset the connection or answer nonsense: each answer is the
// documented problem naming the service, arrives within a bound, the
// failing call is recorded as failed in the trace, and the handler keeps
// serving.
func TestServiceFaults(t *testing.T) {
	const timeout = time.Second
	svc := newFaultyServices(t)
	s := startWith(t, "payload", dbxstandin.RunnerFunc(func(context.Context, dbxstandin.RunContext) error { return nil }), []string{
		"SERVICE_A_URL=" + svc.URL + "/a", "SERVICE_B_URL=" + svc.URL + "/b", "VALIDATE_SERVICE_TIMEOUT=" + timeout.String(),
	})
	pid, _, _ := s.Host.HandlerProcess()
	tests := []struct {
		name       string
		path       string // /api/validate when empty
		a, b       serviceFault
		wantStatus int
		wantCode   string
		wantDep    string
		// failedCalls are the CLIENT spans (to /a, /b) whose status must
		// be ERROR; the others must not be.
		failedCalls []string
		timedOut    bool // the answer waited for VALIDATE_SERVICE_TIMEOUT
	}{
		{name: "A slower than the timeout", a: serviceSlow, wantStatus: 504, wantCode: "dependency-timeout", wantDep: "service-a", failedCalls: []string{"/a"}, timedOut: true},
		{name: "B slower than the timeout", b: serviceSlow, wantStatus: 504, wantCode: "dependency-timeout", wantDep: "service-b", failedCalls: []string{"/b"}, timedOut: true},
		{name: "A fails with 500", a: service500, wantStatus: 502, wantCode: "dependency-failed", wantDep: "service-a", failedCalls: []string{"/a"}},
		{name: "B unavailable (503)", b: service503, wantStatus: 502, wantCode: "dependency-failed", wantDep: "service-b", failedCalls: []string{"/b"}},
		{name: "A resets the connection", a: serviceReset, wantStatus: 502, wantCode: "dependency-failed", wantDep: "service-a", failedCalls: []string{"/a"}},
		{name: "B resets the connection", b: serviceReset, wantStatus: 502, wantCode: "dependency-failed", wantDep: "service-b", failedCalls: []string{"/b"}},
		// The HTTP exchange itself succeeded: only the invocation failed.
		{name: "A answers HTML", a: serviceHTML, wantStatus: 502, wantCode: "dependency-failed", wantDep: "service-a"},
		{name: "B answers headers, then no body", b: serviceStalled, wantStatus: 504, wantCode: "dependency-timeout", wantDep: "service-b", failedCalls: []string{"/b"}, timedOut: true},
		// A timeout wins over other failures; both services are named.
		{name: "A slow and B failing", a: serviceSlow, b: service500, wantStatus: 504, wantCode: "dependency-timeout", wantDep: "service-a,service-b", failedCalls: []string{"/a", "/b"}, timedOut: true},
		{name: "both reset the connection", a: serviceReset, b: serviceReset, wantStatus: 502, wantCode: "dependency-failed", wantDep: "service-a,service-b", failedCalls: []string{"/a", "/b"}},
		// notebook calls validate through the host: validate answered (with
		// its problem), so for notebook validate is the failed dependency,
		// and no run is started.
		{name: "notebook: A slower than the timeout", path: "/api/notebook", a: serviceSlow, wantStatus: 504, wantCode: "dependency-timeout", wantDep: "validate", failedCalls: []string{"/a"}, timedOut: true},
		{name: "notebook: B resets the connection", path: "/api/notebook", b: serviceReset, wantStatus: 502, wantCode: "dependency-failed", wantDep: "validate", failedCalls: []string{"/b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/api/validate"
			}
			svc.set(tt.a, tt.b)
			runs := s.Databricks.Runs()
			body := validBody
			if path == "/api/notebook" {
				body = notebookBody
			}
			began := time.Now()
			res, m := post(t, s.URL+path, body, nil)
			took := time.Since(began)
			svc.set(serviceOK, serviceOK)
			if res.StatusCode != tt.wantStatus || m["code"] != tt.wantCode {
				t.Fatalf("status %d %v, want %d %s", res.StatusCode, m, tt.wantStatus, tt.wantCode)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if m["dependency"] != tt.wantDep {
				t.Errorf("dependency = %v, want %s", m["dependency"], tt.wantDep)
			}
			// A slow service holds its answer for 30 s: the problem must come
			// at the timeout, not then.
			if limit := timeout + 8*time.Second; took > limit {
				t.Errorf("the answer took %s, want under %s", took, limit)
			}
			if tt.timedOut && took < timeout {
				t.Errorf("the answer took %s, less than the %s timeout it reports", took, timeout)
			}
			if n := s.Databricks.Runs(); n != runs {
				t.Errorf("%d Databricks runs were started", n-runs)
			}
			traceID, _ := m["traceId"].(string)
			if !hex32.MatchString(traceID) {
				t.Fatalf("traceId %q", traceID)
			}
			spansWant := 5 // host: invocation, call; handler: validate, A, B
			if path == "/api/notebook" {
				spansWant = 9 // and notebook's invocation and its call to validate
			}
			spans := waitTrace(t, s, traceID, spansWant)
			checkFailedCalls(t, spans, tt.failedCalls)
			inv := one(t, spans, "SERVER", "nbtrace", "POST /api/validate")
			if inv.StatusCode != "ERROR" {
				t.Errorf("validate's span status = %s, want ERROR", inv.StatusCode)
			}
			if path == "/api/notebook" {
				nb := one(t, spans, "SERVER", "nbtrace", "POST /api/notebook")
				if nb.StatusCode != "ERROR" || nb.Attributes["http.response.status_code"] != int64(tt.wantStatus) {
					t.Errorf("notebook's span = %s %v", nb.StatusCode, nb.Attributes["http.response.status_code"])
				}
			} else if inv.Attributes["http.response.status_code"] != int64(tt.wantStatus) {
				t.Errorf("validate's span status code = %v", inv.Attributes["http.response.status_code"])
			}

			// The handler keeps serving once the services are well again.
			if res, m := post(t, s.URL+"/api/validate", validBody, nil); res.StatusCode != 200 || m["valid"] != true {
				t.Fatalf("afterwards: %d %v", res.StatusCode, m)
			}
		})
	}
	if now, _, ok := s.Host.HandlerProcess(); !ok || now != pid {
		t.Errorf("the handler process is %d (running: %v), want %d: it was restarted", now, ok, pid)
	}
}

// checkFailedCalls checks the handler's CLIENT spans to services A and B:
// exactly those to the paths in failed have status ERROR.
func checkFailedCalls(t *testing.T, spans []otlpsink.Span, failed []string) {
	t.Helper()
	for _, p := range []string{"/a", "/b"} {
		call := one(t, spans, "CLIENT", "nbtrace", "POST "+p)
		want := "UNSET"
		for _, f := range failed {
			if f == p {
				want = "ERROR"
			}
		}
		if call.StatusCode != want {
			t.Errorf("the call to %s has status %s (%s), want %s", p, call.StatusCode, call.StatusMessage, want)
		}
	}
}

// TestKilledMidRunStartsNoDuplicateRun kills the handler twice while
// notebook requests are in flight, each time while Databricks is holding
// the answer to a run that has already started. Callers retry failed
// answers with the same Idempotency-Key: every key gets one run, the same
// on every answer, and Databricks has exactly one run per key.
func TestKilledMidRunStartsNoDuplicateRun(t *testing.T) {
	const (
		keys        = 40
		workers     = 8
		maxAttempts = 40
	)
	s := start(t, "payload")
	// Slow answers to run-now and runs/get widen the windows in which a
	// kill lands between a run's start and the caller's answer.
	s.Databricks.Inject(dbxstandin.Fault{PathPrefix: "/api/2.2/jobs/run-now", Delay: 200 * time.Millisecond, Times: 1 << 20})
	s.Databricks.Inject(dbxstandin.Fault{PathPrefix: "/api/2.2/jobs/runs/get", Delay: 300 * time.Millisecond, Times: 1 << 20})
	deadline := time.Now().Add(3 * time.Minute)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	type answer struct {
		runID    int64
		token    string
		attempts int
		err      string
	}
	answers := make([]answer, keys)
	var failedAttempts atomic.Int64
	client := &http.Client{Timeout: time.Minute}
	// postUntilAccepted posts key's request until it is accepted, retrying
	// what a kill can cause: the host's 500, a 502 to 504, or no answer.
	postUntilAccepted := func(key string) answer {
		var a answer
		for a.attempts < maxAttempts && ctx.Err() == nil {
			a.attempts++
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/api/notebook", strings.NewReader(notebookBody))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", key)
			res, err := client.Do(req)
			if err == nil {
				var m struct {
					RunID            int64  `json:"runId"`
					IdempotencyToken string `json:"idempotencyToken"`
				}
				raw, _ := io.ReadAll(res.Body)
				res.Body.Close()
				switch {
				case res.StatusCode/100 == 2:
					if err := json.Unmarshal(raw, &m); err != nil || m.RunID <= 0 {
						a.err = fmt.Sprintf("%d with no run id: %.200s", res.StatusCode, raw)
						return a
					}
					a.runID, a.token, a.err = m.RunID, m.IdempotencyToken, ""
					return a
				case res.StatusCode >= 500 && res.StatusCode <= 504:
					a.err = fmt.Sprintf("%d %.200s", res.StatusCode, raw)
				default:
					a.err = fmt.Sprintf("%d (not retried) %.200s", res.StatusCode, raw)
					return a
				}
			} else {
				a.err = err.Error()
			}
			failedAttempts.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		return a
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for k := range work {
				answers[k] = postUntilAccepted(fmt.Sprintf("order-%03d", k))
			}
		})
	}
	wg.Go(func() {
		defer close(work)
		for k := range keys {
			select {
			case work <- k:
			case <-ctx.Done():
				return
			}
		}
	})

	// Kill while a runs/get is being held: that run has started, and its
	// caller has no answer yet.
	pids := []int{}
	failedBefore := []int64{}
	for kill := range 2 {
		pid := waitForHandler(t, s, pids, deadline)
		pids = append(pids, pid)
		seen := countRequests(s, "/api/2.2/jobs/runs/get")
		for countRequests(s, "/api/2.2/jobs/runs/get") == seen {
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: no runs/get call to kill during", kill+1)
			}
			time.Sleep(5 * time.Millisecond)
		}
		failedBefore = append(failedBefore, failedAttempts.Load())
		s.Host.KillHandler()
	}
	pids = append(pids, waitForHandler(t, s, pids, deadline))
	wg.Wait()
	s.Databricks.ClearFaults()

	// Both kills cost some request its answer.
	if failedBefore[1] <= failedBefore[0] || failedAttempts.Load() <= failedBefore[1] {
		t.Errorf("failed attempts before kill 1, before kill 2, at the end: %d, %d, %d; want each kill to fail some",
			failedBefore[0], failedBefore[1], failedAttempts.Load())
	}
	// The retries did reach run-now for runs that had started before the
	// kill, and were given those runs: the case the tokens are for.
	requests := s.Databricks.Requests()
	started := map[string]time.Time{}
	for _, a := range answers {
		if a.runID != 0 {
			started[a.token] = standinRunStart(t, s, a.runID)
		}
	}
	deduplicated := 0
	for _, r := range requests {
		if r.Path != "/api/2.2/jobs/run-now" {
			continue
		}
		var body struct {
			Token string `json:"idempotency_token"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("run-now body: %v", err)
		}
		if at, ok := started[body.Token]; ok && r.At.After(at.Add(time.Millisecond)) {
			deduplicated++
		}
	}
	if deduplicated < 2 {
		t.Errorf("%d run-now calls came after their run had started, want at least one per kill", deduplicated)
	}
	byRun := map[int64]string{}
	tokens := map[string]string{}
	for k, a := range answers {
		key := fmt.Sprintf("order-%03d", k)
		if a.runID == 0 {
			t.Errorf("%s: no run after %d attempts: %s", key, a.attempts, a.err)
			continue
		}
		if other, dup := byRun[a.runID]; dup {
			t.Errorf("%s and %s got the same run %d", key, other, a.runID)
		}
		byRun[a.runID], tokens[a.token] = key, key
		// The same key again, now undisturbed: the same run.
		res, m := post(t, s.URL+"/api/notebook", notebookBody, map[string]string{"Idempotency-Key": key})
		if id, _ := m["runId"].(float64); res.StatusCode != http.StatusAccepted || int64(id) != a.runID || m["idempotencyToken"] != a.token {
			t.Errorf("%s again: %d, run %v with token %v; want run %d with token %s", key, res.StatusCode, m["runId"], m["idempotencyToken"], a.runID, a.token)
		}
	}
	if len(tokens) != keys {
		t.Errorf("%d distinct idempotency tokens for %d keys", len(tokens), keys)
	}
	if n := s.Databricks.Runs(); n != keys {
		t.Errorf("Databricks started %d runs for %d keys", n, keys)
	}

	if pids[0] == pids[1] || pids[1] == pids[2] {
		t.Errorf("handler processes %v: a kill did not restart it", pids)
	}
	attempts := 0
	for _, a := range answers {
		attempts += a.attempts
	}
	t.Logf("%d keys, %d attempts (%d failed), %d retried run-now calls given a run started earlier; handlers %v",
		keys, attempts, failedAttempts.Load(), deduplicated, pids)
}

// waitForHandler waits until a handler process runs whose pid is not in
// old, and returns its pid.
func waitForHandler(t *testing.T, s *Stack, old []int, deadline time.Time) int {
	t.Helper()
	for {
		pid, _, ok := s.Host.HandlerProcess()
		fresh := ok
		for _, o := range old {
			fresh = fresh && pid != o
		}
		if fresh {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new handler process (old: %v)", old)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countRequests counts the Databricks stand-in's requests to path.
func countRequests(s *Stack, path string) int {
	n := 0
	for _, r := range s.Databricks.Requests() {
		if r.Path == path {
			n++
		}
	}
	return n
}

// standinRunStart reads when the Databricks stand-in started a run.
func standinRunStart(t *testing.T, s *Stack, runID int64) time.Time {
	t.Helper()
	res, raw := exchange(t, http.MethodGet, fmt.Sprintf("%s/api/2.2/jobs/runs/get?run_id=%d", s.DatabricksURL, runID), "",
		map[string]string{"Authorization": "Bearer " + standinToken})
	var run struct {
		StartTime int64 `json:"start_time"`
	}
	if err := json.Unmarshal(raw, &run); err != nil || res.StatusCode != http.StatusOK || run.StartTime == 0 {
		t.Fatalf("runs/get %d = %d %s", runID, res.StatusCode, raw)
	}
	return time.UnixMilli(run.StartTime)
}
