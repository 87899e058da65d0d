package hostproto

import (
	"bytes"
	"context"
	"encoding/base64"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/nbtrace/nbtrace/functions/api"
)

// NewRequest rebuilds the caller's HTTP request from the trigger's data.
// Route values from Params are set as path values (r.PathValue). A body
// over maxBody bytes is an ETOOLARGE error; an octet-stream or multipart
// body that is not base64 is an EINVALID one.
func (d *HTTPRequestData) NewRequest(ctx context.Context, maxBody int64) (*http.Request, error) {
	u, err := url.Parse(d.URL)
	if err != nil || u.Host == "" {
		return nil, api.Errorf(api.EINVALID, "the trigger's Url %q is not an absolute URL", d.URL)
	}
	method := strings.ToUpper(d.Method)
	if !validMethod(method) {
		return nil, api.Errorf(api.EINVALID, "the trigger's Method %q is not an HTTP method", d.Method)
	}
	header := d.Headers.HTTP()
	var body []byte
	if d.Body != nil {
		body = *d.Body
		if isBase64Media(header.Get("Content-Type")) {
			dec, err := base64.StdEncoding.DecodeString(string(body))
			if err != nil {
				return nil, api.Errorf(api.EINVALID, "the trigger's %s body is not base64", header.Get("Content-Type"))
			}
			body = dec
		}
	}
	if int64(len(body)) > maxBody {
		return nil, api.Errorf(api.ETOOLARGE, "the body is larger than %d bytes", maxBody)
	}
	r, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, api.Errorf(api.EINVALID, "the trigger's request cannot be rebuilt: %v", err)
	}
	r.Header = header
	r.Host = u.Host
	r.RequestURI = u.RequestURI()
	r.ContentLength = int64(len(body))
	if d.Body == nil {
		r.Body = http.NoBody
	}
	for k, v := range d.Params {
		r.SetPathValue(k, v)
	}
	return r, nil
}

// isBase64Media reports whether the host sends bodies of this media type
// as base64 (HttpRequestExtensions: application/octet-stream, multipart/*).
func isBase64Media(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/octet-stream" || strings.HasPrefix(mt, "multipart/")
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
