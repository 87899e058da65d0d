package hostproto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/nbtrace/nbtrace/functions/api"
)

// InvokeRequest is the body of a payload-mode invocation. Its keys are
// PascalCase, as the host's JsonMediaTypeFormatter writes them.
type InvokeRequest struct {
	// Data holds one value per trigger and input binding, by binding name.
	Data map[string]json.RawMessage `json:"Data"`
	// Metadata holds the trigger's binding data. Scalar values are JSON
	// encoded twice by the host: the string black arrives as "\"black\"".
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// HTTPRequestData is an HTTP trigger's value in Data.
type HTTPRequestData struct {
	// URL is scheme://host/path?query of the caller's request.
	URL    string `json:"Url"`
	Method string `json:"Method"`
	// Query is an object of strings, several values comma-joined.
	Query map[string]string `json:"Query"`
	// Headers maps each header to its values.
	Headers Headers `json:"Headers"`
	// Params holds the route values.
	Params map[string]string `json:"Params"`
	// Body is absent when the request had no body (Content-Length 0). It is
	// a raw string; octet-stream and multipart bodies are base64.
	Body       *Body           `json:"Body"`
	Identities json.RawMessage `json:"Identities"`
}

// Headers are the trigger's headers, string to []string. Single strings are
// accepted too, as older hosts sent them.
type Headers map[string][]string

// UnmarshalJSON accepts string or []string values.
func (h *Headers) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	out := make(Headers, len(raw))
	for k, v := range raw {
		var many []string
		if err := json.Unmarshal(v, &many); err == nil {
			out[k] = many
			continue
		}
		var one string
		if err := json.Unmarshal(v, &one); err != nil {
			return fmt.Errorf("header %q is neither a string nor an array of strings", k)
		}
		out[k] = []string{one}
	}
	*h = out
	return nil
}

// HTTP returns the headers as an http.Header with canonical keys (the host
// keeps the caller's spelling, such as "traceparent").
func (h Headers) HTTP() http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		for _, v := range vs {
			out.Add(k, v)
		}
	}
	return out
}

// Body is the raw request body. The host sends a JSON string; a JSON object
// or array (as some older hosts sent for JSON bodies) is taken as its text.
type Body []byte

// UnmarshalJSON accepts a string or any other JSON value.
func (b *Body) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*b = Body(s)
		return nil
	}
	if bytes.Equal(data, []byte("null")) {
		*b = nil
		return nil
	}
	*b = append(Body(nil), data...)
	return nil
}

// DecodeInvocation decodes a payload-mode body and the HTTP request of the
// trigger binding named trigger. It is a pure function over bytes.
//
// It returns an EINVALID *api.Error when the body is not a JSON object with
// Data, when Data has no value for the trigger, or when that value is not an
// HTTP request with a method and URL.
func DecodeInvocation(payload []byte, trigger string) (*InvokeRequest, *HTTPRequestData, error) {
	var inv InvokeRequest
	if err := json.Unmarshal(payload, &inv); err != nil {
		return nil, nil, &api.Error{Code: api.EINVALID, Message: "the invocation payload is not a JSON object with Data and Metadata", Err: err}
	}
	if inv.Data == nil {
		return nil, nil, api.Errorf(api.EINVALID, "the invocation payload has no Data")
	}
	raw, ok := inv.Data[trigger]
	if !ok {
		for k, v := range inv.Data {
			if strings.EqualFold(k, trigger) {
				raw, ok = v, true
				break
			}
		}
	}
	if !ok {
		return nil, nil, api.Errorf(api.EINVALID, "the invocation payload has no Data.%s (the function's httpTrigger)", trigger)
	}
	var req HTTPRequestData
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, nil, &api.Error{Code: api.EINVALID, Message: fmt.Sprintf("Data.%s is not an HTTP request", trigger), Err: err}
	}
	if req.Method == "" || req.URL == "" {
		return nil, nil, api.Errorf(api.EINVALID, "Data.%s has no Method or Url", trigger)
	}
	return &inv, &req, nil
}

// MetadataValue returns the metadata value under key (case-insensitive) as
// text, undoing the host's second JSON encoding of scalars: "\"black\""
// gives black and "4" gives 4. Objects and arrays are returned as JSON.
func (inv *InvokeRequest) MetadataValue(key string) (string, bool) {
	raw, ok := inv.Metadata[key]
	if !ok {
		for k, v := range inv.Metadata {
			if strings.EqualFold(k, key) {
				raw, ok = v, true
				break
			}
		}
	}
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return string(raw), true // an object, an array or a bare scalar
	}
	var inner any
	if err := json.Unmarshal([]byte(s), &inner); err == nil {
		if str, isStr := inner.(string); isStr {
			return str, true
		}
	}
	return s, true
}

// HTTPOutput is the value of an http output binding (or of ReturnValue for
// "$return"). The host reads its keys case-insensitively; statusCode may be
// a number. Header values must be strings. For "$return", statusCode and
// headers apply only when a body key is present, so Body is never omitted.
type HTTPOutput struct {
	StatusCode int               `json:"statusCode"`
	Body       string            `json:"body"`
	Headers    map[string]string `json:"headers"`
}

// InvokeResponse is the answer to a payload-mode invocation.
type InvokeResponse struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}
