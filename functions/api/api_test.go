package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestEveryCodeHasAStatus(t *testing.T) {
	seen := map[int]Code{}
	for _, c := range Codes() {
		s, ok := statusOf[c]
		if !ok {
			t.Errorf("code %s has no status", c)
		}
		if other, dup := seen[s]; dup {
			t.Errorf("codes %s and %s share status %d", c, other, s)
		}
		seen[s] = c
	}
	if len(statusOf) != len(Codes()) {
		t.Errorf("Codes() lists %d codes, the table has %d", len(Codes()), len(statusOf))
	}
	if Status("nonsense") != 500 {
		t.Error("an unknown code is not 500")
	}
}

func TestWriteError(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "x")
	defer span.End()
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantDetail string
		wantHeader map[string]string
	}{
		{"coded", &Error{Code: ETIMEOUT, Message: "service a was slow", Dependency: "service-a"}, 504, "service a was slow", nil},
		{"retry after rounds up", &Error{Code: EUNAVAILABLE, Message: "busy", RetryAfter: 1500 * time.Millisecond}, 503, "busy", map[string]string{"Retry-After": "2"}},
		{"allow", &Error{Code: EMETHOD, Message: "no", Allow: []string{"GET", "POST"}}, 405, "no", map[string]string{"Allow": "GET, POST"}},
		{"wrapped", fmtWrap(Errorf(ENOTFOUND, "no job")), 404, "no job", nil},
		{"internal hides its cause", errors.New("db password=hunter2 rejected"), 500, "The request failed unexpectedly. Quote the trace id when reporting it.", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			WriteError(w, httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil), tt.err)
			if w.Code != tt.wantStatus || w.Header().Get("Content-Type") != ProblemContentType {
				t.Fatalf("status %d type %q", w.Code, w.Header().Get("Content-Type"))
			}
			var p map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if p["detail"] != tt.wantDetail || p["traceId"] != span.SpanContext().TraceID().String() || p["status"] != float64(tt.wantStatus) {
				t.Errorf("problem = %v", p)
			}
			if !strings.HasPrefix(p["type"].(string), ProblemTypeBase) {
				t.Errorf("type = %v", p["type"])
			}
			for k, v := range tt.wantHeader {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if strings.Contains(w.Body.String(), "hunter2") {
				t.Error("an internal error's cause reached the caller")
			}
		})
	}
}

func fmtWrap(err error) error { return errors.Join(errors.New("context"), err) }

func TestProblemExtensions(t *testing.T) {
	p := ProblemFor(context.Background(), &Error{Code: EUNPROCESSABLE, Message: "m", Extensions: map[string]any{"checks": []int{1}}})
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m["checks"] == nil || m["code"] != "validation-failed" {
		t.Errorf("problem = %s", b)
	}
}

type sample struct {
	Name  string `json:"name"`
	Count *int   `json:"count,omitempty"`
}

func (s sample) Valid(context.Context) map[string]string {
	if s.Name == "" {
		return map[string]string{"name": "is required"}
	}
	return nil
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, ct, body string
		limit          int64
		wantCode       Code
		wantFields     map[string]string
	}{
		{"ok", "application/json", `{"name":"x","count":2}`, 100, "", nil},
		{"ok with charset and no content type", "", ` {"name":"x"} `, 100, "", nil},
		{"problem+json", "application/problem+json; charset=utf-8", `{"name":"x"}`, 100, "", nil},
		{"text", "text/plain", `{"name":"x"}`, 100, EMEDIATYPE, nil},
		{"too large", "", `{"name":"xxxxxxxxxxxxxxxx"}`, 10, ETOOLARGE, nil},
		{"empty", "", ``, 100, EINVALID, nil},
		{"broken", "", `{"name":`, 100, EINVALID, nil},
		{"two values", "", `{"name":"x"}{}`, 100, EINVALID, nil},
		{"array", "", `[]`, 100, EUNPROCESSABLE, map[string]string{"(body)": "must be a JSON object"}},
		{"null", "", `null`, 100, EUNPROCESSABLE, map[string]string{"(body)": "must be a JSON object"}},
		{"everything wrong", "", `{"count":"two","extra":1}`, 100, EUNPROCESSABLE,
			map[string]string{"count": "must be a whole number", "extra": "is not a known field", "name": "is required"}},
		{"wrong type wins over Valid", "", `{"name":5}`, 100, EUNPROCESSABLE, map[string]string{"name": "must be a string"}},
		{"null is not a value", "", `{"name":"x","count":null}`, 100, EUNPROCESSABLE, map[string]string{"count": "must be a whole number"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
			if tt.ct != "" {
				r.Header.Set("Content-Type", tt.ct)
			}
			r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, tt.limit)
			_, err := Decode[sample](r)
			if got := ErrorCode(err); got != tt.wantCode {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.wantCode)
			}
			var e *Error
			if tt.wantFields != nil && (!errors.As(err, &e) || len(e.Fields) != len(tt.wantFields)) {
				t.Fatalf("fields = %v, want %v", e, tt.wantFields)
			}
			for k, v := range tt.wantFields {
				if e.Fields[k] != v {
					t.Errorf("fields[%s] = %q, want %q", k, e.Fields[k], v)
				}
			}
		})
	}
}

