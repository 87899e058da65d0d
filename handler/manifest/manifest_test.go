package manifest

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

const hostOK = `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`

func TestParseHost(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Host
		wantErr string
	}{
		{"defaults", hostOK, Host{RoutePrefix: "api", ExecutablePath: "handler"}, ""},
		{"forwarding and prefix", `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h"},"enableForwardingHttpRequest":true},"extensions":{"http":{"routePrefix":"/v1/"}}}`,
			Host{RoutePrefix: "v1", ExecutablePath: "h", Forwarding: true}, ""},
		{"empty prefix", `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h"}},"extensions":{"http":{"routePrefix":""}}}`,
			Host{RoutePrefix: "", ExecutablePath: "h"}, ""},
		{"proxying", `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h"},"enableProxyingHttpRequest":true}}`,
			Host{RoutePrefix: "api", ExecutablePath: "h", Proxying: true}, ""},
		{"case-insensitive keys", `{"Version":"2.0","CustomHandler":{"Description":{"DefaultExecutablePath":"h"}}}`,
			Host{RoutePrefix: "api", ExecutablePath: "h"}, ""},
		{"no version", `{"customHandler":{"description":{"defaultExecutablePath":"h"}}}`, Host{}, `"version" must be "2.0"`},
		{"no custom handler", `{"version":"2.0"}`, Host{}, "defaultExecutablePath is required"},
		{"not JSON", `{`, Host{}, "host.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHost([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if (got.Mode() == Forwarding) != (tt.want.Forwarding || tt.want.Proxying) {
				t.Errorf("Mode() = %v", got.Mode())
			}
		})
	}
}

