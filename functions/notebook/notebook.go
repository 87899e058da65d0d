// Package notebook is the notebook function: it validates the request by
// calling validate through the host (so the trace shows that hop), then
// starts the Databricks job with the W3C trace context of a PRODUCER span
// in its job parameters, so the job's notebook continues the same trace.
package notebook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go/service/jobs"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/functions/jobrun"
)

// Settings read by notebook.
var Settings = []api.Setting{
	{Name: "NOTEBOOK_VALIDATE_URL", Default: "{base}/validate", Doc: "URL of the validate function, called through the host so the trace shows the hop. Defaults to the app's own.", Azure: api.Optional},
	{Name: "NOTEBOOK_VALIDATE_TIMEOUT", Default: "15s", Doc: "Time limit of the call to validate.", Azure: api.Optional},
	{Name: "NOTEBOOK_PARAMETER_ALLOWLIST", Default: "extract_seconds,transform_seconds,load_seconds", Doc: "Job parameters a caller may set in \"parameters\"; trace keys and the validated fields never.", Azure: api.Optional},
	{Name: "NOTEBOOK_MAX_WAIT", Default: "200s", Doc: "Longest ?wait=; kept under the 230 s limit of HTTP requests to Azure Functions.", Azure: api.Optional},
}

// Deps are what notebook needs besides its settings.
type Deps struct {
	Runs     jobrun.Runs
	Recorder *jobrun.Recorder
}

type config struct {
	validateURL     string
	validateTimeout time.Duration
	allow           map[string]bool
	maxWait         time.Duration
	statusBase      string
}

// New builds the notebook function. It returns an error naming the setting
// that is missing or wrong.
func New(env api.Env, deps Deps) (http.Handler, error) {
	cfg := config{validateTimeout: 15 * time.Second, maxWait: 200 * time.Second, allow: map[string]bool{},
		statusBase: strings.TrimSuffix(env.BaseURL, "/") + "/runs/"}
	cfg.validateURL = env.Getenv("NOTEBOOK_VALIDATE_URL")
	if cfg.validateURL == "" {
		if env.BaseURL == "" {
			return nil, fmt.Errorf("NOTEBOOK_VALIDATE_URL is not set and the app's own URL is unknown (set WEBSITE_HOSTNAME or NBTRACE_BASE_URL)")
		}
		cfg.validateURL = strings.TrimSuffix(env.BaseURL, "/") + "/validate"
	}
	var err error
	if cfg.validateURL, err = api.HTTPURLSetting("NOTEBOOK_VALIDATE_URL", cfg.validateURL); err != nil {
		return nil, err
	}
	if cfg.validateTimeout, err = api.DurationSetting(env.Getenv, "NOTEBOOK_VALIDATE_TIMEOUT", cfg.validateTimeout, time.Millisecond, time.Minute); err != nil {
		return nil, err
	}
	if cfg.maxWait, err = api.DurationSetting(env.Getenv, "NOTEBOOK_MAX_WAIT", cfg.maxWait, time.Second, 220*time.Second); err != nil {
		return nil, err
	}
	list := env.Getenv("NOTEBOOK_PARAMETER_ALLOWLIST")
	if list == "" {
		list = "extract_seconds,transform_seconds,load_seconds"
	}
	for _, k := range strings.Split(list, ",") {
		if k = strings.TrimSpace(k); k != "" {
			if slices.Contains(reserved, strings.ToLower(k)) {
				return nil, fmt.Errorf("NOTEBOOK_PARAMETER_ALLOWLIST: %q is set by nbtrace and cannot be allowed", k)
			}
			cfg.allow[k] = true
		}
	}
	mp := env.MeterProvider
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	started, _ := mp.Meter("github.com/nbtrace/nbtrace/functions/notebook").Int64Counter("nbtrace.databricks.runs.started",
		metric.WithDescription("Runs of the notebook job started (a retried request that gets the same run counts again)."), metric.WithUnit("{run}"))
	h := &handler{cfg: cfg, deps: deps, client: env.HTTPClient, started: started,
		tracer: env.TracerProvider.Tracer("github.com/nbtrace/nbtrace/functions/notebook"),
		prop:   propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})}
	return api.HandlerFunc(h.serve), nil
}

