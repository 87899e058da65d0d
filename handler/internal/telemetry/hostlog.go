package telemetry

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
)

// HostChannel is the slog.Handler that gives each record to the Functions
// host once, on the channel where the host logs it at the record's own
// level. The host reads a custom handler's output line by line
// (azure-functions-host WorkerProcess.cs, OnOutputDataReceived and
// ParseErrorMessageAndLog, with UseStdErrorStreamForErrorsOnly): a stdout
// line at Information, a stderr line at Warning when it contains "warn" in
// any case, else at Error. So:
//
//   - below Warn, a record goes to stdout, unless an invocation returns it
//     in its answer's Logs (payload mode; the host logs those at
//     Information in the invocation's scope, correlated with it);
//   - Warn goes to stderr: its line holds "WARN", a Warning for the host;
//   - Error and above go to stderr with every "warn" in the line written
//     as a JSON escape (w\u0061rn, which JSON readers read as "warn"), so
//     that the host logs an Error, not a Warning.
//
// Each line is the record as JSON, with its trace and span ids.
type HostChannel struct {
	info, warn, err slog.Handler
}

// NewHostChannel returns a HostChannel writing to stdout and stderr.
func NewHostChannel(stdout, stderr io.Writer, level slog.Leveler) *HostChannel {
	opts := &slog.HandlerOptions{Level: level}
	errOut := &lockedWriter{w: stderr}
	return &HostChannel{
		info: slog.NewJSONHandler(&lockedWriter{w: stdout}, opts),
		warn: slog.NewJSONHandler(errOut, opts),
		err:  slog.NewJSONHandler(&noWarn{errOut}, opts),
	}
}

func (h *HostChannel) pick(level slog.Level) slog.Handler {
	switch {
	case level >= slog.LevelError:
		return h.err
	case level >= slog.LevelWarn:
		return h.warn
	}
	return h.info
}

// Enabled reports whether the record's level is handled.
func (h *HostChannel) Enabled(ctx context.Context, level slog.Level) bool {
	return h.pick(level).Enabled(ctx, level)
}

// Handle writes r, unless its invocation returns it to the host in Logs.
func (h *HostChannel) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn && returnedInLogs(ctx) {
		return nil
	}
	return h.pick(r.Level).Handle(ctx, r)
}

// WithAttrs returns a handler that adds attrs to each record.
func (h *HostChannel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &HostChannel{info: h.info.WithAttrs(attrs), warn: h.warn.WithAttrs(attrs), err: h.err.WithAttrs(attrs)}
}

// WithGroup returns a handler that puts later attributes in group name.
func (h *HostChannel) WithGroup(name string) slog.Handler {
	return &HostChannel{info: h.info.WithGroup(name), warn: h.warn.WithGroup(name), err: h.err.WithGroup(name)}
}

// lockedWriter writes each line whole, whichever handler writes it.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// noWarn writes a JSON line with the letter a of every "warn" (any case)
// as a \u escape: the same JSON, without the word the host looks for.
type noWarn struct{ w io.Writer }

func (n *noWarn) Write(p []byte) (int, error) {
	lower := bytes.ToLower(p)
	if !bytes.Contains(lower, []byte("warn")) {
		return n.w.Write(p)
	}
	var b bytes.Buffer
	for i := 0; i < len(p); i++ {
		if i+4 <= len(p) && bytes.Equal(lower[i:i+4], []byte("warn")) {
			b.WriteByte(p[i])
			if p[i+1] == 'a' {
				b.WriteString(`\u0061`)
			} else {
				b.WriteString(`\u0041`)
			}
			i++
			continue
		}
		b.WriteByte(p[i])
	}
	if _, err := n.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}
