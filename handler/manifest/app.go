package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// App is a loaded function app: host.json and its enabled functions.
type App struct {
	Host      Host
	Functions []Function // sorted by name
	// Disabled names the functions whose function.json disables them.
	Disabled []string
}

// Function returns the function named name, compared case-insensitively as
// the host compares function names.
func (a *App) Function(name string) (Function, bool) {
	for _, f := range a.Functions {
		if strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return Function{}, false
}

// Load reads host.json and every */function.json in fsys, the app root, as
// the host does: each folder directly under the root that holds a
// function.json is a function named after the folder; other folders are
// ignored. It returns one error listing every problem found.
func Load(fsys fs.FS) (*App, error) {
	data, err := fs.ReadFile(fsys, "host.json")
	if err != nil {
		return nil, fmt.Errorf("read host.json: %w", err)
	}
	host, err := ParseHost(data)
	if err != nil {
		return nil, err
	}
	matches, err := fs.Glob(fsys, "*/function.json")
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	sort.Strings(matches)
	app := &App{Host: host}
	var errs []error
	seen := map[string]string{}
	for _, m := range matches {
		name := path.Dir(m)
		data, err := fs.ReadFile(fsys, m)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", m, err))
			continue
		}
		f, err := ParseFunction(name, data, host.Forwarding || host.Proxying)
		if errors.Is(err, ErrDisabled) {
			app.Disabled = append(app.Disabled, name)
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if other, dup := seen[strings.ToLower(name)]; dup {
			errs = append(errs, fmt.Errorf("functions %q and %q differ only in case", other, name))
			continue
		}
		seen[strings.ToLower(name)] = name
		app.Functions = append(app.Functions, f)
	}
	errs = append(errs, routeConflicts(app.Functions)...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return app, nil
}

// routeConflicts reports functions whose route templates are the same (up
// to parameter names and case) and which share a method: the host could not
// tell them apart.
func routeConflicts(fns []Function) []error {
	var errs []error
	shape := func(r Route) string {
		var b strings.Builder
		for _, s := range r.segments {
			switch {
			case s.catchAll:
				b.WriteString("/{*}")
			case s.param != "":
				b.WriteString("/{" + s.constraint + "}")
			default:
				b.WriteString("/" + strings.ToLower(s.literal))
			}
		}
		return b.String()
	}
	for i := range fns {
		for j := i + 1; j < len(fns); j++ {
			if shape(fns[i].Route) != shape(fns[j].Route) {
				continue
			}
			overlap := len(fns[i].Methods) == 0 || len(fns[j].Methods) == 0
			for _, m := range fns[i].Methods {
				overlap = overlap || fns[j].Allows(m)
			}
			if overlap {
				errs = append(errs, fmt.Errorf("functions %q and %q have the same route %q", fns[i].Name, fns[j].Name, fns[i].Route.Template))
			}
		}
	}
	return errs
}

// Match finds the function serving method and the escaped URL path (with
// its route prefix) as the host routes requests. It returns the function and
// its route values. When a function's route matches but its methods do not
// allow method, found is false and methodMismatch is true.
func (a *App) Match(method, urlPath string) (f Function, values map[string]string, found, methodMismatch bool) {
	rest := strings.TrimPrefix(urlPath, "/")
	if p := a.Host.RoutePrefix; p != "" {
		head, tail, _ := strings.Cut(rest, "/")
		if !strings.EqualFold(head, p) {
			return Function{}, nil, false, false
		}
		rest = tail
	}
	for _, fn := range a.Functions {
		v, ok := fn.Route.Match(rest)
		if !ok {
			continue
		}
		if !fn.Allows(method) {
			methodMismatch = true
			continue
		}
		return fn, v, true, false
	}
	return Function{}, nil, false, methodMismatch
}
