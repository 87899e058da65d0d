package validate

import (
	"context"
	"fmt"
	"time"
)

// MaxRowCount is the largest rowCount the schema accepts.
const MaxRowCount = 1_000_000_000

// validDataset says whether s matches ^[a-z0-9][a-z0-9_-]{0,63}$ (the
// schema's pattern); checked without a regexp, whose bounded repetition
// would be compiled at every cold start.
func validDataset(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '_' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z') && !('0' <= c && c <= '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// Request is the body of POST /api/validate.
//
//	{"dataset": "sales", "date": "2026-11-25", "rowCount": 1200}
type Request struct {
	// Dataset is required: 1 to 64 characters, lower-case letters, digits,
	// "_" and "-", starting with a letter or digit.
	Dataset string `json:"dataset"`
	// Date is required: the partition to process, YYYY-MM-DD.
	Date string `json:"date"`
	// RowCount is optional: the expected number of rows, 0 to 1,000,000,000.
	RowCount *int64 `json:"rowCount,omitempty"`
}

// Valid lists every problem with the request.
func (r Request) Valid(context.Context) map[string]string {
	problems := map[string]string{}
	switch {
	case r.Dataset == "":
		problems["dataset"] = "is required"
	case !validDataset(r.Dataset):
		problems["dataset"] = "must be 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit"
	}
	if r.Date == "" {
		problems["date"] = "is required"
	} else if _, err := time.Parse(time.DateOnly, r.Date); err != nil {
		problems["date"] = "must be a date in the form YYYY-MM-DD"
	}
	if r.RowCount != nil && (*r.RowCount < 0 || *r.RowCount > MaxRowCount) {
		problems["rowCount"] = fmt.Sprintf("must be between 0 and %d", MaxRowCount)
	}
	return problems
}

// Check is the outcome of one service's check.
type Check struct {
	// Service is "a" or "b".
	Service string `json:"service"`
	// Passed is the service's verdict.
	Passed bool `json:"passed"`
	// Reason explains a failed check.
	Reason string `json:"reason,omitempty"`
	// DurationMs is how long the call took, in milliseconds.
	DurationMs float64 `json:"durationMs"`
}

// Response is the answer of validate: 200 when every check passed. A failed
// check is a 422 problem with the same checks as its "checks" member.
type Response struct {
	Valid   bool    `json:"valid"`
	Checks  []Check `json:"checks"`
	TraceID string  `json:"traceId"`
}

// ServiceVerdict is what service A and B answer with status 200.
type ServiceVerdict struct {
	Passed bool   `json:"passed"`
	Reason string `json:"reason,omitempty"`
}
