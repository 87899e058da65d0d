package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
)

// Validator is implemented by request types; Valid returns every problem,
// keyed by field name, or an empty map.
type Validator interface {
	Valid(ctx context.Context) map[string]string
}

// Decode reads a JSON object body into T, a struct, and validates it,
// listing every problem at once: unknown fields, values of the wrong JSON
// type, and what T.Valid reports.
//
// It returns EMEDIATYPE when the Content-Type is set and is not JSON,
// ETOOLARGE when the body is over the limit the handler set with
// http.MaxBytesReader, EINVALID when the body is empty or not JSON, and
// EUNPROCESSABLE, with Fields, when it is JSON but not an acceptable T.
func Decode[T Validator](r *http.Request) (T, error) {
	var v T
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/json" && !strings.HasSuffix(mt, "+json")) {
			return v, Errorf(EMEDIATYPE, "the body must be application/json, not %q", ct)
		}
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return v, &Error{Code: ETOOLARGE, Message: fmt.Sprintf("the body is larger than %d bytes", mbe.Limit), Err: err}
		}
		return v, &Error{Code: EINVALID, Message: "the body could not be read", Err: err}
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return v, Errorf(EINVALID, "the body is empty; a JSON object is required")
	}
	if !json.Valid(data) {
		return v, Errorf(EINVALID, "the body is not valid JSON")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil || members == nil {
		return v, &Error{Code: EUNPROCESSABLE, Message: "the request is not valid",
			Fields: map[string]string{"(body)": "must be a JSON object"}}
	}
	problems := decodeMembers(reflect.ValueOf(&v).Elem(), members)
	for field, msg := range v.Valid(r.Context()) {
		if _, seen := problems[field]; !seen {
			problems[field] = msg
		}
	}
	if len(problems) > 0 {
		return v, &Error{Code: EUNPROCESSABLE, Message: "the request is not valid", Fields: problems}
	}
	return v, nil
}

// decodeMembers sets each member of a JSON object on the struct field with
// the same json name, and reports unknown members and wrong types.
func decodeMembers(sv reflect.Value, members map[string]json.RawMessage) map[string]string {
	problems := map[string]string{}
	fields := map[string]int{}
	st := sv.Type()
	for i := range st.NumField() {
		name, _, _ := strings.Cut(st.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" && st.Field(i).IsExported() {
			fields[name] = i
		}
	}
	for name, raw := range members {
		i, ok := fields[name]
		if !ok {
			problems[name] = "is not a known field"
			continue
		}
		f := sv.Field(i)
		// null is no value of any field's type (an optional field is left
		// out instead).
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) || json.Unmarshal(raw, f.Addr().Interface()) != nil {
			problems[name] = "must be " + jsonKind(f.Type())
			f.SetZero()
		}
	}
	return problems
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
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
