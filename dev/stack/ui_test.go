package stack

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbtrace/nbtrace/functions/openapi"
)

// chromium finds Debian's Chromium; CI installs it and sets
// NBTRACE_REQUIRE_CHROMIUM, so a missing browser fails there.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("NBTRACE_REQUIRE_CHROMIUM") != "" {
		t.Fatal("NBTRACE_REQUIRE_CHROMIUM is set but there is no chromium (apt-get install chromium)")
	}
	t.Skip("the browser test needs Chromium: apt-get install chromium")
	return ""
}

func headless(t *testing.T, browser string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=15000"}
	out, err := exec.CommandContext(ctx, browser, append(base, args...)...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return out
}

// TestAPIPageRendersEveryOperation opens /api/ui from the local stack in
// headless Chromium: every operation of the OpenAPI document is on the
// page, which is saved as .nbtrace/api-ui.png.
func TestAPIPageRendersEveryOperation(t *testing.T) {
	browser := chromium(t)
	s := start(t, "payload")
	dom := string(headless(t, browser, "--dump-dom", s.URL+"/api/ui"))
	var doc struct {
		Paths map[string]map[string]json.RawMessage
	}
	if err := json.Unmarshal(openapi.Document, &doc); err != nil {
		t.Fatal(err)
	}
	ops := 0
	for path, methods := range doc.Paths {
		for method := range methods {
			ops++
			if !strings.Contains(dom, `data-path="`+path+`"`) || !strings.Contains(dom, "opblock-"+method) {
				t.Errorf("the page does not show %s %s", strings.ToUpper(method), path)
			}
		}
	}
	if ops < 6 || strings.Count(dom, `opblock-summary-path" data-path=`) != ops {
		t.Errorf("%d operations on the page, %d in the document", strings.Count(dom, `opblock-summary-path" data-path=`), ops)
	}
	root, _ := RepoRoot(".")
	shot := filepath.Join(root, ".nbtrace", "api-ui.png")
	_ = os.MkdirAll(filepath.Dir(shot), 0o755)
	headless(t, browser, "--window-size=1280,1400", "--screenshot="+shot, s.URL+"/api/ui")
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Errorf("no screenshot at %s: %v", shot, err)
	}
}
