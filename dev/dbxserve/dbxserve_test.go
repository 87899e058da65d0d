package dbxserve

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nbtrace/nbtrace/dev/funchost"
	"github.com/nbtrace/nbtrace/dev/stack"
)

// TestWriteSettings: the values land in Values, replacing empty ones,
// and every comment and other setting stays; a missing file is made from
// the template.
func TestWriteSettings(t *testing.T) {
	dir := t.TempDir()
	template := filepath.Join(dir, "template.json")
	const tmpl = `{
  // keep me
  "IsEncrypted": false,
  "Values": {
    "FUNCTIONS_WORKER_RUNTIME": "custom",
    // the workspace
    "DATABRICKS_HOST": "",
    "NBTRACE_LOG_LEVEL": "debug",
  },
}`
	if err := os.WriteFile(template, []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{"DATABRICKS_HOST": "http://127.0.0.1:1234", "DATABRICKS_JOB_ID": "1004", "DATABRICKS_TOKEN": stack.NewToken()}
	for _, tt := range []struct{ name, existing string }{{"from the template", ""}, {"into a file", tmpl}, {"no Values", `{"IsEncrypted": false}`}} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "local.settings.json")
			if tt.existing != "" {
				if err := os.WriteFile(file, []byte(tt.existing), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteSettings(file, template, values); err != nil {
				t.Fatal(err)
			}
			s, err := funchost.ReadLocalSettingsFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range values {
				if s.Values[k] != v {
					t.Errorf("%s = %q, want %q", k, s.Values[k], v)
				}
			}
			b, _ := os.ReadFile(file)
			if tt.existing != `{"IsEncrypted": false}` && (!strings.Contains(string(b), "// keep me") || !strings.Contains(string(b), "// the workspace") || s.Values["NBTRACE_LOG_LEVEL"] != "debug") {
				t.Errorf("comments or settings lost:\n%s", b)
			}
		})
	}
}

// TestOnlyOnLoopback: the stand-in runs the notebooks it is given, so it
// listens on loopback only, and each start has a token of its own.
func TestOnlyOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "127.0.0.1"} {
		if _, err := Start(context.Background(), Options{RepoRoot: t.TempDir(), Addr: addr}); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
			t.Errorf("Addr %q: err = %v, want it refused", addr, err)
		}
	}
	if a, b := stack.NewToken(), stack.NewToken(); a == b || len(a) < 36 {
		t.Errorf("tokens %q and %q", a, b)
	}
}
