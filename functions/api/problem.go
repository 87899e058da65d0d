package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// ProblemContentType is the media type of problem bodies (RFC 9457).
const ProblemContentType = "application/problem+json"

// ProblemTypeBase prefixes each problem type; the code follows it.
const ProblemTypeBase = "https://github.com/nbtrace/nbtrace/blob/main/docs/problems.md#"

// Problem is an RFC 9457 problem body. Every problem carries the trace id,
// which is the Application Insights operation_Id of the request.
type Problem struct {
	Type       string            `json:"type"`
	Title      string            `json:"title"`
	Status     int               `json:"status"`
	Detail     string            `json:"detail,omitempty"`
	Code       Code              `json:"code"`
	TraceID    string            `json:"traceId"`
	Errors     map[string]string `json:"errors,omitempty"`
	Dependency string            `json:"dependency,omitempty"`
	Extensions map[string]any    `json:"-"`
}

// MarshalJSON writes the extension members beside the standard ones.
func (p Problem) MarshalJSON() ([]byte, error) {
	type plain Problem
	b, err := json.Marshal(plain(p))
	if err != nil || len(p.Extensions) == 0 {
		return b, err
	}
	ext, err := json.Marshal(p.Extensions)
	if err != nil {
		return nil, err
	}
	return append(append(b[:len(b)-1], ','), ext[1:]...), nil
}

// TraceID returns the trace id of the span in ctx as 32 lower-case hex
// digits, or "" when ctx has no valid span.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// ProblemFor builds the problem body for err.
func ProblemFor(ctx context.Context, err error) Problem {
	code := ErrorCode(err)
	status := Status(code)
	p := Problem{
		Type:    ProblemTypeBase + string(code),
		Title:   http.StatusText(status),
		Status:  status,
		Code:    code,
		TraceID: TraceID(ctx),
	}
	var e *Error
	if errors.As(err, &e) && code != EINTERNAL {
		p.Detail, p.Errors, p.Dependency, p.Extensions = e.Message, e.Fields, e.Dependency, e.Extensions
	} else {
		p.Detail = "The request failed unexpectedly. Quote the trace id when reporting it."
	}
	return p
}

// WriteError writes err as a problem body with its status code. Internal
// errors are logged with their cause, and their cause is not shown.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	p := ProblemFor(ctx, err)
	switch {
	case p.Code == EINTERNAL:
		slog.ErrorContext(ctx, "request failed", "error", err)
	case p.Dependency != "":
		// Why a dependency failed is for operators, not callers: logged
		// with the trace id, URLs cut to scheme, host and path.
		slog.WarnContext(ctx, "dependency failed", "dependency", p.Dependency, "code", string(p.Code), "error", redactedError(err))
	}
	var e *Error
	if errors.As(err, &e) {
		if e.RetryAfter > 0 {
			secs := int((e.RetryAfter + 999_999_999) / 1e9)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
		}
		if len(e.Allow) > 0 {
			w.Header().Set("Allow", strings.Join(e.Allow, ", "))
		}
	}
	w.Header().Set("Content-Type", ProblemContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// redactedError is err's message with the URL of any *url.Error in its
// chain cut by RedactURL, since a service URL may carry a key in its query.
func redactedError(err error) string {
	msg := err.Error()
	for e := err; e != nil; e = errors.Unwrap(e) {
		if ue, ok := e.(*url.Error); ok && ue.URL != "" {
			msg = strings.ReplaceAll(msg, ue.URL, RedactURL(ue.URL))
		}
	}
	return msg
}
