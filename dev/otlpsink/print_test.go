package otlpsink

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nbtrace/nbtrace/dev/internal/syncbuf"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// at is a span of a notebook request's trace, as in the README: it starts
// start milliseconds after the request and lasts dur.
func at(id, parent, kind, service, name string, start, dur int) Span {
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	return Span{TraceID: "ffdd4acb6ed330b89bf943a8b9c58714", SpanID: id, ParentSpanID: parent, Kind: kind,
		Service: service, Name: name, Start: ms(start), End: ms(start + dur)}
}

// The spans of a notebook request under today's host, by when they end and
// are exported. The handler's invocations hang under the host's calls to
// it, which it does not record.
var (
	validated = []Span{
		at("validate-call", "invocation", "CLIENT", "nbtrace", "POST /api/validate", 1, 108),
		at("host-validate", "validate-call", "SERVER", "functions-host", "validate", 2, 106),
		at("validate-inv", "host-call-validate", "SERVER", "nbtrace", "POST /api/validate", 3, 104),
		at("call-a", "validate-inv", "CLIENT", "nbtrace", "POST /api/simulate/a", 3, 103),
		at("call-b", "validate-inv", "CLIENT", "nbtrace", "POST /api/simulate/b", 3, 102),
		at("producer", "invocation", "PRODUCER", "nbtrace", "run-now job 1003", 110, 4),
		at("run-now", "producer", "CLIENT", "nbtrace", "POST /api/2.2/jobs/run-now", 111, 1),
	}
	notebookRan = []Span{
		at("nb-extract", "nb-consumer", "INTERNAL", "databricks-notebook", "extract", 2660, 1001),
		at("nb-aggregate", "nb-transform", "INTERNAL", "databricks-notebook", "aggregate", 4662, 319),
		at("nb-transform", "nb-consumer", "INTERNAL", "databricks-notebook", "transform", 3661, 1321),
		at("nb-load", "nb-consumer", "INTERNAL", "databricks-notebook", "load", 4983, 1001),
		at("nb-consumer", "producer", "CONSUMER", "databricks-notebook", "notebook distributed_tracing", 2660, 3326),
	}
	runRecorded = []Span{
		at("run-queued", "run", "INTERNAL", "nbtrace", "queued", 113, 50),
		at("run-setup", "run", "INTERNAL", "nbtrace", "setup", 164, 201),
		at("run-execution", "run", "INTERNAL", "nbtrace", "execution", 365, 6462),
		at("run-cleanup", "run", "INTERNAL", "nbtrace", "cleanup", 6827, 51),
		at("run", "producer", "CONSUMER", "nbtrace", "databricks run", 113, 6765),
	}
)

// polled is a poll of the run, start milliseconds into the request.
func polled(start int) []Span {
	return []Span{at(fmt.Sprintf("get-%d", start), "invocation", "CLIENT", "nbtrace", "GET /api/2.2/jobs/runs/get", start, 1)}
}

// invocationEnded is the handler's invocation, which lasted dur
// milliseconds.
func invocationEnded(dur int) []Span {
	return []Span{at("invocation", "host-call-notebook", "SERVER", "nbtrace", "POST /api/notebook", 1, dur)}
}

// requestEnded is the host's request span, which lasted dur milliseconds.
func requestEnded(dur int) []Span {
	return []Span{at("host-request", "", "SERVER", "functions-host", "notebook", 0, dur)}
}

// fakeClock is the time a test says it is.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// printer is a sink on a fake clock, printing as PrintFinished does with
// a quiet time of settle.
type printer struct {
	*Sink
	clock  *fakeClock
	out    bytes.Buffer
	settle time.Duration
}

func newPrinter() *printer {
	p := &printer{Sink: New(), clock: &fakeClock{t: t0}, settle: 750 * time.Millisecond}
	p.Sink.now = p.clock.now
	return p
}

