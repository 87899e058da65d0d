package stack

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
)

func TestRunnerWithoutPythonSaysSo(t *testing.T) {
	t.Setenv("NBTRACE_PYTHON", filepath.Join(t.TempDir(), "no-python"))
	err := NotebookRunner(t.TempDir(), &bytes.Buffer{}).Run(context.Background(), dbxstandin.RunContext{RunID: 1, Notebook: []byte("{}")})
	if err == nil || !strings.Contains(err.Error(), "notebook runs are unavailable") || !strings.Contains(err.Error(), VenvHint) {
		t.Errorf("err = %v, want it to say notebook runs are unavailable and how to fix it", err)
	}
}

// TestRunnerFailsTheRunWhenTheNotebookFails runs a notebook that raises:
// the run fails with the executed notebook kept for inspection.
func TestRunnerFailsTheRunWhenTheNotebookFails(t *testing.T) {
	root := requirePython(t)
	t.Setenv("NBTRACE_PYTHON", filepath.Join(root, ".venv", "bin", "python"))
	work := t.TempDir()
	failing := []byte(`{"cells":[{"cell_type":"code","execution_count":null,"id":"a","metadata":{"tags":["parameters"]},"outputs":[],"source":["x = \"\""]},
{"cell_type":"code","execution_count":null,"id":"b","metadata":{},"outputs":[],"source":["raise RuntimeError(\"bad input: \" + x)"]}],
"metadata":{"kernelspec":{"display_name":"Python 3","language":"python","name":"python3"}},"nbformat":4,"nbformat_minor":5}`)
	err := NotebookRunner(work, &bytes.Buffer{}).Run(context.Background(), dbxstandin.RunContext{
		RunID: 7, Notebook: failing, Parameters: map[string]string{"x": "42"},
	})
	if err == nil || !strings.Contains(err.Error(), "the notebook failed") {
		t.Fatalf("err = %v, want the run to fail", err)
	}
	out, rerr := os.ReadFile(filepath.Join(work, ".nbtrace", "runs", "7", "output.ipynb"))
	if rerr != nil || !bytes.Contains(out, []byte("bad input: 42")) {
		t.Errorf("the executed notebook with the error and the parameter was not kept: %v", rerr)
	}
}

// TestComputeEnv: a run's notebook does not see the stack's telemetry
// settings, which a Databricks compute would not have: it reads its own.
func TestComputeEnv(t *testing.T) {
	got := computeEnv([]string{"PATH=/bin", "OTEL_EXPORTER_OTLP_ENDPOINT=http://x", "APPLICATIONINSIGHTS_CONNECTION_STRING=k",
		"NBTRACE_LOG_LEVEL=debug", "DATABRICKS_TOKEN=t", "HOME=/root",
		// The app's identity and trust: the compute gives the notebook its own.
		"IDENTITY_ENDPOINT=http://127.0.0.1:1/msi/token", "IDENTITY_HEADER=h", "AZURE_CLIENT_ID=c", "REQUESTS_CA_BUNDLE=/ca.pem"})
	if strings.Join(got, " ") != "PATH=/bin HOME=/root" {
		t.Errorf("the notebook's environment: %v", got)
	}
}

// TestRunDirNeverTakesAnotherRunsFolder: a run keeps its notebook under its
// id; should that folder exist (another stack's run), it gets one of its
// own beside it, and the other run's output stays.
func TestRunDirNeverTakesAnotherRunsFolder(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "runs")
	first, err := runDir(parent, 1796300000000001)
	if err != nil || filepath.Base(first) != "1796300000000001" {
		t.Fatalf("first = %q, %v", first, err)
	}
	if err := os.WriteFile(filepath.Join(first, "output.ipynb"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := runDir(parent, 1796300000000001)
	if err != nil || second == first || !strings.HasPrefix(filepath.Base(second), "1796300000000001-") {
		t.Fatalf("second = %q, %v; want a folder of its own", second, err)
	}
	if b, _ := os.ReadFile(filepath.Join(first, "output.ipynb")); string(b) != "kept" {
		t.Error("the first run's output was lost")
	}
}
