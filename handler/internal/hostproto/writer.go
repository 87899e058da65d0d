package hostproto

import (
	"bytes"
	"net/http"
	"strings"
)

// bufferedWriter keeps a function's whole answer so that it can be put into
// a payload-mode output binding, or replaced by a clean 500 when the
// function panics half-way through writing.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newBufferedWriter() *bufferedWriter { return &bufferedWriter{header: http.Header{}} }

func (w *bufferedWriter) Header() http.Header { return w.header }

func (w *bufferedWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *bufferedWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}

func (w *bufferedWriter) statusCode() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func (w *bufferedWriter) reset() {
	w.header, w.status = http.Header{}, 0
	w.body.Reset()
}

// output renders the answer as an http output binding value. The host
// writes header values with ToString(), so several values are joined.
func (w *bufferedWriter) output() HTTPOutput {
	out := HTTPOutput{StatusCode: w.statusCode(), Body: w.body.String(), Headers: make(map[string]string, len(w.header))}
	for k, vs := range w.header {
		out.Headers[k] = strings.Join(vs, ", ")
	}
	return out
}

// relay writes the answer as a plain HTTP response (forwarding mode).
func (w *bufferedWriter) relay(rw http.ResponseWriter) {
	h := rw.Header()
	for k, vs := range w.header {
		h[k] = vs
	}
	rw.WriteHeader(w.statusCode())
	_, _ = rw.Write(w.body.Bytes())
}