// wait lets d pass, printing what is due on the way as PrintFinished's
// ticks would, and returns what was printed.
func (p *printer) wait(d time.Duration) string {
	p.out.Reset()
	for end := p.clock.t.Add(d); p.clock.t.Before(end); {
		p.clock.advance(min(p.settle/4, end.Sub(p.clock.t)))
		p.printDue(&p.out, p.settle)
	}
	return p.out.String()
}

// headings is the heading lines of the trees printed.
func headings(out string) []string {
	var h []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "trace ") {
			h = append(h, line)
		}
	}
	return h
}

// TestPrintsATraceOnceComplete: a ?wait request's spans arrive in bursts,
// quiet for longer than the quiet time between its polls of the run; the
// trace is printed once, whole, when the host's request span (its root)
// has arrived and the quiet time has passed.
func TestPrintsATraceOnceComplete(t *testing.T) {
	p := newPrinter()
	bursts := []struct {
		after time.Duration // since the last burst
		spans []Span
	}{
		{200 * time.Millisecond, validated},
		{0, polled(115)},
		{1600 * time.Millisecond, polled(1730)},
		{2200 * time.Millisecond, polled(3895)},
		{2100 * time.Millisecond, notebookRan},
		{1600 * time.Millisecond, slices.Concat(polled(7585), runRecorded, invocationEnded(7587))},
		{100 * time.Millisecond, requestEnded(7588)},
	}
	spans := 0
	for i, b := range bursts {
		if out := p.wait(b.after); out != "" {
			t.Fatalf("printed before burst %d, while the request runs:\n%s", i, out)
		}
		p.Add(b.spans...)
		spans += len(b.spans)
	}
	if out := p.wait(p.settle - 10*time.Millisecond); out != "" {
		t.Fatalf("printed before the quiet time:\n%s", out)
	}
	out := p.wait(20 * time.Millisecond)
	want := []string{fmt.Sprintf("trace ffdd4acb6ed330b89bf943a8b9c58714 · %d spans · 3 services · 7588.0ms", spans)}
	if diff := cmp.Diff(want, headings(out)); diff != "" {
		t.Fatalf("trees printed (-want +got):\n%s", diff)
	}
	if !strings.Contains(out, "\n      0.0ms  7588.0ms [████████████████████████] SERVER   functions-host: notebook\n") {
		t.Errorf("the host's request span is not the first root:\n%s", out)
	}
	if out := p.wait(time.Hour); out != "" {
		t.Errorf("printed again with no new span:\n%s", out)
	}
}

// TestPrintsLateSpansAsOneUpdate: a request answered at once (202) is
// printed when it ends; its run's spans, the notebook's and those runs/{id}
// records, arrive seconds later, a few hundred milliseconds apart, and are
// printed once more as one update, marked; another late span, another.
func TestPrintsLateSpansAsOneUpdate(t *testing.T) {
	p := newPrinter()
	p.Add(validated...)
	p.Add(invocationEnded(119)...)
	p.Add(requestEnded(120)...)
	want := []string{"trace ffdd4acb6ed330b89bf943a8b9c58714 · 9 spans · 2 services · 120.0ms"}
	if diff := cmp.Diff(want, headings(p.wait(time.Second))); diff != "" {
		t.Fatalf("trees printed (-want +got):\n%s", diff)
	}
	p.wait(5 * time.Second)
	p.Add(notebookRan...)
	p.wait(300 * time.Millisecond)
	p.Add(runRecorded...)
	out := p.wait(5 * time.Second)
	want = []string{"trace ffdd4acb6ed330b89bf943a8b9c58714 · 19 spans · 3 services · 6878.0ms · updated: +10 spans: 5 from databricks-notebook, 5 from nbtrace, marked +"}
	if diff := cmp.Diff(want, headings(out)); diff != "" {
		t.Fatalf("trees printed (-want +got):\n%s", diff)
	}
	if n := strings.Count(out, "\n+ "); n != 10 {
		t.Errorf("%d lines marked +, want the 10 new spans:\n%s", n, out)
	}
	if !strings.Contains(out, "\n+  2660.0ms  3326.0ms [         ████████████   ]    └─ CONSUMER databricks-notebook: notebook distributed_tracing\n") {
		t.Errorf("the notebook's span is not marked under the PRODUCER span:\n%s", out)
	}
	p.Add(polled(9000)...)
	want = []string{"trace ffdd4acb6ed330b89bf943a8b9c58714 · 20 spans · 3 services · 9001.0ms · updated: +1 span from nbtrace, marked +"}
	if diff := cmp.Diff(want, headings(p.wait(time.Minute))); diff != "" {
		t.Errorf("trees printed (-want +got):\n%s", diff)
	}
}

