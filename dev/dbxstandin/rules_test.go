package dbxstandin

import (
	"context"
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newServer(t *testing.T, o Options) *httptest.Server {
	t.Helper()
	o.Token = "t"
	s := New(o)
	srv := httptest.NewServer(s)
	s.SetBaseURL(srv.URL)
	t.Cleanup(func() { srv.Close(); s.Close() })
	return srv
}

// waitRun polls a run until it ends.
func waitRun(t *testing.T, srv *httptest.Server, runID string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, run := call(t, srv, "GET", "/api/2.2/jobs/runs/get?run_id="+runID, "t", "")
		if run["end_time"] != nil && run["end_time"] != float64(0) {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not end: %v", runID, run)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const clusterJob = `{"name":"j","parameters":[{"name":"p","default":""}],
 "job_clusters":[{"job_cluster_key":"c","new_cluster":{"kind":"CLASSIC_PREVIEW","is_single_node":true,"data_security_mode":"DATA_SECURITY_MODE_DEDICATED",
  "spark_version":"17.3.x-scala2.13","node_type_id":"Standard_D4ds_v5","spark_env_vars":ENV}}],
 "tasks":[{"task_key":"nb","job_cluster_key":"c","notebook_task":{"notebook_path":"/Shared/x/nb"}}]}`

// TestRunsInTheMultiTaskFormat: run-level setup, execution and cleanup are
// 0; the task has them; run_duration is the whole run; the page URL names
// the workspace.
func TestRunsInTheMultiTaskFormat(t *testing.T) {
	srv := newServer(t, Options{SetupDelay: 30 * time.Millisecond, QueueDelay: 10 * time.Millisecond, CleanupDelay: 10 * time.Millisecond,
		Runner: RunnerFunc(func(context.Context, RunContext) error { time.Sleep(40 * time.Millisecond); return nil })})
	_, m := call(t, srv, "POST", "/api/2.2/jobs/create", "t", strings.Replace(clusterJob, "ENV", "{}", 1))
	job := jsonInt(int64(m["job_id"].(float64)))
	_, j := call(t, srv, "GET", "/api/2.2/jobs/get?job_id="+job, "t", "")
	if settings, _ := j["settings"].(map[string]any); settings["format"] != "MULTI_TASK" {
		t.Errorf("job format = %v", settings["format"])
	}
	_, m = call(t, srv, "POST", "/api/2.2/jobs/run-now", "t", `{"job_id":`+job+`}`)
	runID := jsonInt(int64(m["run_id"].(float64)))
	run := waitRun(t, srv, runID)
	for _, k := range []string{"setup_duration", "execution_duration", "cleanup_duration"} {
		if v, ok := run[k]; ok && v != float64(0) {
			t.Errorf("run-level %s = %v, want 0 as the multi-task format has it", k, v)
		}
	}
	task := run["tasks"].([]any)[0].(map[string]any)
	if task["setup_duration"].(float64) < 30 || task["execution_duration"].(float64) < 40 || task["cleanup_duration"].(float64) < 10 ||
		run["run_duration"].(float64) < 90 || run["queue_duration"].(float64) < 10 {
		t.Errorf("task %v, run_duration %v, queue_duration %v", task, run["run_duration"], run["queue_duration"])
	}
	if want := srv.URL + "/?o=" + WorkspaceID + "#job/" + job + "/run/" + runID; run["run_page_url"] != want {
		t.Errorf("run page %v, want %s", run["run_page_url"], want)
	}
}

// TestMissingSecretFailsTheClusterLaunch: a {{secrets/…}} reference to no
// secret ends the run in INTERNAL_ERROR at set-up; the notebook never runs.
func TestMissingSecretFailsTheClusterLaunch(t *testing.T) {
	var ran atomic.Int32
	srv := newServer(t, Options{Runner: RunnerFunc(func(context.Context, RunContext) error { ran.Add(1); return nil })})
	_, m := call(t, srv, "POST", "/api/2.2/jobs/create", "t", strings.Replace(clusterJob, "ENV", `{"CS":"{{secrets/nbtrace/connection-string}}"}`, 1))
	job := jsonInt(int64(m["job_id"].(float64)))
	_, m = call(t, srv, "POST", "/api/2.2/jobs/run-now", "t", `{"job_id":`+job+`}`)
	run := waitRun(t, srv, jsonInt(int64(m["run_id"].(float64))))
	state := run["state"].(map[string]any)
	if state["life_cycle_state"] != "INTERNAL_ERROR" || state["result_state"] != "FAILED" ||
		!strings.Contains(state["state_message"].(string), "Secret does not exist with scope: nbtrace and key: connection-string") {
		t.Errorf("state = %v", state)
	}
	if ran.Load() != 0 {
		t.Error("the notebook ran on a cluster that could not launch")
	}
}

// TestClustersNeedAnAccessMode: the workspace has legacy access modes off.
func TestClustersNeedAnAccessMode(t *testing.T) {
	srv := newServer(t, Options{})
	for name, job := range map[string]string{
		"no access mode":  strings.Replace(strings.Replace(clusterJob, `"data_security_mode":"DATA_SECURITY_MODE_DEDICATED",`, "", 1), "ENV", "{}", 1),
		"no isolation":    strings.Replace(strings.Replace(clusterJob, "DATA_SECURITY_MODE_DEDICATED", "NONE", 1), "ENV", "{}", 1),
		"single node old": strings.Replace(strings.Replace(clusterJob, `"kind":"CLASSIC_PREVIEW",`, "", 1), "ENV", "{}", 1),
		"bad runtime":     strings.Replace(strings.Replace(clusterJob, "17.3.x-scala2.13", "latest", 1), "ENV", "{}", 1),
	} {
		if code, m := call(t, srv, "POST", "/api/2.2/jobs/create", "t", job); code != 400 || m["error_code"] != "INVALID_PARAMETER_VALUE" {
			t.Errorf("%s: %d %v", name, code, m)
		}
	}
}

// TestIdempotencyTokensAreTheWorkspaces: a token answers its run, even
// for another job.
func TestIdempotencyTokensAreTheWorkspaces(t *testing.T) {
	srv := newServer(t, Options{})
	var jobs []string
	for range 2 {
		_, m := call(t, srv, "POST", "/api/2.2/jobs/create", "t", `{"name":"j"}`)
		jobs = append(jobs, jsonInt(int64(m["job_id"].(float64))))
	}
	_, first := call(t, srv, "POST", "/api/2.2/jobs/run-now", "t", `{"job_id":`+jobs[0]+`,"idempotency_token":"k"}`)
	_, second := call(t, srv, "POST", "/api/2.2/jobs/run-now", "t", `{"job_id":`+jobs[1]+`,"idempotency_token":"k"}`)
	if first["run_id"] != second["run_id"] {
		t.Errorf("the same token gave runs %v and %v", first["run_id"], second["run_id"])
	}
}

// TestImportFormats: notebooks and files, as the Workspace API makes them.
func TestImportFormats(t *testing.T) {
	srv := newServer(t, Options{})
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	imp := func(path, format, content string, overwrite bool) (int, map[string]any) {
		return call(t, srv, "POST", "/api/2.0/workspace/import", "t",
			`{"path":"`+path+`","format":"`+format+`","content":"`+b64(content)+`","overwrite":`+map[bool]string{true: "true", false: "false"}[overwrite]+`}`)
	}
	if code, m := imp("/Shared/x/m.py", "RAW", "x = 1", true); code != 404 || !strings.Contains(m["message"].(string), "parent folder") {
		t.Errorf("into a missing folder: %d %v", code, m)
	}
	call(t, srv, "POST", "/api/2.0/workspace/mkdirs", "t", `{"path":"/Shared/x"}`)
	steps := []struct {
		path, format, content string
		overwrite             bool
		status                int
	}{
		{"/Shared/x/m.py", "RAW", "x = 1", true, 200},
		{"/Shared/x/m.py", "RAW", "x = 2", false, 400},
		{"/Shared/x/m.py", "RAW", "x = 3", true, 200},
		{"/Shared/x/m.py", "AUTO", "x = 4", true, 400}, // databricks/cli#3386
		{"/Shared/x/nb", "JUPYTER", "{}", true, 200},
		{"/Shared/x/nb", "RAW", "{}", true, 400},
		{"/Shared/x/s.py", "SOURCE", "x", true, 400}, // no language
		{"/Shared/x/a.py", "AUTO", "# Databricks notebook source\nx = 1\n", false, 200},
	}
	for _, st := range steps {
		if code, m := imp(st.path, st.format, st.content, st.overwrite); code != st.status {
			t.Errorf("%s %s overwrite %t: %d %v, want %d", st.format, st.path, st.overwrite, code, m, st.status)
		}
	}
	for path, want := range map[string]string{"/Shared/x/m.py": "FILE", "/Shared/x/nb": "NOTEBOOK", "/Shared/x/a": "NOTEBOOK", "/Shared/x": "DIRECTORY"} {
		_, m := call(t, srv, "GET", "/api/2.0/workspace/get-status?path="+path, "t", "")
		if m["object_type"] != want || (want == "NOTEBOOK") != (m["language"] == "PYTHON") {
			t.Errorf("%s: %v, want %s", path, m, want)
		}
	}
	if _, m := call(t, srv, "GET", "/api/2.0/workspace/get-status?path=/Shared/x/m.py", "t", ""); m["size"] != float64(5) {
		t.Errorf("file size %v", m["size"])
	}
	if code, m := call(t, srv, "GET", "/api/2.0/workspace/get-status?path=/Shared/x/a.py", "t", ""); code != 404 || m["message"] != "Path (/Shared/x/a.py) doesn't exist." {
		t.Errorf("the notebook kept its extension: %d %v", code, m)
	}
}

const serverlessJob = `{"name":"s","environments":[{"environment_key":"e","spec":{"environment_version":"4","dependencies":["opentelemetry-sdk==1.45.1"]}}],
 "tasks":[{"task_key":"nb","environment_key":"e","notebook_task":{"notebook_path":"/Shared/x/nb"}}]}`

// TestServerlessJobs: what Databricks refuses in a serverless job, and the
// start-up each kind of compute takes.
func TestServerlessJobs(t *testing.T) {
	srv := newServer(t, Options{SetupDelay: 300 * time.Millisecond, ServerlessSetupDelay: 20 * time.Millisecond,
		Runner: RunnerFunc(func(_ context.Context, rc RunContext) error {
			if !rc.Serverless {
				t.Error("a serverless run was told it is not")
			}
			return nil
		})})
	for name, body := range map[string]string{
		"libraries on a serverless task":  strings.Replace(serverlessJob, `"environment_key":"e","notebook`, `"environment_key":"e","libraries":[{"pypi":{"package":"x==1"}}],"notebook`, 1),
		"an environment not defined":      strings.Replace(serverlessJob, `"task_key":"nb","environment_key":"e"`, `"task_key":"nb","environment_key":"f"`, 1),
		"an unknown environment version":  strings.Replace(serverlessJob, `"environment_version":"4"`, `"environment_version":"latest"`, 1),
		"the old client field, version 1": strings.Replace(serverlessJob, `"environment_version":"4"`, `"client":"1"`, 1),
	} {
		if code, m := call(t, srv, "POST", "/api/2.2/jobs/create", "t", body); code != 400 || m["error_code"] != "INVALID_PARAMETER_VALUE" {
			t.Errorf("%s: %d %v", name, code, m)
		}
	}
	_, m := call(t, srv, "POST", "/api/2.2/jobs/create", "t", serverlessJob)
	_, m = call(t, srv, "POST", "/api/2.2/jobs/run-now", "t", `{"job_id":`+jsonInt(int64(m["job_id"].(float64)))+`}`)
	run := waitRun(t, srv, jsonInt(int64(m["run_id"].(float64))))
	if setup := run["tasks"].([]any)[0].(map[string]any)["setup_duration"].(float64); setup < 20 || setup >= 300 {
		t.Errorf("a serverless run set up in %v ms, want serverless' 20 ms, not a cluster's 300", setup)
	}
}
