package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/functions/jobrun"
	"github.com/nbtrace/nbtrace/functions/notebook"
	"github.com/nbtrace/nbtrace/functions/openapi"
	"github.com/nbtrace/nbtrace/functions/runs"
	"github.com/nbtrace/nbtrace/functions/simulate"
	"github.com/nbtrace/nbtrace/functions/validate"
	"github.com/nbtrace/nbtrace/handler/databricks"
	"github.com/nbtrace/nbtrace/handler/internal/telemetry"
	"github.com/nbtrace/nbtrace/handler/manifest"
	"github.com/nbtrace/nbtrace/handler/runclaim"
)

// maker builds one function from the environment and what functions share.
type maker func(env api.Env, s *shared) (http.Handler, error)

// implementations maps each function's folder name to the Go code that
// implements it. Everything else about a function (methods, route, auth
// level, output binding) is read from its function.json.
var implementations = map[string]maker{
	"notebook": func(env api.Env, s *shared) (http.Handler, error) {
		dbx, err := s.databricks(env)
		if err != nil {
			return nil, err
		}
		rec, err := s.recorder(env)
		if err != nil {
			return nil, err
		}
		return notebook.New(env, notebook.Deps{Runs: dbx, Recorder: rec})
	},
	"runs": func(env api.Env, s *shared) (http.Handler, error) {
		dbx, err := s.databricks(env)
		if err != nil {
			return nil, err
		}
		rec, err := s.recorder(env)
		if err != nil {
			return nil, err
		}
		return runs.New(env, dbx, rec)
	},
	"openapi":  func(env api.Env, _ *shared) (http.Handler, error) { return openapi.NewDocument(env) },
	"simulate": func(env api.Env, _ *shared) (http.Handler, error) { return simulate.New(env) },
	"ui":       func(env api.Env, _ *shared) (http.Handler, error) { return openapi.NewUI(env) },
	"validate": func(env api.Env, _ *shared) (http.Handler, error) { return validate.New(env) },
}

// shared holds what several functions use, made once: the Databricks
// client (whose SDK client is itself built on first use) and the recorder
// of finished runs (whose storage client too).
type shared struct {
	dbx    *databricks.Client
	dbxErr error
	rec    *jobrun.Recorder
	recErr error
}

func (s *shared) databricks(env api.Env) (*databricks.Client, error) {
	if s.dbx == nil && s.dbxErr == nil {
		cfg, err := databricks.ConfigFromEnv(env.Getenv)
		if err != nil {
			s.dbxErr = err
		} else {
			s.dbx = databricks.New(cfg, env.TracerProvider, env.Propagator, databricks.WithLogger(env.Logger))
		}
	}
	return s.dbx, s.dbxErr
}

// recorder records each finished run once across the app's instances: it
// claims the run in the app's storage account (AzureWebJobsStorage) first.
// Without a storage account it guards in memory only, and says so.
func (s *shared) recorder(env api.Env) (*jobrun.Recorder, error) {
	if s.rec == nil && s.recErr == nil {
		log := env.Logger
		if log == nil {
			log = slog.Default()
		}
		cfg, err := runclaim.ConfigFromEnv(env.Getenv)
		switch {
		case err != nil:
			s.recErr = err
		case cfg.Configured():
			s.rec = jobrun.NewRecorder(env.TracerProvider, env.MeterProvider,
				jobrun.WithClaims(runclaim.New(cfg), cfg.Timeout), jobrun.WithLogger(log))
		default:
			log.Info("no storage account (AzureWebJobsStorage): finished runs are recorded once per instance, " +
				"which is once only while the app runs on one instance")
			s.rec = jobrun.NewRecorder(env.TracerProvider, env.MeterProvider, jobrun.WithLogger(log))
		}
	}
	return s.rec, s.recErr
}

// AllSettings lists every app setting the handler reads, in one list: the
// README's table, local.settings.json.template and the infrastructure are
// checked against it.
func AllSettings() []api.Setting {
	return slices.Concat(handlerSettings, telemetry.Settings, validate.Settings, simulate.Settings,
		notebook.Settings, databricks.Settings, runclaim.Settings)
}

// buildFunctions pairs the app's functions with their implementations and
// builds each. It returns one error listing every function.json without Go
// code, every implementation without a function.json, and every function
// whose settings are wrong.
func buildFunctions(app *manifest.App, env api.Env) (map[string]http.Handler, error) {
	var errs []error
	s := &shared{}
	handlers := make(map[string]http.Handler, len(app.Functions))
	for _, fn := range app.Functions {
		mk, ok := implementations[fn.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("function %q has a function.json but no Go implementation (add it to implementations in handler/functions.go)", fn.Name))
			continue
		}
		h, err := mk(env, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("function %q: %w", fn.Name, err))
			continue
		}
		handlers[fn.Name] = h
	}
	var names []string
	for name := range implementations {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := app.Function(name); !ok && !slices.Contains(app.Disabled, name) {
			errs = append(errs, fmt.Errorf("function %q has a Go implementation but no %s/function.json in the app root", name, name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return handlers, nil
}
