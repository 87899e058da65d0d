package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Code classifies an error; each code maps to one HTTP status in one table.
type Code string

// Error codes.
const (
	EINVALID       Code = "invalid-request"        // 400: the request cannot be read (malformed JSON, bad header)
	ENOTFOUND      Code = "not-found"              // 404
	EMETHOD        Code = "method-not-allowed"     // 405
	ECONFLICT      Code = "conflict"               // 409
	ETOOLARGE      Code = "payload-too-large"      // 413
	EMEDIATYPE     Code = "unsupported-media-type" // 415
	EUNPROCESSABLE Code = "validation-failed"      // 422: well-formed but not acceptable
	EINTERNAL      Code = "internal"               // 500
	EDEPENDENCY    Code = "dependency-failed"      // 502: a downstream service failed
	EUNAVAILABLE   Code = "unavailable"            // 503: throttled or temporarily unavailable
	ETIMEOUT       Code = "dependency-timeout"     // 504: a downstream service was too slow
)

var statusOf = map[Code]int{
	EINVALID:       http.StatusBadRequest,
	ENOTFOUND:      http.StatusNotFound,
	EMETHOD:        http.StatusMethodNotAllowed,
	ECONFLICT:      http.StatusConflict,
	ETOOLARGE:      http.StatusRequestEntityTooLarge,
	EMEDIATYPE:     http.StatusUnsupportedMediaType,
	EUNPROCESSABLE: http.StatusUnprocessableEntity,
	EINTERNAL:      http.StatusInternalServerError,
	EDEPENDENCY:    http.StatusBadGateway,
	EUNAVAILABLE:   http.StatusServiceUnavailable,
	ETIMEOUT:       http.StatusGatewayTimeout,
}

// Status returns the HTTP status code for code; unknown codes are 500.
func Status(code Code) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Codes lists every error code, for documentation and tests.
func Codes() []Code {
	return []Code{EINVALID, ENOTFOUND, EMETHOD, ECONFLICT, ETOOLARGE, EMEDIATYPE,
		EUNPROCESSABLE, EINTERNAL, EDEPENDENCY, EUNAVAILABLE, ETIMEOUT}
}

// Error is the app's error type. Its Message is shown to callers; Err, the
// cause, is only logged.
type Error struct {
	Code    Code
	Message string
	// Fields lists problems per input field, for EINVALID and EUNPROCESSABLE.
	Fields map[string]string
	// Dependency names the downstream service, for EDEPENDENCY and ETIMEOUT.
	Dependency string
	// RetryAfter, when positive, is sent as a Retry-After header.
	RetryAfter time.Duration
	// Allow lists the allowed methods, for EMETHOD.
	Allow []string
	// Extensions are extra members of the problem body.
	Extensions map[string]any
	// Err is the underlying cause; never shown to callers.
	Err error
}

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}
