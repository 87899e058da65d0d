package stack

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/funchost"
)

// TestEachLogRecordOnceAtItsLevel: every log record of an invocation
// reaches the host's log once, at its own level as the host reads the
// handler's output, and Application Insights once, from the handler's own
// exporter with its trace ids: host.json keeps the host from sending its
// copy. Info, Warn and Error records, in the payload protocol and in
// forwarding.
func TestEachLogRecordOnceAtItsLevel(t *testing.T) {
	for _, protocol := range []string{"payload", "forwarding"} {
		t.Run(protocol, func(t *testing.T) {
			fwd := protocol == "forwarding"
			s := startStack(t, Options{Forwarding: &fwd, AppInsights: true,
				Runner: dbxstandin.RunnerFunc(func(context.Context, dbxstandin.RunContext) error { return nil })})
			const okTrace, failTrace = "0af7651916cd43dd8448eb211c80319c", "1bf7651916cd43dd8448eb211c80319d"
			if res, body := post(t, s.URL+"/api/validate", `{"dataset":"sales","date":"2026-11-25","rowCount":10}`,
				map[string]string{"traceparent": "00-" + okTrace + "-b7ad6b7169203331-01"}); res.StatusCode != 200 {
				t.Fatalf("validate: %d %v", res.StatusCode, body)
			}
			// A Databricks failure: a Warn (the dependency's cause) and an
			// Error (the 502) besides Info records.
			s.Databricks.Inject(dbxstandin.Fault{PathPrefix: "/api/2.2/jobs/run-now", Status: 500})
			if res, body := post(t, s.URL+"/api/notebook", notebookBody,
				map[string]string{"traceparent": "00-" + failTrace + "-b7ad6b7169203331-01"}); res.StatusCode != http.StatusBadGateway {
				t.Fatalf("notebook: %d %v", res.StatusCode, body)
			}
			for _, trace := range []string{okTrace, failTrace} {
				messages := waitMessages(t, s, trace)
				levels := map[string]bool{}
				for _, m := range messages {
					levels[m.level] = true
					var inHost []funchost.LogRecord
					for _, r := range s.Host.Logs() {
						if strings.Contains(r.Message, trace) && strings.Contains(r.Message, m.span) && strings.Contains(r.Message, m.text) {
							inHost = append(inHost, r)
						}
					}
					if len(inHost) != 1 || inHost[0].Level.String() != m.level {
						t.Errorf("%s record %q (%s): %d times in the host's log, want once at %s", trace[:8], m.text, m.level, len(inHost), m.level)
						continue
					}
					if m.level == "Information" && !fwd && !strings.HasPrefix(inHost[0].Category, "Function.") {
						t.Errorf("an Info record of a payload invocation went to %s, not to the invocation's own log", inHost[0].Category)
					}
				}
				if trace == failTrace && (!levels["Warning"] || !levels["Error"] || !levels["Information"]) {
					t.Errorf("the failing invocation logged at %v, want Information, Warning and Error", levels)
				}
				for _, r := range s.Host.AppInsightsLogs() {
					if strings.Contains(r.Message, trace) {
						t.Errorf("the host sent its copy of %q (%s %s) to Application Insights too", r.Message, r.Level, r.Category)
					}
				}
			}
		})
	}
}

type message struct{ text, level, span string }

// waitMessages waits until the handler's log records of a trace have come
// to the ingestion stand-in as Messages, and returns them.
func waitMessages(t *testing.T, s *Stack, trace string) []message {
	t.Helper()
	var out []message
	seen := -1
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out = out[:0]
		for _, e := range s.Ingestion.Envelopes() {
			tags, _ := e["tags"].(map[string]any)
			if e["name"] != "Microsoft.ApplicationInsights.Message" || tags["ai.operation.id"] != trace || tags["ai.cloud.role"] == "databricks-notebook" {
				continue
			}
			base := e["data"].(map[string]any)["baseData"].(map[string]any)
			out = append(out, message{text: fmt.Sprint(base["message"]), level: fmt.Sprint(base["severityLevel"]), span: fmt.Sprint(tags["ai.operation.parentId"])})
		}
		if len(out) > 0 && len(out) == seen { // nothing more came in the last poll
			break
		}
		seen = len(out)
	}
	if len(out) == 0 {
		t.Fatalf("no log record of trace %s reached Application Insights", trace)
	}
	return out
}
