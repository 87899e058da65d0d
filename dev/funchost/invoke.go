package funchost

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nbtrace/nbtrace/handler/manifest"
)

// invokePayload invokes fn in payload mode and writes the caller's answer.
func (h *Host) invokePayload(w http.ResponseWriter, r *http.Request, fn manifest.Function, values map[string]string) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "", http.StatusBadRequest)
		return
	}
	payload, err := Payload(r, body, fn, values)
	if err != nil {
		h.fail(w, fn, "", fmt.Errorf("encode payload: %w", err))
		return
	}
	wk, err := h.worker(r.Context())
	if err != nil {
		h.fail(w, fn, "", err)
		return
	}
	id := newGUID()
	// The host's ObjectContent has no precomputed length: the payload is
	// sent chunked. A reader of unknown size makes net/http do the same.
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, wk.baseURL()+"/"+fn.Name, io.MultiReader(bytes.NewReader(payload)))
	if err != nil {
		h.fail(w, fn, id, err)
		return
	}
	SetInvocationHeaders(req.Header, id)
	res, err := h.client.Do(req)
	if err != nil {
		h.fail(w, fn, id, fmt.Errorf("call the handler: %w", err))
		return
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(res.Body)
	if err != nil {
		h.fail(w, fn, id, fmt.Errorf("read the handler's answer: %w", err))
		return
	}
	// EnsureSuccessStatusCode, then ReadAsAsync with the JSON formatter
	// only: any other media type throws UnsupportedMediaTypeException.
	if res.StatusCode < 200 || res.StatusCode > 299 {
		h.fail(w, fn, id, fmt.Errorf("the handler answered %d: %s", res.StatusCode, clip(answer)))
		return
	}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "application/json" && mt != "text/json" {
		h.fail(w, fn, id, fmt.Errorf("the handler answered with Content-Type %q; the host reads only application/json", res.Header.Get("Content-Type")))
		return
	}
	var inv struct {
		Outputs     map[string]json.RawMessage
		Logs        []string
		ReturnValue json.RawMessage
	}
	if err := json.Unmarshal(answer, &inv); err != nil {
		h.fail(w, fn, id, fmt.Errorf("the handler's answer is not an invocation result: %w", err))
		return
	}
	// Each line at Information, under the function's user category, in
	// the invocation's scope (DefaultHttpWorkerService: LogInformation).
	for _, line := range inv.Logs {
		h.log(LogRecord{Time: time.Now(), Level: Information, Category: UserCategory(fn.Name), Message: line, InvocationID: id})
	}
	var out json.RawMessage
	if fn.Output == manifest.ReturnBinding {
		out = inv.ReturnValue
	} else {
		// Without a $return binding, an object ReturnValue's properties
		// overwrite Outputs (WorkerFunctionInvoker).
		var rv map[string]json.RawMessage
		if json.Unmarshal(inv.ReturnValue, &rv) == nil {
			if inv.Outputs == nil {
				inv.Outputs = map[string]json.RawMessage{}
			}
			for k, v := range rv {
				inv.Outputs[k] = v
			}
		}
		out = lookup(inv.Outputs, fn.Output)
	}
	resp, err := httpResult(out, fn.Output == manifest.ReturnBinding)
	if err != nil {
		h.fail(w, fn, id, err)
		return
	}
	for k, v := range resp.headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

// Payload is the body the host posts to /{function} in payload mode for
// the caller's request r with body: Data holds the trigger's value, and
// Metadata the trigger metadata (route values, Query, Headers, sys).
func Payload(r *http.Request, body []byte, fn manifest.Function, values map[string]string) ([]byte, error) {
	// Newtonsoft.Json, the host's serializer, leaves <, > and & as they
	// are; encoding/json would escape each to six bytes.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(map[string]any{
		"Data":     map[string]any{fn.Trigger: httpData(r, body, values)},
		"Metadata": metadata(r, body, values, fn.Name),
	})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), err
}

// SetInvocationHeaders sets the headers of the host's invocation request
// in payload mode: Content-Type, host version, invocation id, user agent.
func SetInvocationHeaders(hd http.Header, invocationID string) {
	hd.Set("Content-Type", "application/json; charset=utf-8")
	hostHeaders(hd, invocationID, "Azure-Functions-Host/"+Version)
}

