package otlpsink

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// barWidth is the width of the waterfall column.
const barWidth = 24

// Render writes a trace as an indented tree, one span a line: its offset
// from the trace's start, its duration, a waterfall bar, its kind, service
// and name, and the HTTP status or error when there is one. A span whose
// parent is not among spans (the caller's own span, say) is a root.
func Render(w io.Writer, spans []Span) { render(w, spans, "", nil) }

// render is Render with a note at the end of the heading, and the lines of
// the spans in marked (by span id) marked with a "+".
func render(w io.Writer, spans []Span, note string, marked map[string]bool) {
	if len(spans) == 0 {
		return
	}
	byID := map[string]bool{}
	children := map[string][]Span{}
	var roots []Span
	start, end := spans[0].Start, spans[0].End
	for _, s := range spans {
		byID[s.SpanID] = true
		if s.Start.Before(start) {
			start = s.Start
		}
		if s.End.After(end) {
			end = s.End
		}
	}
	for _, s := range spans {
		if s.ParentSpanID != "" && byID[s.ParentSpanID] {
			children[s.ParentSpanID] = append(children[s.ParentSpanID], s)
		} else {
			roots = append(roots, s)
		}
	}
	total := end.Sub(start)
	services := map[string]bool{}
	for _, s := range spans {
		services[s.Service] = true
	}
	if note != "" {
		note = " · " + note
	}
	fmt.Fprintf(w, "trace %s · %d spans · %d services · %s%s\n", spans[0].TraceID, len(spans), len(services), ms(total), note)
	var walk func(s Span, prefix string, last, root bool)
	walk = func(s Span, prefix string, last, root bool) {
		branch, next := "", prefix
		if !root {
			branch = "├─ "
			next = prefix + "│  "
			if last {
				branch, next = "└─ ", prefix+"   "
			}
		}
		parent := ""
		if root && s.ParentSpanID != "" {
			parent = "  ↑ parent " + s.ParentSpanID[:min(8, len(s.ParentSpanID))] + "… (not recorded here)"
		}
		mark := " "
		if marked[s.SpanID] {
			mark = "+"
		}
		fmt.Fprintf(w, "%s %9s %9s %s %s%s%-8s %s: %s%s%s\n", mark, ms(s.Start.Sub(start)), ms(s.Duration()), bar(s, start, total),
			prefix, branch, s.Kind, s.Service, s.Name, outcome(s), parent)
		kids := children[s.SpanID]
		sort.SliceStable(kids, func(i, j int) bool { return kids[i].Start.Before(kids[j].Start) })
		for i, k := range kids {
			walk(k, next, i == len(kids)-1, false)
		}
	}
	sort.SliceStable(roots, func(i, j int) bool { return roots[i].Start.Before(roots[j].Start) })
	for _, r := range roots {
		walk(r, "", true, true)
	}
}

func outcome(s Span) string {
	var parts []string
	for _, k := range []string{"http.response.status_code", "databricks.run.result_state"} {
		if v, ok := s.Attributes[k]; ok {
			parts = append(parts, fmt.Sprint(v))
		}
	}
	if s.StatusCode == "ERROR" {
		parts = append(parts, "ERROR")
		if s.StatusMessage != "" {
			parts[len(parts)-1] += " " + s.StatusMessage
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "  [" + strings.Join(parts, " ") + "]"
}

func bar(s Span, start time.Time, total time.Duration) string {
	if total <= 0 {
		return "[" + strings.Repeat("█", barWidth) + "]"
	}
	from := int(math.Round(float64(s.Start.Sub(start)) / float64(total) * barWidth))
	to := int(math.Round(float64(s.End.Sub(start)) / float64(total) * barWidth))
	from = min(max(from, 0), barWidth-1)
	to = min(max(to, from+1), barWidth)
	return "[" + strings.Repeat(" ", from) + strings.Repeat("█", to-from) + strings.Repeat(" ", barWidth-to) + "]"
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
}
