package stack

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/funchost"
	"github.com/nbtrace/nbtrace/dev/internal/syncbuf"
)

// TestStackPrintsEachTraceOnce: through the local stack and today's host,
// a ?wait request, whose polls of its run are further apart than the
// quiet time, is printed once, whole; a request answered at once is
// printed once, then again as an update when runs/{id} records its run.
func TestStackPrintsEachTraceOnce(t *testing.T) {
	var out syncbuf.Buffer
	const settle = 300 * time.Millisecond
	s := startStack(t, Options{Traces: &out, Settle: settle, HostGeneration: funchost.Gen2026,
		Runner: dbxstandin.RunnerFunc(func(context.Context, dbxstandin.RunContext) error {
			time.Sleep(1500 * time.Millisecond) // a poll or two at least a second apart
			return nil
		})})

	res, body := post(t, s.URL+"/api/notebook?wait=60s", notebookBody, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("notebook?wait = %d %v", res.StatusCode, body)
	}
	waited := body["traceId"].(string)
	waitPrinted(t, &out, waited, 1)
	time.Sleep(4 * settle)
	want := []string{fmt.Sprintf("trace %s · %d spans · 2 services", waited, len(s.Sink.Trace(waited)))}
	if diff := cmp.Diff(want, printed(out.String(), waited)); diff != "" {
		t.Errorf("the ?wait request's trees (-want +got):\n%s", diff)
	}

	res, body = post(t, s.URL+"/api/notebook", notebookBody, nil)
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("notebook = %d %v", res.StatusCode, body)
	}
	answered := body["traceId"].(string)
	waitPrinted(t, &out, answered, 1)
	first := len(s.Sink.Trace(answered))
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, run := get(t, fmt.Sprintf("%s/api/runs/%d", s.URL, int64(body["runId"].(float64))))
		if run["ended"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not end: %v", run)
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitPrinted(t, &out, answered, 2)
	time.Sleep(4 * settle)
	want = []string{
		fmt.Sprintf("trace %s · %d spans · 2 services", answered, first),
		fmt.Sprintf("trace %s · %d spans · 2 services · updated: +5 spans from nbtrace, marked +", answered, first+5),
	}
	if diff := cmp.Diff(want, printed(out.String(), answered)); diff != "" {
		t.Errorf("the 202 request's trees (-want +got):\n%s", diff)
	}
}

// waitPrinted waits until a trace's tree has been printed n times.
func waitPrinted(t *testing.T, out *syncbuf.Buffer, traceID string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(printed(out.String(), traceID)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("trace %s printed %d times in 30 s, want %d:\n%s", traceID, len(printed(out.String(), traceID)), n, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// printed is the headings of a trace's trees in the output, without their
// durations.
func printed(out, traceID string) []string {
	duration := regexp.MustCompile(` · [0-9.]+ms`)
	var h []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "trace "+traceID) {
			h = append(h, duration.ReplaceAllString(line, ""))
		}
	}
	return h
}
