package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// Validator is implemented by request types; Valid returns every problem,
// keyed by field name, or an empty map.
type Validator interface {
	Valid(ctx context.Context) map[string]string
}

// Decode reads a JSON request body into a T and validates it.
//
// It returns EMEDIATYPE when the Content-Type is set and is not JSON,
// ETOOLARGE when the body is over the limit the handler set with
// http.MaxBytesReader, EINVALID when the body is not one JSON value of the
// right shape, and EUNPROCESSABLE, listing every problem, for unknown fields
// and for what T.Valid reports.
func Decode[T Validator](r *http.Request) (T, error) {
	var v T
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/json") {
			return v, Errorf(EMEDIATYPE, "the body must be application/json, not %q", ct)
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return v, decodeError(err)
		}
		return v, Errorf(EINVALID, "the body must hold exactly one JSON value")
	}
	if problems := v.Valid(r.Context()); len(problems) > 0 {
		return v, &Error{Code: EUNPROCESSABLE, Message: "the request is not valid", Fields: problems}
	}
	return v, nil
}

func decodeError(err error) error {
	var (
		mbe    *http.MaxBytesError
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return &Error{Code: ETOOLARGE, Message: fmt.Sprintf("the body is larger than %d bytes", mbe.Limit), Err: err}
	case errors.Is(err, io.EOF):
		return Errorf(EINVALID, "the body is empty; a JSON object is required")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Code: EINVALID, Message: "the body is not valid JSON", Err: err}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(body)"
		}
		return &Error{Code: EUNPROCESSABLE, Message: "the request is not valid",
			Fields: map[string]string{field: fmt.Sprintf("must be %s, not %s", jsonKind(typ.Type.Kind().String()), typ.Value)}}
	default:
		// encoding/json reports unknown fields as `json: unknown field "x"`.
		if rest, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			name, uerr := strconv.Unquote(rest)
			if uerr != nil {
				name = rest
			}
			return &Error{Code: EUNPROCESSABLE, Message: "the request is not valid",
				Fields: map[string]string{name: "is not a known field"}}
		}
		return &Error{Code: EINVALID, Message: "the body could not be read", Err: err}
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	default:
		return "an object"
	}
}

// Encode writes v as a JSON body with status.
func Encode[T any](w http.ResponseWriter, status int, v T) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// HandlerFunc is an http.Handler that returns its error; a non-nil error is
// written as a problem body.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

func (f HandlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f(w, r); err != nil {
		WriteError(w, r, err)
	}
}
