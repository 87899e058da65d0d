package stack

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// badInput is one request the app must refuse, or shrug off, without harm.
// It goes through the host stand-in as a caller's request unless direct is
// set: then it is sent straight to the handler process, as the host sends
// an invocation (POST /{function} with a payload).
type badInput struct {
	name   string
	direct bool
	method string // POST when empty
	path   string
	body   string
	header map[string]string
	status int    // the answer's status
	code   string // the problem's code, when the answer is a problem
	// inner and innerCode are the function's own answer inside the output
	// binding of a direct invocation the handler accepted (200).
	inner     int
	innerCode string
	// freshTrace: the answer's trace must not be this one (an invalid
	// traceparent's, compared case-insensitively); sameTrace: it must be
	// this one.
	freshTrace, sameTrace string
	// dropped: no span of the answer's trace may carry this tracestate
	// member.
	dropped string
}

// TestBadInputsKeepServing sends bad inputs of every kind to the stack and
// to the handler process directly, checks each documented answer, that no
// Databricks run is started, and then that the same handler process still
// serves.
func TestBadInputsKeepServing(t *testing.T) {
	s := start(t, "payload")
	pid, _, ok := s.Host.HandlerProcess()
	if !ok {
		t.Fatal("no handler is running")
	}

	// runs/{id} shows runs of the notebook job, and only those.
	ownRun := standinRunNow(t, s, s.JobID)
	if res, body := get(t, fmt.Sprintf("%s/api/runs/%d", s.URL, ownRun)); res.StatusCode != http.StatusOK {
		t.Fatalf("runs/%d of the notebook job = %d %v, want 200", ownRun, res.StatusCode, body)
	}
	otherRun := standinRunNow(t, s, standinCreateJob(t, s, "someone-elses-job"))

	var tests []badInput

	// Bodies of validate that are not JSON, not the schema's types, too
	// large, or of another media type.
	for _, tt := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"malformed JSON", `{"dataset":`, 400, "invalid-request"},
		{"JSON with trailing garbage", validBody + ` x`, 400, "invalid-request"},
		{"empty body", ``, 400, "invalid-request"},
		{"body of blanks", "  \n\t ", 400, "invalid-request"},
		{"body null", `null`, 422, "validation-failed"},
		{"body a string", `"sales"`, 422, "validation-failed"},
		{"body an array", `[1,2,3]`, 422, "validation-failed"},
		{"body a number", `42`, 422, "validation-failed"},
		{"dataset a number", `{"dataset":5,"date":"2026-11-25"}`, 422, "validation-failed"},
		{"dataset an array", `{"dataset":["sales"],"date":"2026-11-25"}`, 422, "validation-failed"},
		{"date an object", `{"dataset":"sales","date":{"y":2026}}`, 422, "validation-failed"},
		{"rowCount a string", `{"dataset":"sales","date":"2026-11-25","rowCount":"1200"}`, 422, "validation-failed"},
		{"rowCount null", `{"dataset":"sales","date":"2026-11-25","rowCount":null}`, 422, "validation-failed"},
		{"rowCount not whole", `{"dataset":"sales","date":"2026-11-25","rowCount":1.5}`, 422, "validation-failed"},
		{"rowCount out of range", `{"dataset":"sales","date":"2026-11-25","rowCount":2000000000}`, 422, "validation-failed"},
		{"unknown field", `{"dataset":"sales","date":"2026-11-25","owner":"me"}`, 422, "validation-failed"},
		{"several schema problems", `{"dataset":"","date":"yesterday","rowCount":"many","extra":true}`, 422, "validation-failed"},
		{"a check fails", `{"dataset":"sales","date":"2099-01-01"}`, 422, "validation-failed"},
		{"body over the limit", `{"dataset":"` + strings.Repeat("x", 300<<10) + `"}`, 413, "payload-too-large"},
		{"body 3 MiB, far over the limit", `{"dataset":"` + strings.Repeat("x", 3<<20) + `"}`, 413, "payload-too-large"},
		{"body within the limit, all <", `{"dataset":"` + strings.Repeat("<", 200<<10) + `"}`, 422, "validation-failed"},
	} {
		tests = append(tests, badInput{name: "validate/" + tt.name, path: "/api/validate", body: tt.body, status: tt.status, code: tt.code})
	}
	tests = append(tests,
		badInput{name: "validate/text/plain body", path: "/api/validate", body: validBody, header: map[string]string{"Content-Type": "text/plain"}, status: 415, code: "unsupported-media-type"},
		badInput{name: "validate/unreadable Content-Type", path: "/api/validate", body: validBody, header: map[string]string{"Content-Type": "application/"}, status: 415, code: "unsupported-media-type"},
		badInput{name: "simulate/unknown stand-in service", path: "/api/simulate/zz", body: `{}`, status: 404, code: "not-found"},
	)

	// Invalid traceparents (W3C Trace Context) never fail a request: the
	// request starts a fresh trace. Through the host, and straight to the
	// handler with the same value on the host's request and in the
	// caller's headers.
	for _, tt := range []struct{ name, tp string }{
		{"version ff", "ff-" + callerTrace + "-" + callerSpan + "-01"},
		{"upper-case hex", "00-" + strings.ToUpper(callerTrace) + "-" + callerSpan + "-01"},
		{"all-zero trace id", "00-" + strings.Repeat("0", 32) + "-" + callerSpan + "-01"},
		{"all-zero span id", "00-" + callerTrace + "-" + strings.Repeat("0", 16) + "-01"},
		{"trace id too short", "00-" + callerTrace[:30] + "-" + callerSpan + "-01"},
		{"trace id too long", "00-" + callerTrace + "ab-" + callerSpan + "-01"},
		{"span id too short", "00-" + callerTrace + "-" + callerSpan[:15] + "-01"},
		{"non-hex characters", "00-" + callerTrace[:31] + "g-" + callerSpan + "-01"},
		{"extra field with version 00", callerTP + "-00"},
		{"flags not hex", "00-" + callerTrace + "-" + callerSpan + "-0x"},
		{"not a traceparent", "sampled"},
	} {
		bad := traceOf(tt.tp)
		tests = append(tests,
			badInput{name: "traceparent/" + tt.name, path: "/api/validate", body: validBody,
				header: map[string]string{"traceparent": tt.tp}, status: 200, freshTrace: bad},
			badInput{name: "traceparent/direct/" + tt.name, direct: true, path: "/validate",
				body:   invocation(validBody, func(req, _ map[string]any) { callerHeaders(req)["traceparent"] = []string{tt.tp} }),
				header: map[string]string{"traceparent": tt.tp}, status: 200, inner: 200, freshTrace: bad},
		)
	}
	// An invalid tracestate with a valid traceparent: the trace goes on
	// (W3C: tracestate never invalidates traceparent), the bad members do
	// not.
	var members []string
	for i := range 33 {
		members = append(members, fmt.Sprintf("k%02d=v", i))
	}
	for i, tt := range []struct{ name, ts, dropped string }{
		{"tracestate of 33 members", strings.Join(members, ","), "k32=v"},
		{"tracestate key upper-case", "congo=t61rcWkgMzE,Bad=1", "Bad=1"},
		{"tracestate malformed", "=,==,bad key=1", "bad key"},
	} {
		trace := fmt.Sprintf("%032x", 0x7e57_0000+i)
		tests = append(tests, badInput{name: "tracestate/" + tt.name, path: "/api/validate", body: validBody,
			header: map[string]string{"traceparent": "00-" + trace + "-" + callerSpan + "-01", "tracestate": tt.ts},
			status: 200, sameTrace: trace, dropped: tt.dropped})
	}
	tests = append(tests, badInput{name: "traceparent/direct/invalid from the host, valid from the caller", direct: true, path: "/validate",
		body:   invocation(validBody, func(req, _ map[string]any) { callerHeaders(req)["traceparent"] = []string{callerTP} }),
		header: map[string]string{"traceparent": "ff-" + callerTrace + "-" + callerSpan + "-01"}, status: 200, inner: 200, sameTrace: callerTrace})

	// notebook refuses these before Databricks is called.
	params := func(p string) string {
		return `{"dataset":"sales","date":"2026-11-25","parameters":` + p + `}`
	}
	long := strings.Repeat("9", 1000)
	var bigState []string
	for i := range 32 {
		bigState = append(bigState, fmt.Sprintf("k%02d=%s", i, strings.Repeat("v", 250)))
	}
	for _, tt := range []struct {
		name, query, body string
		header            map[string]string
		status            int
		code              string
	}{
		{"unknown job parameter", "", params(`{"cluster_size":"9"}`), nil, 422, "validation-failed"},
		{"forbidden parameter traceparent", "", params(`{"traceparent":"` + callerTP + `"}`), nil, 422, "validation-failed"},
		{"forbidden parameter DATASET", "", params(`{"DATASET":"other"}`), nil, 422, "validation-failed"},
		{"forbidden parameter run_id", "", params(`{"run_id":"1"}`), nil, 422, "validation-failed"},
		{"parameter value over 1000 characters", "", params(`{"extract_seconds":"` + long + `9"}`), nil, 422, "validation-failed"},
		{"parameter not a string", "", params(`{"extract_seconds":2}`), nil, 422, "validation-failed"},
		// Each value within its limit, but with the caller's tracestate
		// (32 members, as W3C allows) the job parameters pass 10,000 bytes.
		{"job parameters over 10,000 bytes", "", params(`{"extract_seconds":"` + long + `","transform_seconds":"` + long + `","load_seconds":"` + long + `"}`),
			map[string]string{"traceparent": callerTP, "tracestate": strings.Join(bigState, ",")}, 400, "invalid-request"},
		{"wait not a duration", "?wait=soon", notebookBody, nil, 400, "invalid-request"},
		{"wait negative", "?wait=-5s", notebookBody, nil, 400, "invalid-request"},
		{"wait empty", "?wait=", notebookBody, nil, 400, "invalid-request"},
		{"wait fractional seconds without a unit", "?wait=1.5", notebookBody, nil, 400, "invalid-request"},
		{"empty Idempotency-Key", "", notebookBody, map[string]string{"Idempotency-Key": ""}, 400, "invalid-request"},
		{"Idempotency-Key over 255 characters", "", notebookBody, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, 400, "invalid-request"},
		{"Idempotency-Key with a tab", "", notebookBody, map[string]string{"Idempotency-Key": "order\t1"}, 400, "invalid-request"},
		{"Idempotency-Key not ASCII", "", notebookBody, map[string]string{"Idempotency-Key": "commande-é"}, 400, "invalid-request"},
		{"body not JSON", "", `dataset=sales`, nil, 400, "invalid-request"},
		{"body over the limit", "", `{"dataset":"` + strings.Repeat("x", 300<<10) + `"}`, nil, 413, "payload-too-large"},
		{"validation fails", "", `{"dataset":"Sales!","date":"2026-11-25"}`, nil, 422, "validation-failed"},
	} {
		tests = append(tests, badInput{name: "notebook/" + tt.name, path: "/api/notebook" + tt.query, body: tt.body, header: tt.header, status: tt.status, code: tt.code})
	}

	// runs/{runId}: only positive whole numbers, only runs of the job.
	for _, tt := range []struct {
		name, id string
		status   int
		code     string
	}{
		{"not a number", "abc", 400, "invalid-request"},
		{"zero", "0", 400, "invalid-request"},
		{"negative", "-5", 400, "invalid-request"},
		{"beyond int64", "99999999999999999999", 400, "invalid-request"},
		{"no such run", "424242", 404, "not-found"},
		{"a run of another job", fmt.Sprint(otherRun), 404, "not-found"},
	} {
		tests = append(tests, badInput{name: "runs/" + tt.name, method: http.MethodGet, path: "/api/runs/" + tt.id, status: tt.status, code: tt.code})
	}

	// What the host itself refuses: ASP.NET Core routing answers 404 with
	// no body for an unknown route and for a method the route does not
	// allow.
	for _, tt := range []struct{ method, path string }{
		{http.MethodPost, "/api/nosuch"},
		{http.MethodPost, "/validate"},
		{http.MethodGet, "/api/validate"},
		{http.MethodDelete, "/api/validate"},
		{http.MethodPut, "/api/notebook"},
		{http.MethodPost, "/api/runs/1"},
		{http.MethodGet, "/api/simulate/a"},
	} {
		tests = append(tests, badInput{name: "host/" + tt.method + " " + tt.path, method: tt.method, path: tt.path, status: 404})
	}

	// Malformed invocations straight to the handler: protocol problems are
	// 4xx problem bodies (in application/json, the only type the host
	// reads); a well-formed invocation of a bad request is 200 with the
	// function's problem in its output binding.
	for _, tt := range []struct {
		name, method, path, payload string
		header                      map[string]string
		status                      int
		code                        string
		inner                       int
		innerCode                   string
	}{
		{name: "payload not JSON", path: "/validate", payload: `{"Data":`, status: 400, code: "invalid-request"},
		{name: "payload a JSON array", path: "/validate", payload: `[` + invocation(validBody, nil) + `]`, status: 400, code: "invalid-request"},
		{name: "payload null", path: "/validate", payload: `null`, status: 400, code: "invalid-request"},
		{name: "payload empty", path: "/validate", payload: ``, status: 400, code: "invalid-request"},
		{name: "no Data", path: "/validate", payload: `{"Metadata":{}}`, status: 400, code: "invalid-request"},
		{name: "Data without the trigger binding", path: "/validate", payload: strings.Replace(invocation(validBody, nil), `"req":`, `"request":`, 1), status: 400, code: "invalid-request"},
		{name: "Data.req a string", path: "/validate", payload: `{"Data":{"req":"POST /api/validate"},"Metadata":{}}`, status: 400, code: "invalid-request"},
		{name: "Data.req an array", path: "/validate", payload: `{"Data":{"req":[]},"Metadata":{}}`, status: 400, code: "invalid-request"},
		{name: "Data.req without Method and Url", path: "/validate", payload: `{"Data":{"req":{"Body":"{}"}},"Metadata":{}}`, status: 400, code: "invalid-request"},
		{name: "Data.req.Headers values numbers", path: "/validate", payload: invocation(validBody, func(req, _ map[string]any) { req["Headers"] = map[string]any{"Content-Type": 1} }), status: 400, code: "invalid-request"},
		{name: "Data.req.Query values numbers", path: "/validate", payload: invocation(validBody, func(req, _ map[string]any) { req["Query"] = map[string]any{"wait": 5} }), status: 400, code: "invalid-request"},
		{name: "Data.req.Params an array", path: "/validate", payload: invocation(validBody, func(req, _ map[string]any) { req["Params"] = []string{"a"} }), status: 400, code: "invalid-request"},
		{name: "Metadata a string", path: "/validate", payload: `{"Data":{"req":{"Url":"http://localhost:7071/api/validate","Method":"POST","Body":` + jsonString(validBody) + `}},"Metadata":"sys"}`, status: 400, code: "invalid-request"},
		{name: "unknown function", path: "/nosuch", payload: invocation(validBody, nil), status: 404, code: "not-found"},
		{name: "function path nested", path: "/validate/extra", payload: invocation(validBody, nil), status: 404, code: "not-found"},
		{name: "GET instead of POST", method: http.MethodGet, path: "/validate", status: 405, code: "method-not-allowed"},
		{name: "payload over the limit", path: "/validate", payload: invocation(`{"dataset":"`+strings.Repeat("x", 3<<20)+`"}`, nil), status: 200, inner: 413, innerCode: "payload-too-large"},
		// The handler reads what the payload says, not how it is labelled,
		// nor the binding data in Metadata it does not use.
		{name: "payload labelled text/plain", path: "/validate", payload: invocation(validBody, nil), header: map[string]string{"Content-Type": "text/plain"}, status: 200, inner: 200},
		{name: "Metadata of the wrong types", path: "/validate", payload: invocation(validBody, func(_, meta map[string]any) {
			meta["sys"], meta["Headers"], meta["dataset"], meta["Query"] = 5, []int{1}, map[string]any{"x": nil}, "q"
		}), status: 200, inner: 200},
		{name: "Data.req.Url relative", path: "/validate", payload: invocation(validBody, func(req, _ map[string]any) { req["Url"] = "/api/validate" }), status: 200, inner: 400, innerCode: "invalid-request"},
		{name: "Data.req.Method not a method", path: "/validate", payload: invocation(validBody, func(req, _ map[string]any) { req["Method"] = "PO ST" }), status: 200, inner: 400, innerCode: "invalid-request"},
		{name: "Data.req.Method GET", path: "/validate", payload: invocation(validBody, func(req, _ map[string]any) { req["Method"] = "get" }), status: 200, inner: 405, innerCode: "method-not-allowed"},
		{name: "Data.req.Body over the limit", path: "/validate", payload: invocation(`{"dataset":"`+strings.Repeat("x", 300<<10)+`"}`, nil), status: 200, inner: 413, innerCode: "payload-too-large"},
		{name: "octet-stream Body not base64", path: "/validate", payload: invocation("%%%", func(req, _ map[string]any) {
			callerHeaders(req)["Content-Type"] = []string{"application/octet-stream"}
		}), status: 200, inner: 400, innerCode: "invalid-request"},
	} {
		tests = append(tests, badInput{name: "direct/" + tt.name, direct: true, method: tt.method, path: tt.path, body: tt.payload, header: tt.header,
			status: tt.status, code: tt.code, inner: tt.inner, innerCode: tt.innerCode})
	}

	runs := s.Databricks.Runs()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, s)
			if n := s.Databricks.Runs(); n != runs {
				t.Errorf("%d Databricks runs were started", n-runs)
				runs = n
			}
		})
	}
	t.Logf("%d bad inputs", len(tests))

	if res, body := post(t, s.URL+"/api/validate", validBody, nil); res.StatusCode != 200 || body["valid"] != true {
		t.Fatalf("after the bad inputs: %d %v", res.StatusCode, body)
	}
	if now, _, ok := s.Host.HandlerProcess(); !ok || now != pid {
		t.Errorf("the handler process is %d (running: %v), want %d: it was restarted", now, ok, pid)
	}
}

