package jobrun

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Claimer makes one instance of the app the one that records a finished
// run, however many instances see it end: a Flex Consumption app runs on
// as many instances as its load needs, and the Recorder's memory is its
// own instance's.
type Claimer interface {
	// Claim claims the run of the job for the caller, atomically across
	// instances. It returns true when the caller is the first to claim it,
	// false when another did. Its error means the claim could not be made
	// (the store is unreachable, throttled, refuses the app or is too slow
	// for ctx); it is a *ClaimError when the store says why.
	Claim(ctx context.Context, jobID, runID int64) (bool, error)
}

// ClaimError is a claim that could not be made.
type ClaimError struct {
	// Type says why in a few words fit for the error.type attribute of
	// nbtrace.databricks.runs.claim_failed: the store's error code (such
	// as ServerBusy or AuthorizationPermissionMismatch), or unreachable,
	// credential, timeout.
	Type string
	Err  error
}

func (e *ClaimError) Error() string { return "claim (" + e.Type + "): " + e.Err.Error() }

func (e *ClaimError) Unwrap() error { return e.Err }

// DefaultClaimTimeout bounds a claim by default: a slow store holds a
// request this long at most.
const DefaultClaimTimeout = 2 * time.Second

// claimWarnEvery is how often the failure of a claim is logged at warn, per
// error type; the others are counted, and logged at debug.
const claimWarnEvery = time.Minute

// Option configures a Recorder.
type Option func(*Recorder)

// WithClaims makes the Recorder claim each finished run with c before it
// records it, each claim bounded by timeout (DefaultClaimTimeout when 0).
// A run another instance claimed is not recorded. A claim that cannot be
// made does not keep the run out of its trace: it is recorded anyway (a
// duplicate is better than a loss), counted as
// nbtrace.databricks.runs.claim_failed and logged. Without this option
// the Recorder's memory is the only guard: one instance only.
func WithClaims(c Claimer, timeout time.Duration) Option {
	return func(rec *Recorder) {
		rec.claims, rec.claimTimeout = c, timeout
		if timeout <= 0 {
			rec.claimTimeout = DefaultClaimTimeout
		}
	}
}

// WithLogger sets where the failures of claims are logged;
// slog.Default() by default, or when l is nil.
func WithLogger(l *slog.Logger) Option {
	return func(rec *Recorder) {
		if l != nil {
			rec.log = l
		}
	}
}

// claimWarnings limits the warnings about failed claims to one per error
// type per claimWarnEvery.
type claimWarnings struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (w *claimWarnings) due(errType string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.last[errType]; ok && now.Sub(t) < claimWarnEvery {
		return false
	}
	if w.last == nil {
		w.last = map[string]time.Time{}
	}
	w.last[errType] = now
	return true
}

// claim reports whether this instance is to record the run: it holds the
// claim, or the claim could not be made.
func (rec *Recorder) claim(jobID, runID int64) bool {
	if rec.claims == nil {
		return true
	}
	// The run is claimed apart from the request that saw it end: a caller
	// that goes away must not leave the claim half made.
	ctx, cancel := context.WithTimeout(context.Background(), rec.claimTimeout)
	defer cancel()
	won, err := rec.claims.Claim(ctx, jobID, runID)
	if err == nil {
		return won
	}
	errType := "_OTHER" // OpenTelemetry's value for an error of no known type
	var ce *ClaimError
	switch {
	case errors.As(err, &ce) && ce.Type != "":
		errType = ce.Type
	case errors.Is(err, context.DeadlineExceeded):
		errType = "timeout"
	}
	rec.claimFailed.Add(context.Background(), 1, metric.WithAttributes(attribute.String("error.type", errType)))
	level := slog.LevelDebug
	if rec.warnings.due(errType, time.Now()) {
		level = slog.LevelWarn
	}
	rec.log.Log(context.Background(), level, "claiming a finished run failed; recording it anyway (it may appear twice)",
		"databricks.job.id", jobID, "databricks.run.id", runID, "error.type", errType, "error", err.Error())
	return true
}
