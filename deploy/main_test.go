package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailscale/hujson"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
)

func TestWriteJobIDKeepsComments(t *testing.T) {
	file := filepath.Join(t.TempDir(), "local.settings.json")
	if err := os.WriteFile(file, []byte("{\n  // keep me\n  \"Values\": {\n    \"DATABRICKS_JOB_ID\": \"\", // and me\n  },\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeJobID(file, 42); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(file)
	if !bytes.Contains(b, []byte("// keep me")) || !bytes.Contains(b, []byte("// and me")) || !bytes.Contains(b, []byte(`"DATABRICKS_JOB_ID": "42"`)) {
		t.Errorf("file = %s", b)
	}
	missing := filepath.Join(t.TempDir(), "new.json")
	if err := writeJobID(missing, 7); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(missing)
	std, err := hujson.Standardize(b)
	if err != nil || !bytes.Contains(std, []byte(`"DATABRICKS_JOB_ID":"7"`)) && !bytes.Contains(std, []byte(`"DATABRICKS_JOB_ID": "7"`)) {
		t.Errorf("new file = %s (%v)", b, err)
	}
}

// TestDeployCommand runs the command against the stand-in twice: one job,
// the same id, the notebook uploaded.
func TestDeployCommand(t *testing.T) {
	stand := dbxstandin.New(dbxstandin.Options{Token: "t"})
	srv := httptest.NewServer(stand)
	defer srv.Close()
	stand.SetBaseURL(srv.URL)
	env := map[string]string{"DATABRICKS_HOST": srv.URL, "DATABRICKS_TOKEN": "t", "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k"}
	getenv := func(k string) string { return env[k] }
	settings := filepath.Join(t.TempDir(), "local.settings.json")
	var ids []string
	for range 2 {
		var out bytes.Buffer
		err := run(context.Background(), []string{"-notebooks", "../notebooks", "-requirements", "../notebooks/requirements-job.txt", "-settings", settings}, getenv, &out, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, strings.TrimSpace(out.String()))
	}
	if ids[0] != ids[1] || !strings.HasPrefix(ids[0], "DATABRICKS_JOB_ID=") {
		t.Errorf("outputs %q", ids)
	}
	if stand.File("/Shared/nbtrace/distributed_tracing") == nil || stand.File("/Shared/nbtrace/nbtrace_otel.py") == nil {
		t.Error("the notebook folder was not uploaded")
	}
	if stand.File("/Shared/nbtrace/test_nbtrace_otel.py") != nil || stand.File("/Shared/nbtrace/conftest.py") != nil {
		t.Error("tests were uploaded")
	}
	b, _ := os.ReadFile(settings)
	if !bytes.Contains(b, []byte(strings.TrimPrefix(ids[0], "DATABRICKS_JOB_ID="))) {
		t.Errorf("settings = %s", b)
	}
	if err := run(context.Background(), nil, func(string) string { return "" }, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "DATABRICKS_HOST") {
		t.Errorf("without settings: %v", err)
	} // The connector's ids without the credential's name would be ignored:
	// refused instead.
	err := run(context.Background(), []string{"-access-connector-id", "/subscriptions/s/resourceGroups/g/providers/Microsoft.Databricks/accessConnectors/c"}, getenv, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "-ingestion-credential") {
		t.Errorf("connector id without a credential name: %v", err)
	}
}