// check sends the request and checks the answer.
func (tt badInput) check(t *testing.T, s *Stack) {
	t.Helper()
	method := tt.method
	if method == "" {
		method = http.MethodPost
	}
	url, header := s.URL+tt.path, map[string]string{}
	if method == http.MethodPost {
		header["Content-Type"] = "application/json"
	}
	if tt.direct {
		_, base, ok := s.Host.HandlerProcess()
		if !ok {
			t.Fatal("no handler is running")
		}
		url = base + tt.path
		header = map[string]string{
			"Content-Type":                   "application/json; charset=utf-8",
			"X-Azure-Functions-InvocationId": "0f8fad5b-d9cb-469f-a165-70867728950e",
			"X-Azure-Functions-HostVersion":  "4.1037.0.0",
			"User-Agent":                     "Azure-Functions-Host/4.1037.0.0",
		}
	}
	for k, v := range tt.header {
		header[k] = v
	}
	res, raw := exchange(t, method, url, tt.body, header)
	if res.StatusCode != tt.status {
		t.Fatalf("status = %d, want %d: %.300s", res.StatusCode, tt.status, raw)
	}
	switch {
	case tt.direct && tt.status != http.StatusOK:
		// A protocol problem: the host fails the invocation on any non-2xx
		// answer, but still reads it as JSON.
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		checkProblem(t, raw, tt.code)
		if tt.status == http.StatusMethodNotAllowed && res.Header.Get("Allow") != http.MethodPost {
			t.Errorf("Allow = %q, want POST", res.Header.Get("Allow"))
		}
	case tt.direct:
		var inv struct {
			Outputs map[string]struct {
				StatusCode int               `json:"statusCode"`
				Body       string            `json:"body"`
				Headers    map[string]string `json:"headers"`
			}
			Logs []string
		}
		if err := json.Unmarshal(raw, &inv); err != nil {
			t.Fatalf("not an invocation result: %v: %.300s", err, raw)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type = %q, want application/json (the host reads no other)", ct)
		}
		out, ok := inv.Outputs["res"]
		if !ok {
			t.Fatalf("no output binding res in %.300s", raw)
		}
		if out.StatusCode != tt.inner {
			t.Fatalf("the function answered %d, want %d: %.300s", out.StatusCode, tt.inner, out.Body)
		}
		if tt.innerCode != "" {
			if ct := out.Headers["Content-Type"]; ct != "application/problem+json" {
				t.Errorf("the function's Content-Type = %q", ct)
			}
			checkProblem(t, []byte(out.Body), tt.innerCode)
			return
		}
		tt.checkTrace(t, s, []byte(out.Body))
	case tt.code != "":
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("Content-Type = %q, want application/problem+json", ct)
		}
		checkProblem(t, raw, tt.code)
	case tt.status == http.StatusNotFound:
		if len(raw) != 0 {
			t.Errorf("the host's 404 has a body: %.300s", raw)
		}
	default:
		tt.checkTrace(t, s, raw)
	}
}

