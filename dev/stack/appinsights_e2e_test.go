package stack

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestNotebookRunsReachApplicationInsights: the notebook, run by papermill
// in a fresh process for each run as on a job cluster, with nothing but the
// Application Insights connection string (through the job's secret scope),
// sends every run to ingestion: a Request in the caller's operation whose
// parent is the PRODUCER span, its steps as dependencies under it, its log
// records as Messages of the same operation. No run is sampled away. The
// resource is Entra-only, as infra/ deploys it: the handler signs in with
// its managed identity, the notebook with the service credential the
// deploy step created for the access connector's identity; no key is
// taken.
func TestNotebookRunsReachApplicationInsights(t *testing.T) {
	requirePython(t)
	fwd := false
	s := startStack(t, Options{Forwarding: &fwd, AppInsights: true})
	const runs = 3
	for i := range runs {
		traceID := fmt.Sprintf("a1b2c3d4e5f6%020x", i+1)
		res, body := post(t, s.URL+"/api/notebook?wait=120s", notebookBody, map[string]string{"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"})
		if res.StatusCode != http.StatusOK || body["run"].(map[string]any)["resultState"] != "SUCCESS" {
			t.Fatalf("run %d: %d %v", i, res.StatusCode, body)
		}
		spans := waitTrace(t, s, traceID, 20)
		producer := one(t, spans, "PRODUCER", "nbtrace", "run-now job "+strconv.FormatInt(s.JobID, 10))

		// The run's envelopes, by the notebook's cloud role.
		var request map[string]any
		deadline := time.Now().Add(30 * time.Second)
		var nb []map[string]any
		for time.Now().Before(deadline) {
			nb = nb[:0]
			for _, e := range s.Ingestion.Envelopes() {
				tags, _ := e["tags"].(map[string]any)
				if tags["ai.cloud.role"] == "databricks-notebook" && tags["ai.operation.id"] == traceID {
					nb = append(nb, e)
				}
			}
			if len(nb) >= 8 { // a Request, 4 steps, 3 Messages at least
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		ids := map[string]string{}
		var messages int
		for _, e := range nb {
			base := e["data"].(map[string]any)["baseData"].(map[string]any)
			parent := e["tags"].(map[string]any)["ai.operation.parentId"]
			switch e["name"] {
			case "Microsoft.ApplicationInsights.Request":
				if request != nil {
					t.Errorf("run %d: two Requests", i)
				}
				request = base
				if parent != producer.SpanID || base["name"] != "notebook distributed_tracing" || base["success"] != true {
					t.Errorf("run %d: Request %v under %v, want under the PRODUCER span %s", i, base, parent, producer.SpanID)
				}
			case "Microsoft.ApplicationInsights.RemoteDependency":
				if base["type"] != "InProc" {
					t.Errorf("run %d: step %v is not InProc", i, base)
				}
				ids[base["name"].(string)] = base["id"].(string) + " <- " + fmt.Sprint(parent)
			case "Microsoft.ApplicationInsights.Message":
				messages++
			}
		}
		if request == nil {
			t.Fatalf("run %d: no Request from the notebook in %d envelopes", i, len(nb))
		}
		nbID := request["id"].(string)
		for _, step := range []string{"extract", "transform", "load"} {
			if got := ids[step]; len(got) < 20 || got[len(got)-16:] != nbID {
				t.Errorf("run %d: step %s = %q, want a child of the notebook's Request %s", i, step, got, nbID)
			}
		}
		if got := ids["aggregate"]; len(got) < 20 || got[len(got)-16:] != ids["transform"][:16] {
			t.Errorf("run %d: aggregate = %q, want a child of transform %q", i, got, ids["transform"])
		}
		if messages < 3 {
			t.Errorf("run %d: %d log records arrived as Messages of the operation, want at least 3", i, messages)
		}
	}
	// Every post signed in, each by one of the two identities, and both
	// posted: nothing went in with the key alone.
	by := map[string]int{}
	for _, r := range s.Ingestion.Requests() {
		if r.Status != http.StatusOK {
			t.Errorf("a post to ingestion was answered %d (signed in as %q)", r.Status, r.Principal)
		}
		by[r.Principal]++
	}
	if by[s.Identity.ObjectID] == 0 || by[s.IngestionIdentity.ObjectID] == 0 || len(by) != 2 {
		t.Errorf("posts by principal = %v, want the app's (%s) and the access connector's identity's (%s) only",
			by, s.Identity.ObjectID, s.IngestionIdentity.ObjectID)
	}
}
