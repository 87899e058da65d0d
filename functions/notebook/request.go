package notebook

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nbtrace/nbtrace/functions/jobrun"
)

// MaxParameterBytes is Databricks' limit on the JSON of job_parameters.
const MaxParameterBytes = 10000

// MaxParameterValue bounds one caller-set parameter value.
const MaxParameterValue = 1000

// reserved are job parameters only nbtrace sets: the trace context, the
// validated request's fields, and the run's own ids.
var reserved = []string{"traceparent", "tracestate", "baggage", "dataset", "date", "row_count", "job_id", "run_id"}

// Request is the body of POST /api/notebook: what validate checks, plus
// job parameters from the allowlist (NOTEBOOK_PARAMETER_ALLOWLIST).
//
//	{"dataset":"sales","date":"2026-11-25","rowCount":1200,"parameters":{"extract_seconds":"2"}}
type Request struct {
	Dataset    string            `json:"dataset"`
	Date       string            `json:"date"`
	RowCount   *int64            `json:"rowCount,omitempty"`
	Parameters map[string]string `json:"parameters,omitempty"`
}

// Valid checks only the parameters' form here; validate checks the rest,
// so the schema lives in one place.
func (r Request) Valid(context.Context) map[string]string {
	problems := map[string]string{}
	for k, v := range r.Parameters {
		if len(v) > MaxParameterValue {
			problems["parameters."+k] = fmt.Sprintf("must be at most %d characters", MaxParameterValue)
		}
	}
	return problems
}

// validateBody is what is sent to validate.
func (r Request) validateBody() map[string]any {
	b := map[string]any{"dataset": r.Dataset, "date": r.Date}
	if r.RowCount != nil {
		b["rowCount"] = *r.RowCount
	}
	return b
}

// checkParameters lists the parameters a caller may not set.
func checkParameters(params map[string]string, allow map[string]bool) map[string]string {
	problems := map[string]string{}
	for k := range params {
		switch {
		case slices.Contains(reserved, strings.ToLower(k)):
			problems["parameters."+k] = "is set by nbtrace and cannot be given"
		case !allow[k]:
			problems["parameters."+k] = "is not an allowed job parameter (allowed: " + strings.Join(slices.Sorted(maps.Keys(allow)), ", ") + ")"
		}
	}
	return problems
}

// Accepted is the answer: 202 while the run goes on, 200 with its final
// state when ?wait saw it end.
type Accepted struct {
	RunID      int64  `json:"runId"`
	RunPageURL string `json:"runPageUrl,omitempty"`
	TraceID    string `json:"traceId"`
	StatusURL  string `json:"statusUrl"`
	// IdempotencyToken is the token sent to Databricks: the same request
	// (same Idempotency-Key) always gets the same run.
	IdempotencyToken string         `json:"idempotencyToken"`
	Run              *jobrun.Status `json:"run,omitempty"`
}
