package main

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/functions/simulate"
	"github.com/nbtrace/nbtrace/functions/validate"
	"github.com/nbtrace/nbtrace/handler/internal/telemetry"
	"github.com/nbtrace/nbtrace/handler/manifest"
)

// implementations maps each function's folder name to the Go code that
// implements it. Everything else about a function (methods, route, auth
// level, output binding) is read from its function.json.
var implementations = map[string]api.Maker{
	"simulate": simulate.New,
	"validate": validate.New,
}

// AllSettings lists every app setting the handler reads, in one list: the
// README's table, local.settings.json.template and the infrastructure are
// checked against it.
func AllSettings() []api.Setting {
	return slices.Concat(handlerSettings, telemetry.Settings, validate.Settings, simulate.Settings)
}

// buildFunctions pairs the app's functions with their implementations and
// builds each. It returns one error listing every function.json without Go
// code, every implementation without a function.json, and every function
// whose settings are wrong.
func buildFunctions(app *manifest.App, env api.Env) (map[string]http.Handler, error) {
	var errs []error
	handlers := make(map[string]http.Handler, len(app.Functions))
	for _, fn := range app.Functions {
		mk, ok := implementations[fn.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("function %q has a function.json but no Go implementation (add it to implementations in handler/functions.go)", fn.Name))
			continue
		}
		h, err := mk(env)
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
