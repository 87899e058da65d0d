package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// TestHostChannel: each record reaches the host once, on the channel the
// host logs at its level: Info on stdout (or only in an invocation's Logs),
// Warn on stderr with "warn" in the line, Error on stderr without it.
func TestHostChannel(t *testing.T) {
	var stdout, stderr bytes.Buffer
	log := slog.New(NewLogHandler(NewHostChannel(&stdout, &stderr, slog.LevelInfo), slog.LevelInfo))
	log.Info("started")
	log.Warn("slow dependency")
	log.Error("a warning ignored: Warnings and WARN are words here", "why", "warned")
	ctx, capture := CaptureLogs(context.Background())
	log.InfoContext(ctx, "in the invocation")
	log.WarnContext(ctx, "warned in the invocation")
	log.ErrorContext(ctx, "failed in the invocation")
	log.Debug("not at this level")

	out := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(out) != 1 || !strings.Contains(out[0], `"msg":"started"`) {
		t.Errorf("stdout = %q, want the one record outside an invocation", out)
	}
	if lines := capture.Lines(); len(lines) != 1 || !strings.HasPrefix(lines[0], "INFO in the invocation") {
		t.Errorf("Logs = %q, want the invocation's Info record only", lines)
	}
	errLines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(errLines) != 4 {
		t.Fatalf("stderr = %q, want 4 lines", errLines)
	}
	for _, line := range errLines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%q is not JSON: %v", line, err)
		}
		hasWarn := strings.Contains(strings.ToLower(line), "warn")
		switch rec["level"] {
		case "WARN":
			if !hasWarn {
				t.Errorf("a Warn line the host would not log as a Warning: %s", line)
			}
		case "ERROR":
			if hasWarn {
				t.Errorf("an Error line the host would log as a Warning: %s", line)
			}
		default:
			t.Errorf("stderr holds %v", rec["level"])
		}
		if msg := rec["msg"].(string); strings.HasPrefix(msg, "a warning") && (msg != "a warning ignored: Warnings and WARN are words here" || rec["why"] != "warned") {
			t.Errorf("the escaped line reads back as %q, %v", msg, rec["why"])
		}
	}
}