func TestDurationSetting(t *testing.T) {
	env := map[string]string{"OK": "2s", "BAD": "soon", "LOW": "1ms", "HIGH": "2h"}
	getenv := func(k string) string { return env[k] }
	if d, err := DurationSetting(getenv, "UNSET", 5*time.Second, time.Second, time.Minute); err != nil || d != 5*time.Second {
		t.Errorf("unset: %v %v", d, err)
	}
	if d, err := DurationSetting(getenv, "OK", 5*time.Second, time.Second, time.Minute); err != nil || d != 2*time.Second {
		t.Errorf("OK: %v %v", d, err)
	}
	for _, name := range []string{"BAD", "LOW", "HIGH"} {
		if _, err := DurationSetting(getenv, name, 5*time.Second, time.Second, time.Minute); err == nil || !strings.HasPrefix(err.Error(), name+":") {
			t.Errorf("%s: err = %v, want one naming the setting", name, err)
		}
	}
}

func TestHTTPURLSetting(t *testing.T) {
	for raw, ok := range map[string]bool{"https://x.example.com/a": true, "http://127.0.0.1:7071": true, "x.example.com": false,
		"ftp://x": false, "https://user:secret@x": false, "/relative": false} {
		_, err := HTTPURLSetting("S", raw)
		if (err == nil) != ok {
			t.Errorf("%q: err = %v", raw, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("the error shows a credential: %v", err)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{"3": 3 * time.Second, "0": 0, "Thu, 01 Jan 2026 00:00:05 GMT": 5 * time.Second} {
		if got, ok := ParseRetryAfter(v, now); !ok || got != want {
			t.Errorf("%q = %v %v, want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "soon", "-1"} {
		if _, ok := ParseRetryAfter(v, now); ok {
			t.Errorf("%q parsed", v)
		}
	}
}

// TestDependencyFailuresAreLogged: a failed dependency's cause is logged
// for operators, with any key in the service's URL cut out.
func TestDependencyFailuresAreLogged(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, nil)))
	defer slog.SetDefault(old)
	cause := &url.Error{Op: "Post", URL: "http://svc.example/a?code=s3cret", Err: errors.New("connection refused")}
	WriteError(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", nil),
		&Error{Code: EDEPENDENCY, Message: "service a could not be reached", Dependency: "service-a", Err: cause})
	out := buf.String()
	for _, want := range []string{`"msg":"dependency failed"`, `"dependency":"service-a"`, "connection refused", "http://svc.example/a"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %s lacks %s", out, want)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("the key in the service URL was logged: %s", out)
	}
}

func TestTokenSafe(t *testing.T) {
	for raw, want := range map[string]bool{
		"https://dc.services.visualstudio.com/": true,
		"http://127.0.0.1:1/":                   true,
		"http://[::1]:1/":                       true,
		"http://localhost:1/":                   true,
		"http://ingest.example.com/":            false,
		"http://127.0.0.1.example.com/":         false,
		"::":                                    false,
	} {
		if got := TokenSafe(raw); got != want {
			t.Errorf("TokenSafe(%q) = %v, want %v", raw, got, want)
		}
	}
}