type handler struct {
	cfg     config
	started metric.Int64Counter
	deps    Deps
	client  *http.Client
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	wait, err := h.waitFor(r.URL.Query())
	if err != nil {
		return err
	}
	token, err := idempotencyToken(r, h.deps.Runs.JobID())
	if err != nil {
		return err
	}
	req, err := api.Decode[Request](r)
	if err != nil {
		return err
	}
	if problems := checkParameters(req.Parameters, h.cfg.allow); len(problems) > 0 {
		return &api.Error{Code: api.EUNPROCESSABLE, Message: "the request is not valid", Fields: problems}
	}
	if err := h.validate(ctx, r, req); err != nil {
		return err
	}
	runID, err := h.runNow(ctx, req, token)
	if err != nil {
		return err
	}
	resp := Accepted{RunID: runID, TraceID: api.TraceID(ctx), StatusURL: h.cfg.statusBase + strconv.FormatInt(runID, 10), IdempotencyToken: token}
	status := http.StatusAccepted
	var run *jobs.Run
	if wait > 0 {
		run, _, err = h.deps.Runs.WaitRun(ctx, runID, wait)
	} else {
		run, err = h.deps.Runs.GetRun(ctx, runID)
	}
	if err == nil && run != nil {
		st := jobrun.StatusOf(run)
		resp.RunPageURL, resp.Run = run.RunPageUrl, &st
		if st.Ended {
			h.deps.Recorder.Record(run)
			if wait > 0 {
				status = http.StatusOK
			}
		}
	} else if err != nil {
		// The run was started; not knowing its state yet is not a failure.
		slog.WarnContext(ctx, "reading the new run failed", "run_id", runID, "error", err)
	}
	w.Header().Set("Location", resp.StatusURL)
	api.Encode(w, status, resp)
	return nil
}

// waitFor parses ?wait= (a Go duration or whole seconds); a longer wait is
// cut to maxWait, which keeps the request under the HTTP limit.
func (h *handler) waitFor(q url.Values) (time.Duration, error) {
	if !q.Has("wait") {
		return 0, nil
	}
	v := q.Get("wait")
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, serr := strconv.Atoi(v)
		if serr != nil {
			return 0, &api.Error{Code: api.EINVALID, Message: fmt.Sprintf("wait=%q is not a duration such as 30s", v), Fields: map[string]string{"wait": "must be a duration such as 30s"}}
		}
		d = time.Duration(secs) * time.Second
	}
	if d < 0 {
		return 0, &api.Error{Code: api.EINVALID, Message: "wait must not be negative", Fields: map[string]string{"wait": "must not be negative"}}
	}
	return min(d, h.cfg.maxWait), nil
}

// MaxIdempotencyKey bounds the Idempotency-Key header.
const MaxIdempotencyKey = 255

// idempotencyToken derives the run-now token: from the caller's
// Idempotency-Key, else from the host's invocation id, hashed with the job
// id into Databricks' 64 characters. The same key gets the same run.
func idempotencyToken(r *http.Request, jobID int64) (string, error) {
	key := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	if len(r.Header.Values("Idempotency-Key")) > 0 { // present, even if empty
		if key == "" || len(key) > MaxIdempotencyKey || strings.ContainsFunc(key, func(c rune) bool { return c < 0x20 || c > 0x7e }) {
			return "", &api.Error{Code: api.EINVALID, Message: fmt.Sprintf("Idempotency-Key must be 1 to %d printable ASCII characters", MaxIdempotencyKey),
				Fields: map[string]string{"Idempotency-Key": "must be 1 to 255 printable ASCII characters"}}
		}
	} else {
		key = "invocation:" + api.InvocationID(r.Context())
		if key == "invocation:" {
			return "", &api.Error{Code: api.EINVALID, Message: "no Idempotency-Key header and no invocation id to derive one from"}
		}
	}
	sum := sha256.Sum256([]byte(strconv.FormatInt(jobID, 10) + "\x00" + key))
	return "nbt-" + hex.EncodeToString(sum[:])[:60], nil
}

