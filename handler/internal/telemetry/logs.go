package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/trace"
)

// MaxCapturedLines bounds how many log lines one invocation returns to the
// host; further lines still reach the process log.
const MaxCapturedLines = 200

// LogHandler wraps a slog.Handler: it adds trace_id and span_id to each
// record whose context has a span, and keeps a record below Warn, as one
// line, in the invocation's capture when the context has one (see
// CaptureLogs): then HostChannel does not write it again.
type LogHandler struct {
	next   slog.Handler
	level  slog.Leveler
	attrs  string // " key=value" for WithAttrs attributes, rendered with their groups
	groups []string
}

// NewLogHandler returns a LogHandler writing records at level or above to
// next.
func NewLogHandler(next slog.Handler, level slog.Leveler) *LogHandler {
	return &LogHandler{next: next, level: level}
}

// Enabled reports whether level is at the handler's level or above and next
// handles it.
func (h *LogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= h.level.Level() && h.next.Enabled(ctx, level)
}

// Handle adds the trace ids, captures the line, and passes the record on.
func (h *LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if c, ok := ctx.Value(captureKey{}).(*Capture); ok && r.Level < slog.LevelWarn && c.add(h.line(r)) {
		ctx = context.WithValue(ctx, returnedKey{}, true)
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a handler that adds attrs to each record.
func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	var b strings.Builder
	for _, a := range attrs {
		h.writeAttr(&b, a)
	}
	c.attrs = h.attrs + b.String()
	return &c
}

// WithGroup returns a handler that puts later attributes in group name.
func (h *LogHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.groups = append(append([]string{}, h.groups...), name)
	return &c
}

// line renders a record as "LEVEL message key=value …" for the host's log.
func (h *LogHandler) line(r slog.Record) string {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteByte(' ')
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		h.writeAttr(&b, a)
		return true
	})
	return b.String()
}

func (h *LogHandler) writeAttr(b *strings.Builder, a slog.Attr) {
	b.WriteByte(' ')
	for _, g := range h.groups {
		b.WriteString(g)
		b.WriteByte('.')
	}
	fmt.Fprintf(b, "%s=%v", a.Key, a.Value.Resolve())
}

type captureKey struct{}

type returnedKey struct{}

// returnedInLogs reports whether the record being handled was kept for
// the invocation's Logs.
func returnedInLogs(ctx context.Context) bool { v, _ := ctx.Value(returnedKey{}).(bool); return v }

// Capture holds the log lines of one invocation.
type Capture struct {
	mu      sync.Mutex
	lines   []string
	dropped int
}

// CaptureLogs returns a context whose log records below Warn are kept in
// the returned Capture, for the Logs of a payload invocation's answer (at
// most MaxCapturedLines; the rest go to stdout).
func CaptureLogs(ctx context.Context) (context.Context, *Capture) {
	c := &Capture{}
	return context.WithValue(ctx, captureKey{}, c), c
}

func (c *Capture) add(line string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lines) >= MaxCapturedLines {
		c.dropped++
		return false
	}
	c.lines = append(c.lines, line)
	return true
}

// Lines returns the captured lines, with a last line counting those left
// out over MaxCapturedLines.
func (c *Capture) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]string{}, c.lines...)
	if c.dropped > 0 {
		out = append(out, fmt.Sprintf("INFO %d more log lines of this invocation went to stdout", c.dropped))
	}
	return out
}
