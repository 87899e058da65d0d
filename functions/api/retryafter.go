package api

import (
	"net/http"
	"strconv"
	"time"
)

// ParseRetryAfter reads a Retry-After header value: delay-seconds or an
// HTTP date (relative to now). ok is false when v is empty or neither.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now), true
	}
	return 0, false
}