// httpData is the trigger's value in Data (HttpRequestExtensions).
func httpData(r *http.Request, body []byte, values map[string]string) map[string]any {
	headers := map[string][]string{}
	for k, vs := range r.Header {
		headers[k] = vs
	}
	if r.Host != "" {
		headers["Host"] = []string{r.Host}
	}
	d := map[string]any{
		"Url":     requestURL(r),
		"Method":  r.Method,
		"Query":   joinedQuery(r.URL.Query()),
		"Headers": headers,
		"Params":  nonNil(values),
		"Identities": []map[string]any{
			{"AuthenticationType": nil, "IsAuthenticated": false, "Actor": nil, "BootstrapContext": nil,
				"Claims": []any{}, "Label": nil, "Name": nil, "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
				"RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"},
		},
	}
	// Body is present only when Content-Length > 0.
	if r.ContentLength > 0 {
		if base64Media(r.Header.Get("Content-Type")) {
			d["Body"] = base64.StdEncoding.EncodeToString(body)
		} else {
			d["Body"] = string(body)
		}
	}
	return d
}

// metadata is the trigger's binding data (HttpTriggerAttributeBindingProvider
// and ScriptInvocationContextExtensions): scalars are JSON-encoded twice.
func metadata(r *http.Request, body []byte, values map[string]string, fnName string) map[string]any {
	m := map[string]any{}
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) == nil {
		for k, v := range obj {
			var arr []any
			if json.Unmarshal(v, &arr) == nil || string(v) == "null" {
				continue // arrays are not binding data
			}
			m[k] = twice(v)
		}
	}
	q := r.URL.Query()
	lastQuery := map[string]string{}
	for k, vs := range q {
		lastQuery[k] = vs[len(vs)-1]
		if !strings.EqualFold(k, "code") {
			m[k] = encodeString(vs[len(vs)-1])
		}
	}
	for k, v := range values {
		m[k] = encodeString(v)
	}
	headers := map[string]string{}
	for k, vs := range r.Header {
		headers[k] = strings.Join(vs, ",")
	}
	if r.Host != "" {
		headers["Host"] = r.Host
	}
	// A body key named query or headers takes that slot instead.
	if _, ok := lookupAny(m, "Query"); !ok {
		m["Query"] = lastQuery
	}
	if _, ok := lookupAny(m, "Headers"); !ok {
		m["Headers"] = headers
	}
	m["sys"] = map[string]any{
		"MethodName": fnName,
		"UtcNow":     time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"),
		"RandGuid":   newGUID(),
	}
	return m
}

// twice applies the host's conversion to one top-level body property: the
// binding data holds a scalar as its text (JValue.ToString: a string
// unquoted, a number as written, a boolean as True or False — the last
// inferred from .NET, not seen in a fixture), which is then serialized once
// more (JsonConvert.SerializeObject), so "black" and 1005 arrive as
// "\"black\"" and "\"1005\"" (reference fixture A). Objects stay objects.
func twice(v json.RawMessage) any {
	switch {
	case len(v) > 0 && v[0] == '{':
		return v
	case len(v) > 0 && v[0] == '"':
		var s string
		_ = json.Unmarshal(v, &s)
		return encodeString(s)
	case string(v) == "true":
		return encodeString("True")
	case string(v) == "false":
		return encodeString("False")
	default:
		return encodeString(string(v))
	}
}

