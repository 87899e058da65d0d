// Package simulate is the simulate function: stand-in services A and B that
// validate calls when no real service URLs are configured, so the sample
// works locally and after deployment alike. Like the original sample's
// sleeps, each call waits a configurable latency; a configurable share of
// calls fails with 503. Service A checks freshness (the date is not in the
// future); service B checks quota (rowCount is within a limit).
package simulate

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/nbtrace/nbtrace/functions/api"
)

// Settings read by simulate.
var Settings = []api.Setting{
	{Name: "SIMULATE_LATENCY", Default: "100ms", Doc: "How long each stand-in service call takes (Go duration, at most 60s).", Azure: api.Optional},
	{Name: "SIMULATE_JITTER", Default: "0s", Doc: "A random extra latency between 0 and this, added to each call.", Azure: api.Optional},
	{Name: "SIMULATE_FAILURE_RATE", Default: "0", Doc: "Share of stand-in calls that fail with 503, from 0 to 1.", Azure: api.Optional},
	{Name: "SIMULATE_MAX_ROWS", Default: "1000000", Doc: "Service B's quota: the largest rowCount it lets pass.", Azure: api.Optional},
}

type config struct {
	latency, jitter time.Duration
	failureRate     float64
	maxRows         int64
}

// New builds the simulate function. It returns an error naming the setting
// that is not valid.
func New(env api.Env) (http.Handler, error) {
	cfg := config{latency: 100 * time.Millisecond, maxRows: 1_000_000}
	var err error
	if cfg.latency, err = api.DurationSetting(env.Getenv, "SIMULATE_LATENCY", cfg.latency, 0, time.Minute); err != nil {
		return nil, err
	}
	if cfg.jitter, err = api.DurationSetting(env.Getenv, "SIMULATE_JITTER", 0, 0, time.Minute); err != nil {
		return nil, err
	}
	if v := env.Getenv("SIMULATE_FAILURE_RATE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return nil, fmt.Errorf("SIMULATE_FAILURE_RATE: %q is not a number from 0 to 1", v)
		}
		cfg.failureRate = f
	}
	if v := env.Getenv("SIMULATE_MAX_ROWS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("SIMULATE_MAX_ROWS: %q is not a whole number of 0 or more", v)
		}
		cfg.maxRows = n
	}
	return handleSimulate(cfg, time.Now), nil
}

// request is what validate sends; unknown fields are tolerated so that a
// newer validate can send more.
type request struct {
	Date     string `json:"date"`
	RowCount *int64 `json:"rowCount"`
}

func handleSimulate(cfg config, now func() time.Time) http.Handler {
	return api.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		svc := r.PathValue("service")
		if svc != "a" && svc != "b" {
			return api.Errorf(api.ENOTFOUND, "there is no stand-in service %q; there are a and b", svc)
		}
		var req *request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req == nil {
			return api.Errorf(api.EINVALID, "the body is not a JSON object")
		}
		wait := cfg.latency
		if cfg.jitter > 0 {
			wait += rand.N(cfg.jitter)
		}
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
			return &api.Error{Code: api.EUNAVAILABLE, Message: "the call was cancelled", Err: r.Context().Err()}
		}
		if cfg.failureRate > 0 && rand.Float64() < cfg.failureRate {
			return &api.Error{Code: api.EUNAVAILABLE, Message: fmt.Sprintf("stand-in service %s failed (SIMULATE_FAILURE_RATE)", svc), RetryAfter: time.Second}
		}
		verdict := map[string]any{"passed": true}
		switch svc {
		case "a":
			if d, err := time.Parse(time.DateOnly, req.Date); err == nil && d.After(now().UTC()) {
				verdict = map[string]any{"passed": false, "reason": "the date is in the future"}
			}
		case "b":
			if req.RowCount != nil && *req.RowCount > cfg.maxRows {
				verdict = map[string]any{"passed": false, "reason": fmt.Sprintf("rowCount is over the quota of %d", cfg.maxRows)}
			}
		}
		api.Encode(w, http.StatusOK, verdict)
		return nil
	})
}
