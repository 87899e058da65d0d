package stack

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBadInputsKeepServing sends each bad input through the host stand-in,
// checks its documented status and problem body, and then that the handler
// still serves.
func TestBadInputsKeepServing(t *testing.T) {
	s := start(t, "payload")
	tests := []struct {
		name       string
		path       string
		body       string
		header     map[string]string
		wantStatus int
		wantCode   string
		notTraceOf string // the answer's trace must not be this one
	}{
		{"traceparent version ff", "/api/validate", validBody, map[string]string{"traceparent": "ff-" + callerTrace + "-" + callerSpan + "-01"}, 200, "", callerTrace},
		{"traceparent upper-case", "/api/validate", validBody, map[string]string{"traceparent": "00-" + strings.ToUpper(callerTrace) + "-" + callerSpan + "-01"}, 200, "", strings.ToUpper(callerTrace)},
		{"traceparent zero trace id", "/api/validate", validBody, map[string]string{"traceparent": "00-00000000000000000000000000000000-" + callerSpan + "-01"}, 200, "", "00000000000000000000000000000000"},
		{"traceparent too short", "/api/validate", validBody, map[string]string{"traceparent": "00-" + callerTrace[:30] + "-" + callerSpan + "-01"}, 200, "", ""},
		{"tracestate malformed", "/api/validate", validBody, map[string]string{"traceparent": callerTP, "tracestate": "=,==,Bad Key=1"}, 200, "", ""},
		{"malformed JSON", "/api/validate", `{"dataset":`, nil, 400, "invalid-request", ""},
		{"empty body", "/api/validate", ``, nil, 400, "invalid-request", ""},
		{"schema problems", "/api/validate", `{"dataset":"","date":"yesterday","rowCount":"many","extra":true}`, nil, 422, "validation-failed", ""},
		{"wrong JSON type", "/api/validate", `[1,2,3]`, nil, 422, "validation-failed", ""},
		{"not JSON media type", "/api/validate", validBody, map[string]string{"Content-Type": "text/plain"}, 415, "unsupported-media-type", ""},
		{"body over the limit", "/api/validate", `{"dataset":"` + strings.Repeat("x", 300<<10) + `"}`, nil, 413, "payload-too-large", ""},
		{"a check fails", "/api/validate", `{"dataset":"sales","date":"2099-01-01"}`, nil, 422, "validation-failed", ""},
		{"unknown stand-in service", "/api/simulate/zz", `{}`, nil, 404, "not-found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := post(t, s.URL+tt.path, tt.body, tt.header)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %v", res.StatusCode, tt.wantStatus, body)
			}
			traceID, _ := body["traceId"].(string)
			if len(traceID) != 32 {
				t.Errorf("no trace id in %v", body)
			}
			if tt.notTraceOf != "" && traceID == tt.notTraceOf {
				t.Errorf("the invalid traceparent's trace was continued")
			}
			if tt.wantCode != "" {
				if body["code"] != tt.wantCode {
					t.Errorf("code = %v, want %s", body["code"], tt.wantCode)
				}
				if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("Content-Type = %q", ct)
				}
			}
		})
	}
	// What the host itself refuses: an unknown route and a method the
	// route does not allow are 404 from ASP.NET Core routing.
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		req, _ := http.NewRequest(m, s.URL+"/api/validate", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s /api/validate = %d, want 404", m, res.StatusCode)
		}
	}
	if res, body := post(t, s.URL+"/api/validate", validBody, nil); res.StatusCode != 200 || body["valid"] != true {
		t.Fatalf("after the bad inputs: %d %v", res.StatusCode, body)
	}
}

// TestHostRestartsAKilledHandler: the stand-in restarts the handler process
// when it dies, as the host does, and requests succeed again.
func TestHostRestartsAKilledHandler(t *testing.T) {
	s := start(t, "payload")
	if res, _ := post(t, s.URL+"/api/validate", validBody, nil); res.StatusCode != 200 {
		t.Fatalf("before: %d", res.StatusCode)
	}
	s.Host.KillHandler()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, body := post(t, s.URL+"/api/validate", validBody, nil)
		if res.StatusCode == 200 && body["valid"] == true {
			return
		}
		if res.StatusCode != http.StatusInternalServerError {
			t.Fatalf("while restarting: %d %v, want 500 (invocation failed) or 200", res.StatusCode, body)
		}
		if time.Now().After(deadline) {
			t.Fatal("the handler was not restarted")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
