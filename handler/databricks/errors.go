package databricks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go/apierr"

	"github.com/nbtrace/nbtrace/functions/api"
)

// Dependency is the name problems give Databricks.
const Dependency = "databricks"

// defaultRetryAfter is what callers are told to wait when Databricks was
// throttling but said nothing more precise.
const defaultRetryAfter = 10 * time.Second

// Error maps an SDK error to an *api.Error:
//
//   - throttled (429) or unavailable (503) after the SDK's retries: EUNAVAILABLE,
//     503 with Retry-After;
//   - a timeout: ETIMEOUT, 504;
//   - any other Databricks error (job missing, permission denied, bad
//     request, 5xx): EDEPENDENCY, 502, with the Databricks error code in the
//     problem's "databricksErrorCode";
//   - no answer at all (connection refused, sign-in failed): EDEPENDENCY.
//
// Nil stays nil; an *api.Error is returned as is.
func Error(err error) error {
	if err == nil {
		return nil
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae
	}
	var de *apierr.APIError
	if errors.As(err, &de) {
		ext := map[string]any{"databricksErrorCode": de.ErrorCode, "databricksStatus": de.StatusCode}
		msg := clip(de.Message)
		switch de.StatusCode {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			wait := defaultRetryAfter
			if de.ResponseWrapper != nil && de.ResponseWrapper.Response != nil {
				if d := RetryAfterOf(de.ResponseWrapper.Response.Header); d > 0 {
					wait = d
				}
			}
			return &api.Error{Code: api.EUNAVAILABLE, Dependency: Dependency, RetryAfter: wait, Extensions: ext, Err: err,
				Message: fmt.Sprintf("Databricks is throttling or unavailable (%d %s) and stayed so through the retries: %s", de.StatusCode, de.ErrorCode, msg)}
		}
		return &api.Error{Code: api.EDEPENDENCY, Dependency: Dependency, Extensions: ext, Err: err,
			Message: fmt.Sprintf("Databricks answered %d %s: %s", de.StatusCode, de.ErrorCode, msg)}
	}
	// The SDK reports its own per-call time limit as "request timed out
	// after …" rather than as context.DeadlineExceeded.
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "request timed out after") {
		return &api.Error{Code: api.ETIMEOUT, Dependency: Dependency, Message: "Databricks did not answer in time", Err: err}
	}
	return &api.Error{Code: api.EDEPENDENCY, Dependency: Dependency, Message: "Databricks could not be reached or signed in to", Err: err}
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
