package manifest

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Route is a parsed route template of an httpTrigger, such as runs/{runId:long}.
//
// It supports the subset of ASP.NET Core route templates that maps cleanly
// to whole path segments: literal segments, {name}, {name:constraint} with
// the constraints alpha, int, long, bool and guid, and a last catch-all
// segment {*name}. Literals match case-insensitively, as they do in the host.
// Anything else (optional or default values, several parameters in one
// segment, other constraints) is rejected when the route is parsed.
type Route struct {
	// Template is the normalised template, without leading or trailing "/".
	Template string
	segments []segment
}

type segment struct {
	literal    string
	param      string
	constraint string
	catchAll   bool
}

var paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var constraints = map[string]func(string) bool{
	"alpha": regexp.MustCompile(`^[A-Za-z]+$`).MatchString,
	"int": func(s string) bool {
		_, err := strconv.ParseInt(s, 10, 32)
		return err == nil
	},
	"long": func(s string) bool {
		_, err := strconv.ParseInt(s, 10, 64)
		return err == nil
	},
	"bool": func(s string) bool { return strings.EqualFold(s, "true") || strings.EqualFold(s, "false") },
	"guid": regexp.MustCompile(`^(?i)(\{)?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}(\})?$`).MatchString,
}

// ParseRoute parses a route template. It returns an error naming the part of
// the template that is not supported.
func ParseRoute(tmpl string) (Route, error) {
	t := strings.Trim(strings.TrimSpace(tmpl), "/")
	if strings.HasPrefix(t, "~") {
		return Route{}, fmt.Errorf("route %q: a leading ~ is not supported", tmpl)
	}
	if t == "" {
		return Route{}, fmt.Errorf("route %q is empty", tmpl)
	}
	r := Route{Template: t}
	seen := map[string]bool{}
	parts := strings.Split(t, "/")
	for i, p := range parts {
		switch {
		case p == "":
			return Route{}, fmt.Errorf("route %q: empty segment", tmpl)
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") && strings.Count(p, "{") == 1:
			s, err := parseParam(p[1 : len(p)-1])
			if err != nil {
				return Route{}, fmt.Errorf("route %q: %w", tmpl, err)
			}
			if s.catchAll && i != len(parts)-1 {
				return Route{}, fmt.Errorf("route %q: catch-all {*%s} must be the last segment", tmpl, s.param)
			}
			if seen[strings.ToLower(s.param)] {
				return Route{}, fmt.Errorf("route %q: parameter %q appears twice", tmpl, s.param)
			}
			seen[strings.ToLower(s.param)] = true
			r.segments = append(r.segments, s)
		case strings.ContainsAny(p, "{}?*"):
			return Route{}, fmt.Errorf("route %q: segment %q mixes literal text and parameters, which is not supported", tmpl, p)
		default:
			r.segments = append(r.segments, segment{literal: p})
		}
	}
	return r, nil
}

func parseParam(s string) (segment, error) {
	var seg segment
	if rest, ok := strings.CutPrefix(s, "**"); ok {
		seg.catchAll, s = true, rest
	} else if rest, ok := strings.CutPrefix(s, "*"); ok {
		seg.catchAll, s = true, rest
	}
	name, constraint, hasConstraint := strings.Cut(s, ":")
	if strings.ContainsAny(name, "?=") {
		return segment{}, fmt.Errorf("parameter {%s}: optional parameters and default values are not supported", s)
	}
	if !paramName.MatchString(name) {
		return segment{}, fmt.Errorf("parameter {%s}: %q is not a valid parameter name", s, name)
	}
	seg.param = name
	if hasConstraint {
		if seg.catchAll {
			return segment{}, fmt.Errorf("parameter {%s}: a catch-all cannot have a constraint", s)
		}
		if _, ok := constraints[constraint]; !ok {
			return segment{}, fmt.Errorf("parameter {%s}: constraint %q is not supported (alpha, int, long, bool, guid are)", s, constraint)
		}
		seg.constraint = constraint
	}
	return seg, nil
}

// Params lists the route's parameter names in order.
func (r Route) Params() []string {
	var names []string
	for _, s := range r.segments {
		if s.param != "" {
			names = append(names, s.param)
		}
	}
	return names
}

// Match matches an escaped URL path without the route prefix (such as
// "runs/42") against the route and returns the unescaped parameter values.
func (r Route) Match(path string) (map[string]string, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	values := map[string]string{}
	for i, s := range r.segments {
		if s.catchAll {
			rest, err := url.PathUnescape(strings.Join(parts[i:], "/"))
			if err != nil {
				return nil, false
			}
			values[s.param] = rest
			return values, true
		}
		if i >= len(parts) {
			return nil, false
		}
		v, err := url.PathUnescape(parts[i])
		if err != nil || v == "" {
			return nil, false
		}
		if s.param == "" {
			if !strings.EqualFold(v, s.literal) {
				return nil, false
			}
			continue
		}
		if s.constraint != "" && !constraints[s.constraint](v) {
			return nil, false
		}
		values[s.param] = v
	}
	if len(parts) != len(r.segments) {
		return nil, false
	}
	return values, true
}
