package simulate

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nbtrace/nbtrace/functions/api"
)

func newSim(t *testing.T, env map[string]string) http.Handler {
	t.Helper()
	h, err := New(api.Env{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func post(h http.Handler, service, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/simulate/"+service, strings.NewReader(body))
	r.SetPathValue("service", service)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestVerdicts(t *testing.T) {
	h := newSim(t, map[string]string{"SIMULATE_LATENCY": "0s", "SIMULATE_MAX_ROWS": "100"})
	future := time.Now().UTC().AddDate(0, 0, 2).Format(time.DateOnly)
	tests := []struct {
		service, body string
		wantStatus    int
		wantPassed    bool
	}{
		{"a", `{"date":"2026-01-01"}`, 200, true},
		{"a", `{"date":"` + future + `"}`, 200, false},
		{"b", `{"rowCount":100}`, 200, true},
		{"b", `{"rowCount":101}`, 200, false},
		{"b", `{"dataset":"x","date":"2026-01-01"}`, 200, true},
		{"c", `{}`, 404, false},
		{"a", `not json`, 400, false},
		{"a", `null`, 400, false},
	}
	for _, tt := range tests {
		w := post(h, tt.service, tt.body)
		if w.Code != tt.wantStatus {
			t.Errorf("%s %s: status %d, want %d", tt.service, tt.body, w.Code, tt.wantStatus)
			continue
		}
		if w.Code == 200 {
			var v struct{ Passed bool }
			_ = json.Unmarshal(w.Body.Bytes(), &v)
			if v.Passed != tt.wantPassed {
				t.Errorf("%s %s: passed %v, want %v", tt.service, tt.body, v.Passed, tt.wantPassed)
			}
		}
	}
}

func TestFailureRate(t *testing.T) {
	h := newSim(t, map[string]string{"SIMULATE_LATENCY": "0s", "SIMULATE_FAILURE_RATE": "1"})
	w := post(h, "a", `{}`)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" {
		t.Errorf("status %d Retry-After %q, want 503 and 1", w.Code, w.Header().Get("Retry-After"))
	}
}

func TestLatencyIsCancelledWithTheRequest(t *testing.T) {
	h := newSim(t, map[string]string{"SIMULATE_LATENCY": "60s"})
	r := httptest.NewRequest(http.MethodPost, "/api/simulate/a", strings.NewReader(`{}`))
	r.SetPathValue("service", "a")
	done := make(chan int)
	rctx, cancel := context.WithCancel(r.Context())
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r.WithContext(rctx))
		done <- w.Code
	}()
	cancel()
	select {
	case code := <-done:
		if code != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the simulated latency did not end with the request")
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"SIMULATE_LATENCY":      {"SIMULATE_LATENCY": "2m"},
		"SIMULATE_JITTER":       {"SIMULATE_JITTER": "-1s"},
		"SIMULATE_FAILURE_RATE": {"SIMULATE_FAILURE_RATE": "1.5"},
		"SIMULATE_MAX_ROWS":     {"SIMULATE_MAX_ROWS": "many"},
	} {
		_, err := New(api.Env{Getenv: func(k string) string { return env[k] }})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: err = %v, want it to name %s", env, err, name)
		}
	}
}