// TestPrintsATraceWithoutItsRootAfterAWhile: a trace whose root span never
// arrives (its process died, say) is printed after 30 s without spans,
// saying so; its root arriving later is an update.
func TestPrintsATraceWithoutItsRootAfterAWhile(t *testing.T) {
	p := newPrinter()
	p.Add(validated...)
	if out := p.wait(rootPatience - time.Second); out != "" {
		t.Fatalf("printed before 30 s:\n%s", out)
	}
	want := []string{"trace ffdd4acb6ed330b89bf943a8b9c58714 · 7 spans · 2 services · 113.0ms · its root span has not arrived (no spans for 30s)"}
	if diff := cmp.Diff(want, headings(p.wait(2*time.Second))); diff != "" {
		t.Fatalf("trees printed (-want +got):\n%s", diff)
	}
	p.Add(invocationEnded(119)...)
	want = []string{"trace ffdd4acb6ed330b89bf943a8b9c58714 · 8 spans · 2 services · 119.0ms · updated: +1 span from nbtrace, marked +"}
	if diff := cmp.Diff(want, headings(p.wait(time.Second))); diff != "" {
		t.Errorf("trees printed (-want +got):\n%s", diff)
	}
}

// TestRooted: which span is a trace's root, and whether it has arrived.
func TestRooted(t *testing.T) {
	for _, tt := range []struct {
		name  string
		spans []Span
		want  bool
	}{
		{"the host's request span", slices.Concat(validated, invocationEnded(119), requestEnded(120)), true},
		{"the handler's invocation, its parent the host's unrecorded call", slices.Concat(validated, invocationEnded(119)), true},
		{"a CLIENT span waiting for its invocation", validated, false},
		{"the notebook's steps before its CONSUMER span", notebookRan[:4], false},
		{"a notebook run started without a trace", slices.Concat(notebookRan[:4], []Span{at("nb-consumer", "", "CONSUMER", "databricks-notebook", "notebook", 2660, 3326)}), true},
		{"a run recorded after its trace was dropped", runRecorded, true},
		{"an INTERNAL span without a parent", []Span{at("lone-span", "", "INTERNAL", "nbtrace", "work", 0, 1)}, true},
		{"nothing", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := rooted(tt.spans); got != tt.want {
				t.Errorf("rooted = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPrintFinishedWaitsForTheRoot runs PrintFinished on the real clock:
// spans arriving in bursts further apart than its quiet time are printed
// once, when the root has come, not once a burst.
func TestPrintFinishedWaitsForTheRoot(t *testing.T) {
	sink := New()
	var out syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sink.PrintFinished(ctx, &out, 40*time.Millisecond)
	for _, burst := range [][]Span{validated, polled(1730), slices.Concat(invocationEnded(2000), requestEnded(2001))} {
		sink.Add(burst...)
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	want := []string{"trace ffdd4acb6ed330b89bf943a8b9c58714 · 10 spans · 2 services · 2001.0ms"}
	if diff := cmp.Diff(want, headings(out.String())); diff != "" {
		t.Errorf("trees printed (-want +got):\n%s", diff)
	}
}
