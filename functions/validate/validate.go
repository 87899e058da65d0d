package validate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nbtrace/nbtrace/functions/api"
)

// Settings read by validate.
var Settings = []api.Setting{
	{Name: "SERVICE_A_URL", Default: "{base}/simulate/a", Doc: "URL of service A (freshness check), called with POST. Defaults to the app's own stand-in.", Azure: api.Optional},
	{Name: "SERVICE_B_URL", Default: "{base}/simulate/b", Doc: "URL of service B (quota check), called with POST. Defaults to the app's own stand-in.", Azure: api.Optional},
	{Name: "VALIDATE_SERVICE_TIMEOUT", Default: "5s", Doc: "Time limit of each call to service A or B (Go duration). A slower service answers 504.", Azure: api.Optional},
}

type service struct {
	name string
	url  string
}

// New builds the validate function. It returns an error naming the setting
// when a service URL is missing or not an http(s) URL, or the timeout is not
// a positive duration.
func New(env api.Env) (http.Handler, error) {
	var services []service
	for _, s := range []struct{ name, setting string }{{"a", "SERVICE_A_URL"}, {"b", "SERVICE_B_URL"}} {
		u, err := serviceURL(env, s.setting, s.name)
		if err != nil {
			return nil, err
		}
		services = append(services, service{name: s.name, url: u})
	}
	timeout, err := api.DurationSetting(env.Getenv, "VALIDATE_SERVICE_TIMEOUT", 5*time.Second, time.Millisecond, 5*time.Minute)
	if err != nil {
		return nil, err
	}
	return handleValidate(env.HTTPClient, services, timeout), nil
}

func serviceURL(env api.Env, setting, name string) (string, error) {
	raw := env.Getenv(setting)
	if raw == "" {
		if env.BaseURL == "" {
			return "", fmt.Errorf("%s is not set and the app's own URL is unknown (set WEBSITE_HOSTNAME or NBTRACE_BASE_URL)", setting)
		}
		raw = strings.TrimSuffix(env.BaseURL, "/") + "/simulate/" + name
	}
	return api.HTTPURLSetting(setting, raw)
}

func handleValidate(client *http.Client, services []service, timeout time.Duration) http.Handler {
	return api.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		req, err := api.Decode[Request](r)
		if err != nil {
			return err
		}
		body, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("encode service request: %w", err)
		}
		checks := make([]Check, len(services))
		errs := make([]error, len(services))
		// The calls overlap: every service but the first on a goroutine
		// of its own, the first on this one (so that 200 invocations in
		// flight hold 200 goroutines fewer).
		var wg sync.WaitGroup
		for i := 1; i < len(services); i++ {
			wg.Go(func() {
				checks[i], errs[i] = callService(r.Context(), client, services[i], body, timeout)
			})
		}
		checks[0], errs[0] = callService(r.Context(), client, services[0], body, timeout)
		wg.Wait()
		if err := dependencyError(errs); err != nil {
			return err
		}
		resp := Response{Valid: true, Checks: checks, TraceID: api.TraceID(r.Context())}
		for _, c := range checks {
			resp.Valid = resp.Valid && c.Passed
		}
		if !resp.Valid {
			return &api.Error{Code: api.EUNPROCESSABLE, Message: "a check did not pass",
				Extensions: map[string]any{"checks": checks}}
		}
		api.Encode(w, http.StatusOK, resp)
		return nil
	})
}

// callService asks one service for its verdict within timeout.
func callService(ctx context.Context, client *http.Client, s service, body []byte, timeout time.Duration) (Check, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	check := Check{Service: s.name}
	fail := func(code api.Code, msg string, cause error) (Check, error) {
		check.DurationMs = ms(time.Since(start))
		return check, &api.Error{Code: code, Message: msg, Dependency: "service-" + s.name, Err: cause}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return fail(api.EINTERNAL, "build request", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	res, err := client.Do(hreq)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fail(api.ETIMEOUT, fmt.Sprintf("service %s did not answer within %s", s.name, timeout), err)
		}
		return fail(api.EDEPENDENCY, fmt.Sprintf("service %s could not be reached", s.name), err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fail(api.ETIMEOUT, fmt.Sprintf("service %s did not answer within %s", s.name, timeout), err)
		}
		return fail(api.EDEPENDENCY, fmt.Sprintf("service %s broke off its answer", s.name), err)
	}
	if res.StatusCode != http.StatusOK {
		return fail(api.EDEPENDENCY, fmt.Sprintf("service %s answered %d", s.name, res.StatusCode), nil)
	}
	// A verdict must say whether the check passed: an answer without
	// "passed" ({} or null) is the service's fault, not the caller's.
	var v struct {
		Passed *bool  `json:"passed"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(data, &v); err != nil || v.Passed == nil {
		return fail(api.EDEPENDENCY, fmt.Sprintf("service %s answered something other than a verdict", s.name), err)
	}
	check.Passed, check.Reason, check.DurationMs = *v.Passed, v.Reason, ms(time.Since(start))
	return check, nil
}

// dependencyError folds the services' errors into one: a timeout wins over
// other failures, since it says the most about where the time went.
func dependencyError(errs []error) error {
	var chosen *api.Error
	var names []string
	for _, err := range errs {
		var e *api.Error
		if !errors.As(err, &e) {
			if err != nil {
				return err
			}
			continue
		}
		names = append(names, e.Dependency)
		if chosen == nil || (e.Code == api.ETIMEOUT && chosen.Code != api.ETIMEOUT) {
			chosen = e
		}
	}
	if chosen == nil {
		return nil
	}
	out := *chosen
	out.Dependency = strings.Join(names, ",")
	if len(names) > 1 {
		out.Message = fmt.Sprintf("%s (and %d more failed)", chosen.Message, len(names)-1)
	}
	return &out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