// checkTrace checks a successful validate answer and its trace.
func (tt badInput) checkTrace(t *testing.T, s *Stack, raw []byte) {
	t.Helper()
	var body struct {
		Valid   bool   `json:"valid"`
		TraceID string `json:"traceId"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || !body.Valid {
		t.Fatalf("not a valid validate answer (%v): %.300s", err, raw)
	}
	if !hex32.MatchString(body.TraceID) {
		t.Errorf("traceId %q is not 32 lower-case hex digits", body.TraceID)
	}
	if tt.freshTrace != "" && strings.EqualFold(body.TraceID, tt.freshTrace) {
		t.Errorf("the invalid traceparent's trace %s was continued", tt.freshTrace)
	}
	if tt.sameTrace != "" && body.TraceID != tt.sameTrace {
		t.Errorf("traceId = %s, want %s continued", body.TraceID, tt.sameTrace)
	}
	if tt.dropped != "" {
		for _, sp := range waitTrace(t, s, body.TraceID, 11) {
			if strings.Contains(sp.TraceState, tt.dropped) {
				t.Errorf("span %s: %s carries the invalid tracestate %q", sp.Service, sp.Name, sp.TraceState)
			}
		}
	}
}

// checkProblem checks an RFC 9457 problem body: its code, its status
// matching the code, and the trace id.
func checkProblem(t *testing.T, raw []byte, code string) {
	t.Helper()
	var p struct {
		Type    string `json:"type"`
		Status  int    `json:"status"`
		Code    string `json:"code"`
		TraceID string `json:"traceId"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("not a problem body: %v: %.300s", err, raw)
	}
	if p.Code != code || !strings.HasSuffix(p.Type, "#"+code) {
		t.Errorf("code = %q (type %q), want %s", p.Code, p.Type, code)
	}
	if !hex32.MatchString(p.TraceID) {
		t.Errorf("traceId %q is not 32 lower-case hex digits", p.TraceID)
	}
}

