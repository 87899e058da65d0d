package databricks

import (
	"github.com/nbtrace/nbtrace/functions/api"
	"net/http"
	"time"
)

// retryAfter holds back a 429 or 503 answer that carries Retry-After for
// that long (at most max, and never past the request's deadline) before
// handing it to the SDK. The SDK then retries with its own backoff, so the
// next attempt is never earlier than the server asked. Retries themselves
// stay the SDK's.
type retryAfter struct {
	next http.RoundTripper
	max  time.Duration
}

func (t retryAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(r)
	if err != nil || (res.StatusCode != http.StatusTooManyRequests && res.StatusCode != http.StatusServiceUnavailable) {
		return res, err
	}
	wait, ok := api.ParseRetryAfter(res.Header.Get("Retry-After"), time.Now())
	if !ok || wait <= 0 {
		return res, nil
	}
	wait = min(wait, t.max)
	if dl, ok := r.Context().Deadline(); ok {
		wait = min(wait, time.Until(dl))
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-r.Context().Done():
	}
	return res, nil
}

// RetryAfterOf returns the Retry-After of the last answer behind err, if any.
func RetryAfterOf(h http.Header) time.Duration {
	d, _ := api.ParseRetryAfter(h.Get("Retry-After"), time.Now())
	return d
}