func TestParseFunction(t *testing.T) {
	const out = `{"type":"http","direction":"out","name":"res"}`
	tests := []struct {
		name    string
		json    string
		fwd     bool
		check   func(t *testing.T, f Function)
		wantErr string
	}{
		{"minimal", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},` + out + `]}`, false, func(t *testing.T, f Function) {
			if f.Trigger != "req" || f.Output != "res" || f.AuthLevel != "function" || f.Route.Template != "fn" || len(f.Methods) != 0 || f.Mode != Payload {
				t.Errorf("%+v", f)
			}
			if !f.Allows("PATCH") {
				t.Error("no methods should allow every method")
			}
		}, ""},
		{"methods, route, $return, forwarding", `{"bindings":[{"type":"HttpTrigger","direction":"IN","name":"req","methods":["get","POST","get"],"authLevel":"Anonymous","route":"/runs/{runId:long}"},{"type":"http","direction":"out","name":"$return"}]}`, true, func(t *testing.T, f Function) {
			if diff := cmp.Diff([]string{"GET", "POST"}, f.Methods); diff != "" {
				t.Error(diff)
			}
			if f.AuthLevel != "anonymous" || f.Output != ReturnBinding || f.Route.Template != "runs/{runId:long}" || f.Mode != Forwarding {
				t.Errorf("%+v", f)
			}
			if f.Path("api") != "/api/runs/{runId:long}" || f.Path("") != "/runs/{runId:long}" {
				t.Errorf("Path = %s", f.Path("api"))
			}
			if f.Allows("DELETE") || !f.Allows("get") {
				t.Error("Allows is wrong")
			}
		}, ""},
		{"disabled", `{"disabled":true,"bindings":[]}`, false, nil, ErrDisabled.Error()},
		{"disabled as string", `{"disabled":"true","bindings":[]}`, false, nil, ErrDisabled.Error()},
		{"queue trigger", `{"bindings":[{"type":"queueTrigger","direction":"in","name":"msg"},` + out + `]}`, false, nil, `type "queueTrigger"`},
		{"extra output", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},` + out + `,{"type":"queue","direction":"out","name":"q"}]}`, false, nil, `"queue"`},
		{"no trigger", `{"bindings":[` + out + `]}`, false, nil, "no httpTrigger"},
		{"no output", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"}]}`, false, nil, "no http output"},
		{"two triggers", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"a"},{"type":"httpTrigger","direction":"in","name":"b"},` + out + `]}`, false, nil, "more than one httpTrigger"},
		{"bad method", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["FETCH"]},` + out + `]}`, false, nil, `unknown HTTP method "FETCH"`},
		{"bad auth level", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"system"},` + out + `]}`, false, nil, "authLevel"},
		{"bad binding name", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"a-b"},` + out + `]}`, false, nil, "binding name"},
		{"optional route value", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"x/{id?}"},` + out + `]}`, false, nil, "optional"},
		{"not JSON", `{"bindings":`, false, nil, "function.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFunction("fn", []byte(tt.json), tt.fwd)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, f)
		})
	}
	if _, err := ParseFunction("1bad", []byte(`{}`), false); err == nil {
		t.Error("a function name starting with a digit was accepted")
	}
}

func TestRoute(t *testing.T) {
	tests := []struct {
		tmpl    string
		path    string
		want    map[string]string // nil: no match
		wantErr string
	}{
		{tmpl: "validate", path: "validate", want: map[string]string{}},
		{tmpl: "validate", path: "Validate/", want: map[string]string{}},
		{tmpl: "validate", path: "validate/x"},
		{tmpl: "runs/{runId:long}", path: "runs/9007199254740993", want: map[string]string{"runId": "9007199254740993"}},
		{tmpl: "runs/{runId:long}", path: "runs/abc"},
		{tmpl: "runs/{runId:int}", path: "runs/9007199254740993"},
		{tmpl: "simulate/{service:alpha}", path: "simulate/a", want: map[string]string{"service": "a"}},
		{tmpl: "simulate/{service:alpha}", path: "simulate/a1"},
		{tmpl: "items/{id:guid}", path: "items/6F1C2A9E-0D1B-4C36-9A51-0C6BD4F0A111", want: map[string]string{"id": "6F1C2A9E-0D1B-4C36-9A51-0C6BD4F0A111"}},
		{tmpl: "flags/{on:bool}", path: "flags/True", want: map[string]string{"on": "True"}},
		{tmpl: "files/{*path}", path: "files/a/b%20c", want: map[string]string{"path": "a/b c"}},
		{tmpl: "files/{**path}", path: "files", want: map[string]string{"path": ""}},
		{tmpl: "a/{x}", path: "a/%zz"},
		{tmpl: "a/{x}", path: "a/"},
		{tmpl: "{a}/{A}", wantErr: "appears twice"},
		{tmpl: "files/{*p}/more", wantErr: "must be the last"},
		{tmpl: "x/{id:min(1)}", wantErr: "not supported"},
		{tmpl: "x/{id=1}", wantErr: "default values"},
		{tmpl: "x/file.{ext}", wantErr: "mixes literal"},
		{tmpl: "x//y", wantErr: "empty segment"},
		{tmpl: "~/x", wantErr: "leading ~"},
		{tmpl: "/", wantErr: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl+" "+tt.path, func(t *testing.T) {
			r, err := ParseRoute(tt.tmpl)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, ok := r.Match(tt.path)
			if ok != (tt.want != nil) {
				t.Fatalf("Match(%q) = %v, %v; want match %v", tt.path, got, ok, tt.want != nil)
			}
			if diff := cmp.Diff(tt.want, got); ok && diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func fn(bindings string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(`{"bindings":[` + bindings + `]}`)}
}

const (
	trigger = `{"type":"httpTrigger","direction":"in","name":"req","methods":["post"]}`
	httpOut = `{"type":"http","direction":"out","name":"res"}`
)

func TestLoad(t *testing.T) {
	app, err := Load(fstest.MapFS{
		"host.json":              {Data: []byte(hostOK)},
		"b/function.json":        fn(trigger + "," + httpOut),
		"a/function.json":        fn(trigger + "," + httpOut),
		"off/function.json":      {Data: []byte(`{"disabled":true}`)},
		"notes/readme.md":        {Data: []byte("not a function")},
		"a/nested/function.json": fn("broken"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range app.Functions {
		names = append(names, f.Name)
	}
	if diff := cmp.Diff([]string{"a", "b"}, names); diff != "" {
		t.Errorf("functions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"off"}, app.Disabled); diff != "" {
		t.Errorf("disabled (-want +got):\n%s", diff)
	}
	if f, ok := app.Function("A"); !ok || f.Name != "a" {
		t.Error("Function is not case-insensitive")
	}
	if f, vals, ok, _ := app.Match("POST", "/API/b"); !ok || f.Name != "b" || len(vals) != 0 {
		t.Errorf("Match(/API/b) = %v %v %v", f.Name, vals, ok)
	}
	if _, _, ok, mismatch := app.Match("GET", "/api/b"); ok || !mismatch {
		t.Error("GET /api/b should be a method mismatch")
	}
	if _, _, ok, mismatch := app.Match("POST", "/other/b"); ok || mismatch {
		t.Error("/other/b should not match")
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	_, err := Load(fstest.MapFS{
		"host.json":        {Data: []byte(hostOK)},
		"q/function.json":  fn(`{"type":"queueTrigger","direction":"in","name":"m"},` + httpOut),
		"x/function.json":  fn(trigger + `,{"type":"http","direction":"out","name":"res"},{"type":"blob","direction":"in","name":"b"}`),
		"r1/function.json": fn(`{"type":"httpTrigger","direction":"in","name":"req","route":"same/{a}"},` + httpOut),
		"r2/function.json": fn(`{"type":"httpTrigger","direction":"in","name":"req","route":"SAME/{b}","methods":["get"]},` + httpOut),
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`q/function.json`, `x/function.json`, `functions "r1" and "r2" have the same route`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := Load(fstest.MapFS{}); err == nil || !strings.Contains(err.Error(), "host.json") {
		t.Errorf("no host.json: err = %v", err)
	}
}

// FuzzParseFunction: the function.json loader never panics, and a function
// it accepts has a route that matches its own template's literal form.
func FuzzParseFunction(f *testing.F) {
	f.Add("validate", []byte(`{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["post"],"authLevel":"function","route":"validate"},{"type":"http","direction":"out","name":"res"}]}`), false)
	f.Add("simulate", []byte(`{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["post"],"authLevel":"anonymous","route":"simulate/{service:alpha}"},{"type":"http","direction":"out","name":"$return"}]}`), true)
	f.Add("runs", []byte(`{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"runs/{runId:long}/{*rest}"},{"type":"http","direction":"out","name":"res"}]}`), false)
	f.Add("q", []byte(`{"disabled":"true","bindings":[{"type":"queueTrigger"}]}`), false)
	f.Fuzz(func(t *testing.T, name string, data []byte, fwd bool) {
		fn, err := ParseFunction(name, data, fwd)
		if err != nil {
			if errors.Is(err, ErrDisabled) || err.Error() != "" {
				return
			}
			t.Fatal("empty error message")
		}
		if fn.Trigger == "" || fn.Output == "" || fn.Route.Template == "" {
			t.Fatalf("accepted an incomplete function: %+v", fn)
		}
		if (fn.Mode == Forwarding) != fwd {
			t.Fatalf("mode %v with forwarding %v", fn.Mode, fwd)
		}
		_, _ = fn.Route.Match(fn.Route.Template)
	})
}

// FuzzRoute: parsing and matching never panic; values only come from
// parameters the template declares.
func FuzzRoute(f *testing.F) {
	f.Add("runs/{runId:long}", "runs/42")
	f.Add("files/{*path}", "files/a/b")
	f.Add("a/{x:guid}/{y:bool}", "a/6f1c2a9e-0d1b-4c36-9a51-0c6bd4f0a111/false")
	f.Fuzz(func(t *testing.T, tmpl, path string) {
		r, err := ParseRoute(tmpl)
		if err != nil {
			return
		}
		vals, ok := r.Match(path)
		if !ok {
			return
		}
		params := map[string]bool{}
		for _, p := range r.Params() {
			params[p] = true
		}
		for k := range vals {
			if !params[k] {
				t.Fatalf("value for undeclared parameter %q", k)
			}
		}
	})
}

// TestValidNameIsTheHostsRegex: validName accepts exactly what the host's
// FunctionNameValidationRegex does.
func TestValidNameIsTheHostsRegex(t *testing.T) {
	re := regexp.MustCompile(`(?i)^[a-z][a-z0-9_\-]{0,127}$`)
	alphabet := []string{"a", "Z", "0", "_", "-", ".", " ", "é", "$"}
	cases := []string{"", strings.Repeat("a", 128), strings.Repeat("a", 129), "a" + strings.Repeat("-", 127)}
	for _, x := range alphabet {
		cases = append(cases, x)
		for _, y := range alphabet {
			cases = append(cases, x+y)
			for _, z := range alphabet {
				cases = append(cases, x+y+z)
			}
		}
	}
	for _, c := range cases {
		if got, want := validName(c), re.MatchString(c); got != want {
			t.Errorf("validName(%q) = %v, the host's regex says %v", c, got, want)
		}
	}
}
