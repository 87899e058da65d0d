package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// Mode is the protocol the host uses to invoke one function.
type Mode int

const (
	// Payload is the host's default: POST /{FunctionName} with a JSON
	// Data/Metadata payload, answered with Outputs/Logs/ReturnValue.
	Payload Mode = iota
	// Forwarding hands the original HTTP request over at its original path
	// and relays the handler's plain HTTP answer.
	Forwarding
)

func (m Mode) String() string {
	if m == Forwarding {
		return "forwarding"
	}
	return "payload"
}

// ReturnBinding is the name of an output binding bound to the function's
// return value.
const ReturnBinding = "$return"

// Function is one HTTP-triggered function.
type Function struct {
	// Name is the function's folder name; the host calls POST /{Name} in
	// payload mode.
	Name string
	// Trigger is the name of the httpTrigger binding: the key of the request
	// in the payload's Data.
	Trigger string
	// Methods lists the allowed HTTP methods in upper case; empty means all.
	Methods []string
	// Route is the route template without the route prefix, the function's
	// name when function.json sets none.
	Route Route
	// AuthLevel is anonymous, function or admin (function by default).
	AuthLevel string
	// Output is the name of the http output binding: "res", "$return", ….
	Output string
	// Mode is the protocol the host uses for this function.
	Mode Mode
}

// Allows reports whether the function accepts method.
func (f Function) Allows(method string) bool {
	return len(f.Methods) == 0 || slices.Contains(f.Methods, strings.ToUpper(method))
}

// Path returns the public path pattern of the function, such as
// /api/runs/{runId}, for the given route prefix.
func (f Function) Path(routePrefix string) string {
	if routePrefix == "" {
		return "/" + f.Route.Template
	}
	return "/" + routePrefix + "/" + f.Route.Template
}

type binding struct {
	Type      string   `json:"type"`
	Direction string   `json:"direction"`
	Name      string   `json:"name"`
	Methods   []string `json:"methods"`
	Route     *string  `json:"route"`
	AuthLevel string   `json:"authLevel"`
}

type functionJSON struct {
	Disabled json.RawMessage `json:"disabled"`
	Bindings []binding       `json:"bindings"`
}

// validName applies the host's FunctionNameValidationRegex,
// (?i)^[a-z][a-z0-9_\-]{0,127}$, without a regexp: compiling that bounded
// repetition took half a millisecond of every cold start.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 128 || !isASCIILetter(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isASCIILetter(c) && !('0' <= c && c <= '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// Binding names are identifiers in the host's binding metadata validation.
var validBindingName = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*|\$return)$`)

var knownMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodTrace,
}

// ErrDisabled is returned by ParseFunction for a function whose
// function.json says "disabled": true; the host does not load it.
var ErrDisabled = errors.New("function is disabled")

// ParseFunction parses the function.json of the function named name.
// The forwarding argument is the host.json switch; the returned Mode applies
// the host's rule (FunctionMetadataExtensions.IsHttpInAndOutFunction): only a
// function with exactly one httpTrigger input and one http output is
// forwarded.
//
// It returns ErrDisabled for a disabled function and an error naming the
// problem for anything the handler cannot serve: another trigger type, extra
// bindings, no http output, an unknown method or an unsupported route.
func ParseFunction(name string, data []byte, forwarding bool) (Function, error) {
	if !validName(name) {
		return Function{}, fmt.Errorf("function name %q is not a valid function name", name)
	}
	var fj functionJSON
	if err := json.Unmarshal(data, &fj); err != nil {
		return Function{}, fmt.Errorf("%s/function.json: %w", name, err)
	}
	if disabled(fj.Disabled) {
		return Function{}, ErrDisabled
	}
	f := Function{Name: name, AuthLevel: "function"}
	var trigger, output *binding
	for i := range fj.Bindings {
		b := &fj.Bindings[i]
		if !validBindingName.MatchString(b.Name) {
			return Function{}, fmt.Errorf("%s/function.json: binding name %q is not valid", name, b.Name)
		}
		switch {
		case strings.EqualFold(b.Type, "httpTrigger") && strings.EqualFold(b.Direction, "in"):
			if trigger != nil {
				return Function{}, fmt.Errorf("%s/function.json: more than one httpTrigger binding", name)
			}
			trigger = b
		case strings.EqualFold(b.Type, "http") && strings.EqualFold(b.Direction, "out"):
			if output != nil {
				return Function{}, fmt.Errorf("%s/function.json: more than one http output binding", name)
			}
			output = b
		default:
			return Function{}, fmt.Errorf("%s/function.json: binding %q of type %q (direction %q) is not served by this handler: only httpTrigger in and http out are",
				name, b.Name, b.Type, b.Direction)
		}
	}
	if trigger == nil {
		return Function{}, fmt.Errorf("%s/function.json: no httpTrigger binding", name)
	}
	if output == nil {
		return Function{}, fmt.Errorf("%s/function.json: no http output binding", name)
	}
	if trigger.Name == ReturnBinding {
		return Function{}, fmt.Errorf("%s/function.json: the trigger cannot be named %s", name, ReturnBinding)
	}
	f.Trigger, f.Output = trigger.Name, output.Name
	for _, m := range trigger.Methods {
		m = strings.ToUpper(strings.TrimSpace(m))
		if !slices.Contains(knownMethods, m) {
			return Function{}, fmt.Errorf("%s/function.json: unknown HTTP method %q", name, m)
		}
		if !slices.Contains(f.Methods, m) {
			f.Methods = append(f.Methods, m)
		}
	}
	switch lvl := strings.ToLower(trigger.AuthLevel); lvl {
	case "":
	case "anonymous", "function", "admin":
		f.AuthLevel = lvl
	default:
		return Function{}, fmt.Errorf("%s/function.json: authLevel %q is not anonymous, function or admin", name, trigger.AuthLevel)
	}
	tmpl := name
	if trigger.Route != nil && strings.TrimSpace(*trigger.Route) != "" {
		tmpl = *trigger.Route
	}
	route, err := ParseRoute(tmpl)
	if err != nil {
		return Function{}, fmt.Errorf("%s/function.json: %w", name, err)
	}
	f.Route = route
	if forwarding {
		// The host's IsHttpInAndOutFunction rule: exactly one httpTrigger
		// and one http output, which every function served here has.
		f.Mode = Forwarding
	}
	return f, nil
}

// disabled reads "disabled" as the host does: a boolean, or a string that
// is "true" (the host also resolves an app setting name; not supported).
func disabled(raw json.RawMessage) bool {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	var s string
	return json.Unmarshal(raw, &s) == nil && strings.EqualFold(s, "true")
}
