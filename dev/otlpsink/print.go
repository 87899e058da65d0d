package otlpsink

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// rootPatience is how long a trace whose root span has not arrived must be
// quiet before it is printed all the same (the root's process may have
// died, or send its spans elsewhere). It is well over the longest gap
// between a ?wait request's polls of its run: 10 s and a jitter, the
// Databricks SDK's.
const rootPatience = 30 * time.Second

// PrintFinished prints each trace once, when it is complete: its root span
// has arrived (see rooted) and then no span for settle. If more spans
// arrive later (a notebook's, or a run's phases recorded by runs/{id}), it
// prints the trace again once they settle, whole, saying how many spans
// came from which services and marking their lines with a "+". A trace
// whose root never arrives is printed after 30 s without spans. It returns
// when ctx ends.
func (s *Sink) PrintFinished(ctx context.Context, w io.Writer, settle time.Duration) {
	tick := time.NewTicker(settle / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.printDue(w, settle)
	}
}

// printDue prints the traces that are due, as PrintFinished says.
func (s *Sink) printDue(w io.Writer, settle time.Duration) {
	type due struct {
		spans []Span
		note  string
		added map[string]bool // by span id, the spans since the last print
	}
	var ready []due
	s.mu.Lock()
	now := s.now()
	for _, id := range s.order {
		t := s.traces[id]
		quiet := now.Sub(t.updated)
		if len(t.spans) == t.printed || quiet < settle {
			continue
		}
		d := due{spans: make([]Span, len(t.spans))}
		for i, sp := range t.spans {
			d.spans[i] = *sp
		}
		switch {
		case t.printed > 0:
			added := d.spans[t.printed:]
			d.note = "updated: " + arrivals(added) + ", marked +"
			d.added = map[string]bool{}
			for _, sp := range added {
				d.added[sp.SpanID] = true
			}
		case rooted(d.spans):
		case quiet >= rootPatience:
			d.note = fmt.Sprintf("its root span has not arrived (no spans for %s)", rootPatience)
		default:
			continue
		}
		t.printed = len(t.spans)
		ready = append(ready, d)
	}
	s.mu.Unlock()
	for _, d := range ready {
		sort.SliceStable(d.spans, func(i, j int) bool { return d.spans[i].Start.Before(d.spans[j].Start) })
		render(w, d.spans, d.note, d.added)
		fmt.Fprintln(w)
	}
}

// rooted reports whether a trace's root span has arrived. Its root is the
// earliest of its spans whose parent is not among them. A process exports
// a span when it ends, so before its parent: until the root arrives, that
// earliest span is a CLIENT, PRODUCER or INTERNAL span whose parent, in
// the same process, has not ended yet. The root is a span without a
// parent, or a SERVER or CONSUMER span, whose parent is in another process
// and may never be recorded here: the Functions host's call to the
// handler, which today's hosts do not record, or a caller's span. Spans of
// different processes arrive in any order within their export delays (a
// tenth of a second in the stack), which the quiet time covers.
func rooted(spans []Span) bool {
	ids := make(map[string]bool, len(spans))
	for _, sp := range spans {
		ids[sp.SpanID] = true
	}
	var root *Span
	for i, sp := range spans {
		if !ids[sp.ParentSpanID] && (root == nil || sp.Start.Before(root.Start)) {
			root = &spans[i]
		}
	}
	return root != nil && (root.ParentSpanID == "" || root.Kind == "SERVER" || root.Kind == "CONSUMER")
}

// arrivals says how many spans came from which services: "+9 spans from
// databricks-notebook", or "+11 spans: 6 from databricks-notebook, 5 from
// nbtrace".
func arrivals(spans []Span) string {
	count := map[string]int{}
	for _, sp := range spans {
		count[sp.Service]++
	}
	noun := "spans"
	if len(spans) == 1 {
		noun = "span"
	}
	services := slices.Sorted(maps.Keys(count))
	if len(services) == 1 {
		return fmt.Sprintf("+%d %s from %s", len(spans), noun, services[0])
	}
	from := make([]string, len(services))
	for i, svc := range services {
		from[i] = fmt.Sprintf("%d from %s", count[svc], svc)
	}
	return fmt.Sprintf("+%d %s: %s", len(spans), noun, strings.Join(from, ", "))
}