// exchange sends one request and returns the answer with its whole body.
func exchange(t *testing.T, method, url, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	return res, raw
}

// invocation is the payload the host sends to the handler for a caller's
// POST of body to /api/validate (dev/funchost/invoke.go): the request in
// Data.req, headers as arrays, Body only when there is one; the binding
// data in Metadata, scalars encoded twice. edit changes Data.req and
// Metadata before they are encoded.
func invocation(body string, edit func(req, meta map[string]any)) string {
	req := map[string]any{
		"Url": "http://localhost:7071/api/validate", "Method": "POST", "Query": map[string]string{},
		"Headers":    map[string][]string{"Host": {"localhost:7071"}, "Content-Type": {"application/json"}},
		"Params":     map[string]string{},
		"Identities": []any{map[string]any{"AuthenticationType": nil, "IsAuthenticated": false, "Claims": []any{}}},
	}
	if body != "" {
		req["Body"] = body
	}
	meta := map[string]any{
		"dataset": `"sales"`, "date": `"2026-11-25"`, "rowCount": `"1200"`,
		"Query": map[string]string{}, "Headers": map[string]string{"Host": "localhost:7071", "Content-Type": "application/json"},
		"sys": map[string]any{"MethodName": "validate", "UtcNow": "2026-11-26T12:00:00.0000000Z", "RandGuid": "24ad4c06-24ad-4e5b-8294-3da9714877e9"},
	}
	if edit != nil {
		edit(req, meta)
	}
	b, err := json.Marshal(map[string]any{"Data": map[string]any{"req": req}, "Metadata": meta})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// jsonString is s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// callerHeaders are the caller's headers inside an invocation's Data.req.
func callerHeaders(req map[string]any) map[string][]string {
	return req["Headers"].(map[string][]string)
}

// traceOf is the trace id field of a traceparent, valid or not.
func traceOf(tp string) string {
	parts := strings.Split(tp, "-")
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

// standinCall makes a Databricks API call to the stand-in directly.
func standinCall(t *testing.T, s *Stack, path, body string) map[string]any {
	t.Helper()
	res, raw := exchange(t, http.MethodPost, s.DatabricksURL+path, body,
		map[string]string{"Authorization": "Bearer " + standinToken, "Content-Type": "application/json"})
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("%s = %d %s", path, res.StatusCode, raw)
	}
	return m
}

// standinCreateJob creates a job in the Databricks stand-in.
func standinCreateJob(t *testing.T, s *Stack, name string) int64 {
	t.Helper()
	m := standinCall(t, s, "/api/2.2/jobs/create", fmt.Sprintf(`{"name":%q}`, name))
	return int64(m["job_id"].(float64))
}

// standinRunNow starts a run of a job in the Databricks stand-in, as
// someone else than nbtrace would.
func standinRunNow(t *testing.T, s *Stack, jobID int64) int64 {
	t.Helper()
	m := standinCall(t, s, "/api/2.2/jobs/run-now", fmt.Sprintf(`{"job_id":%d}`, jobID))
	return int64(m["run_id"].(float64))
}

// TestHostRestartsAKilledHandler: the stand-in restarts the handler process
// when it dies, as the host does, and requests succeed again.
func TestHostRestartsAKilledHandler(t *testing.T) {
	s := start(t, "payload")
	if res, _ := post(t, s.URL+"/api/validate", validBody, nil); res.StatusCode != 200 {
		t.Fatalf("before: %d", res.StatusCode)
	}
	s.Host.KillHandler()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, body := post(t, s.URL+"/api/validate", validBody, nil)
		if res.StatusCode == 200 && body["valid"] == true {
			return
		}
		if res.StatusCode != http.StatusInternalServerError {
			t.Fatalf("while restarting: %d %v, want 500 (invocation failed) or 200", res.StatusCode, body)
		}
		if time.Now().After(deadline) {
			t.Fatal("the handler was not restarted")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