// validate calls the validate function through the host. The caller's
// function key goes along, since validate needs one too.
func (h *handler) validate(ctx context.Context, caller *http.Request, req Request) error {
	body, err := json.Marshal(req.validateBody())
	if err != nil {
		return fmt.Errorf("encode validate request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.validateTimeout)
	defer cancel()
	vreq, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.validateURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build validate request: %w", err)
	}
	vreq.Header.Set("Content-Type", "application/json")
	// The key goes in the header, never in the URL, which the CLIENT span
	// records (url.full).
	key := caller.Header.Get("X-Functions-Key")
	if key == "" {
		key = caller.URL.Query().Get("code")
	}
	if key != "" {
		vreq.Header.Set("X-Functions-Key", key)
	}
	res, err := h.client.Do(vreq)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &api.Error{Code: api.ETIMEOUT, Dependency: "validate", Message: fmt.Sprintf("validate did not answer within %s", h.cfg.validateTimeout), Err: err}
		}
		return &api.Error{Code: api.EDEPENDENCY, Dependency: "validate", Message: "validate could not be reached", Err: err}
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode == http.StatusOK {
		return nil
	}
	var p api.Problem
	_ = json.Unmarshal(data, &p)
	var ext map[string]any
	_ = json.Unmarshal(data, &ext)
	switch {
	case res.StatusCode >= 400 && res.StatusCode < 500 && res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden && p.Code != "":
		// The request itself is not valid: validate's verdict, as is.
		e := &api.Error{Code: p.Code, Message: "validation failed: " + p.Detail, Fields: p.Errors}
		if checks, ok := ext["checks"]; ok {
			e.Extensions = map[string]any{"checks": checks}
		}
		return e
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return &api.Error{Code: api.EDEPENDENCY, Dependency: "validate", Message: fmt.Sprintf("validate refused the call (%d): call notebook with a host key (x-functions-key), which validate accepts too", res.StatusCode)}
	default:
		// What went wrong behind validate keeps its kind: a timeout stays
		// 504, an unavailable service 503 with its Retry-After.
		e := &api.Error{Code: api.EDEPENDENCY, Dependency: "validate", Message: fmt.Sprintf("validate answered %d", res.StatusCode)}
		switch {
		case res.StatusCode == http.StatusGatewayTimeout || p.Code == api.ETIMEOUT:
			e.Code = api.ETIMEOUT
		case res.StatusCode == http.StatusServiceUnavailable:
			e.Code = api.EUNAVAILABLE
			e.RetryAfter, _ = api.ParseRetryAfter(res.Header.Get("Retry-After"), time.Now())
		}
		if p.Dependency != "" {
			e.Message += " (" + p.Dependency + ": " + p.Detail + ")"
		}
		return e
	}
}

// runNow starts the job inside a PRODUCER span whose context goes into the
// job parameters.
func (h *handler) runNow(ctx context.Context, req Request, token string) (int64, error) {
	jobID := h.deps.Runs.JobID()
	ctx, span := h.tracer.Start(ctx, "run-now job "+strconv.FormatInt(jobID, 10), trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.Int64("databricks.job.id", jobID), attribute.String("peer.service", "databricks")))
	defer span.End()
	params := map[string]string{"dataset": req.Dataset, "date": req.Date, "row_count": ""}
	if req.RowCount != nil {
		params["row_count"] = strconv.FormatInt(*req.RowCount, 10)
	}
	for k, v := range req.Parameters {
		params[k] = v
	}
	carrier := propagation.MapCarrier{}
	h.prop.Inject(ctx, carrier)
	params["traceparent"] = carrier.Get("traceparent")
	params["tracestate"] = carrier.Get("tracestate") // always sent, so no default ever applies
	if b := carrier.Get("baggage"); b != "" {
		params["baggage"] = b
	}
	size, _ := json.Marshal(params)
	if len(size) > MaxParameterBytes {
		err := &api.Error{Code: api.EINVALID, Message: fmt.Sprintf("the job parameters would take %d bytes; Databricks allows %d", len(size), MaxParameterBytes),
			Fields: map[string]string{"parameters": fmt.Sprintf("all job parameters together must stay under %d bytes of JSON", MaxParameterBytes)}}
		span.SetStatus(codes.Error, err.Message)
		return 0, err
	}
	runID, err := h.deps.Runs.RunNow(ctx, params, token)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "run-now failed")
		return 0, err
	}
	span.SetAttributes(attribute.Int64("databricks.run.id", runID))
	h.started.Add(ctx, 1)
	return runID, nil
}
