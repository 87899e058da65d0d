package dbxstandin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func call(t *testing.T, srv *httptest.Server, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return res.StatusCode, m
}

func TestRunNowRules(t *testing.T) {
	ran := make(chan RunContext, 5)
	s := New(Options{Token: "t", Runner: RunnerFunc(func(_ context.Context, rc RunContext) error {
		ran <- rc
		if rc.Parameters["dataset"] == "fail" {
			return errors.New("boom")
		}
		return nil
	})})
	srv := httptest.NewServer(s)
	defer srv.Close()
	defer s.Close()
	s.SetBaseURL(srv.URL)
	if code, m := call(t, srv, "POST", "/api/2.2/jobs/create", "", `{}`); code != 401 || m["error_code"] != "UNAUTHENTICATED" {
		t.Errorf("no token: %d %v", code, m)
	}
	if code, _ := call(t, srv, "GET", "/.well-known/databricks-config", "", ""); code != 200 {
		t.Errorf("discovery needs no token: %d", code)
	}
	_, m := call(t, srv, "POST", "/api/2.2/jobs/create", "t", `{"name":"j","parameters":[{"name":"traceparent","default":""},{"name":"dataset","default":"d"},{"name":"run_id","default":"{{job.run_id}}"}],"tasks":[{"task_key":"nb","notebook_task":{"notebook_path":"/Shared/x/nb"}}]}`)
	job := int64(m["job_id"].(float64))
	tests := []struct {
		name, body string
		status     int
		code       string
	}{
		{"undefined parameter", `{"job_id":JOB,"job_parameters":{"cluster":"big"}}`, 400, "INVALID_PARAMETER_VALUE"},
		{"token too long", `{"job_id":JOB,"idempotency_token":"` + strings.Repeat("x", 65) + `"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"parameters too large", `{"job_id":JOB,"job_parameters":{"dataset":"` + strings.Repeat("x", 10001) + `"}}`, 400, "INVALID_PARAMETER_VALUE"},
		{"no such job", `{"job_id":1}`, 400, "INVALID_PARAMETER_VALUE"},
		{"not JSON", `{`, 400, "MALFORMED_REQUEST"},
	}
	for _, tt := range tests {
		code, m := call(t, srv, "POST", "/api/2.2/jobs/run-now", "t", strings.ReplaceAll(tt.body, "JOB", jsonInt(job)))
		if code != tt.status || m["error_code"] != tt.code {
			t.Errorf("%s: %d %v, want %d %s", tt.name, code, m, tt.status, tt.code)
		}
	}
	if s.Runs() != 0 {
		t.Fatalf("%d runs after only bad requests", s.Runs())
	}
	_, m = call(t, srv, "POST", "/api/2.2/jobs/run-now", "t", `{"job_id":`+jsonInt(job)+`,"job_parameters":{"dataset":"fail"},"idempotency_token":"a"}`)
	runID := int64(m["run_id"].(float64))
	_, again := call(t, srv, "POST", "/api/2.2/jobs/run-now", "t", `{"job_id":`+jsonInt(job)+`,"idempotency_token":"a"}`)
	if int64(again["run_id"].(float64)) != runID || s.Runs() != 1 {
		t.Errorf("the same token started another run")
	}
	rc := <-ran
	if rc.Parameters["run_id"] != jsonInt(runID) || rc.Parameters["traceparent"] != "" || rc.NotebookPath != "/Shared/x/nb" {
		t.Errorf("run context = %+v", rc)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, run := call(t, srv, "GET", "/api/2.2/jobs/runs/get?run_id="+jsonInt(runID), "t", "")
		state, _ := run["state"].(map[string]any)
		if state["life_cycle_state"] == "TERMINATED" {
			if state["result_state"] != "FAILED" || state["state_message"] != "boom" || run["end_time"] == nil {
				t.Errorf("run = %v", run)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run did not end")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFaults(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	s.Inject(Fault{PathPrefix: "/api/2.2/jobs/list", Status: 429, RetryAfter: "3", Times: 2})
	for i := range 3 {
		req, _ := http.NewRequest("GET", srv.URL+"/api/2.2/jobs/list", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		want := 429
		if i == 2 {
			want = 200
		}
		if res.StatusCode != want || (want == 429 && res.Header.Get("Retry-After") != "3") {
			t.Errorf("call %d: %d Retry-After %q", i, res.StatusCode, res.Header.Get("Retry-After"))
		}
	}
	s.Inject(Fault{PathPrefix: "/api/2.2/jobs/list", Drop: true})
	if _, err := http.Get(srv.URL + "/api/2.2/jobs/list"); err == nil {
		t.Error("a dropped connection answered")
	}
}

func jsonInt(v int64) string { b, _ := json.Marshal(v); return string(b) }

// jsonString is a JSON value as text: error_code is a string or, in Azure's
// sign-in refusals, a number.
func jsonString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonDecode(res *http.Response, v any) error { return json.NewDecoder(res.Body).Decode(v) }

// TestRunIDsDoNotRepeatAcrossStandIns: a stand-in seeded from the clock,
// started after another that gave runs, gives none of their ids; within
// one, runs and their tasks take ids of one rising sequence.
func TestRunIDsDoNotRepeatAcrossStandIns(t *testing.T) {
	seen := map[int64]bool{}
	var last int64
	for range 3 {
		s := New(Options{Token: "t", FirstRunID: RunIDSeed()})
		srv := httptest.NewServer(s)
		_, m := call(t, srv, "POST", "/api/2.2/jobs/create", "t", `{"name":"j","tasks":[{"task_key":"nb","notebook_task":{"notebook_path":"/Shared/x/nb"}}]}`)
		body := fmt.Sprintf(`{"job_id":%d}`, int64(m["job_id"].(float64)))
		for range 5 {
			_, r := call(t, srv, "POST", "/api/2.2/jobs/run-now", "t", body)
			id := int64(r["run_id"].(float64))
			_, run := call(t, srv, "GET", fmt.Sprintf("/api/2.2/jobs/runs/get?run_id=%d", id), "t", "")
			task := int64(run["tasks"].([]any)[0].(map[string]any)["run_id"].(float64))
			for _, x := range []int64{id, task} {
				if seen[x] || x <= last {
					t.Fatalf("run id %d repeats or does not rise (last %d)", x, last)
				}
				seen[x], last = true, x
			}
		}
		srv.Close()
		s.Close()
	}
	if last >= 1<<53 {
		t.Errorf("run id %d is not exact in JSON", last)
	}
}