func encodeString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// forward hands the request to the handler at its original path and relays
// the answer verbatim.
func (h *Host) forward(w http.ResponseWriter, r *http.Request, fn manifest.Function) {
	wk, err := h.worker(r.Context())
	if err != nil {
		h.fail(w, fn, "", err)
		return
	}
	id := newGUID()
	target := wk.baseURL() + r.URL.EscapedPath()
	if q := rebuildQuery(r.URL.Query()); q != "" {
		target += "?" + q
	}
	var body io.Reader
	if r.ContentLength > 0 {
		body = r.Body
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target, body)
	if err != nil {
		h.fail(w, fn, id, err)
		return
	}
	for k, vs := range r.Header {
		req.Header[k] = append([]string{}, vs...)
	}
	req.Host = r.Host
	if r.ContentLength > 0 {
		req.ContentLength = r.ContentLength
	} else {
		req.Header.Del("Content-Type")
		req.Header.Del("Content-Length")
	}
	if h.proxying() {
		// YARP's default transform: the original Host dropped, X-Forwarded-*
		// set, the caller's User-Agent as it is; then the host's headers,
		// replacing any of the caller's, and x-ms-invocation-id
		// (DefaultHttpWorkerService.AddProxyingHeaders, DefaultHttpProxyService).
		req.Host = ""
		req.Header.Set("X-Forwarded-For", hostOnly(r.RemoteAddr))
		req.Header.Set("X-Forwarded-Proto", "http")
		req.Header.Set("X-Forwarded-Host", r.Host)
		req.Header.Set("X-Azure-Functions-HostVersion", Version)
		req.Header.Set("X-Azure-Functions-InvocationId", id)
		req.Header.Set("X-Ms-Invocation-Id", id)
	} else {
		ua := strings.TrimSpace(r.Header.Get("User-Agent") + " Azure-Functions-Host/" + Version)
		hostHeaders(req.Header, id, ua)
	}
	res, err := h.client.Do(req)
	if err != nil {
		h.fail(w, fn, id, fmt.Errorf("forward to the handler: %w", err))
		return
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(res.Body) // the host buffers the answer
	if err != nil {
		h.fail(w, fn, id, fmt.Errorf("read the handler's answer: %w", err))
		return
	}
	for k, vs := range res.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(answer)
}

// proxying reports whether the host proxies requests (YARP) rather than
// rebuilding them: customHandler.enableProxyingHttpRequest, on hosts that
// know it.
func (h *Host) proxying() bool { return h.cfg.Generation == Gen2026 && h.app.Host.Proxying }

func hostOnly(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// hostHeaders sets what the host adds to every request to the handler:
// its version, the invocation id and the user agent.
func hostHeaders(hd http.Header, invocationID, userAgent string) {
	hd.Set("X-Azure-Functions-HostVersion", Version)
	hd.Set("X-Azure-Functions-InvocationId", invocationID)
	hd.Set("User-Agent", userAgent)
}

// fail answers 500 with no body, as the host's ExceptionMiddleware does for
// a failed invocation, and logs why.
func (h *Host) fail(w http.ResponseWriter, fn manifest.Function, id string, err error) {
	h.logf("%s (%s) failed: %v", fn.Name, id, err)
	w.WriteHeader(http.StatusInternalServerError)
}

type result struct {
	status  int
	headers map[string]string
	body    []byte
}

// httpResult reads an http output value (HttpBinding). For $return, a
// string value is parsed as JSON, and statusCode and headers apply only
// when the object has a body key; otherwise the whole value is the body.
func httpResult(v json.RawMessage, isReturn bool) (result, error) {
	res := result{status: http.StatusOK, headers: map[string]string{}}
	if len(v) == 0 || string(v) == "null" {
		return res, nil
	}
	if isReturn && v[0] == '"' {
		var s string
		_ = json.Unmarshal(v, &s)
		if json.Valid([]byte(s)) {
			v = json.RawMessage(s)
		}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v, &obj); err != nil {
		if isReturn {
			res.body = rawBody(v)
			return res, nil
		}
		return res, fmt.Errorf("the http output is not an object: %s", clip(v))
	}
	if _, hasBody := lookupAny(obj, "body"); isReturn && !hasBody {
		res.body, _ = json.MarshalIndent(obj, "", "  ")
		return res, nil
	}
	if sc := lookup(obj, "statusCode"); sc != nil {
		var n int
		var s string
		switch {
		case json.Unmarshal(sc, &n) == nil:
		case json.Unmarshal(sc, &s) == nil:
			var err error
			if n, err = strconv.Atoi(s); err != nil {
				return res, fmt.Errorf("statusCode %q is not a number", s)
			}
		default:
			return res, fmt.Errorf("statusCode %s is not a number", sc)
		}
		res.status = n
	}
	if hv := lookup(obj, "headers"); hv != nil {
		var hs map[string]any
		if err := json.Unmarshal(hv, &hs); err != nil {
			return res, fmt.Errorf("headers is not an object")
		}
		for k, val := range hs {
			res.headers[k] = fmt.Sprint(val) // written with ToString()
		}
	}
	res.body = rawBody(lookup(obj, "body"))
	return res, nil
}

// rawBody writes a string body raw and any other value as indented JSON.
func rawBody(v json.RawMessage) []byte {
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return []byte(s)
	}
	var buf bytes.Buffer
	if json.Indent(&buf, v, "", "  ") != nil {
		return v
	}
	return buf.Bytes()
}

func lookup(m map[string]json.RawMessage, key string) json.RawMessage {
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

func lookupAny[V any](m map[string]V, key string) (V, bool) {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	var zero V
	return zero, false
}

func requestURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	u := scheme + "://" + r.Host + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return u
}

func joinedQuery(q url.Values) map[string]string {
	out := make(map[string]string, len(q))
	for k, vs := range q {
		out[k] = strings.Join(vs, ",")
	}
	return out
}

// rebuildQuery turns the query into the host's dictionary and back:
// several values of one key become one comma-joined value; code is kept.
func rebuildQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(strings.Join(q[k], ",")))
	}
	return strings.Join(parts, "&")
}

func base64Media(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/octet-stream" || strings.HasPrefix(mt, "multipart/"))
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
