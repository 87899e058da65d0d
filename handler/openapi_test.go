package main

import (
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/functions/jobrun"
	"github.com/nbtrace/nbtrace/functions/notebook"
	"github.com/nbtrace/nbtrace/functions/openapi"
	"github.com/nbtrace/nbtrace/functions/validate"
	"github.com/nbtrace/nbtrace/handler/manifest"
)

type openAPIDoc struct {
	Paths      map[string]map[string]json.RawMessage
	Components struct {
		Schemas map[string]struct {
			Properties map[string]struct {
				Enum []string
			}
		}
	}
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(openapi.Document, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestOpenAPIMatchesTheFunctions: the document's paths and methods are the
// function.json routes and methods, no more, no fewer.
func TestOpenAPIMatchesTheFunctions(t *testing.T) {
	app, err := manifest.Load(os.DirFS(appRoot(t)))
	if err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\{\*{0,2}([A-Za-z_][A-Za-z0-9_]*)(:[a-z]+)?\}`)
	var want, got []string
	for _, fn := range app.Functions {
		path := param.ReplaceAllString(fn.Path(app.Host.RoutePrefix), "{$1}")
		methods := fn.Methods
		if len(methods) == 0 {
			methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
		}
		for _, m := range methods {
			want = append(want, strings.ToLower(m)+" "+path)
		}
	}
	for path, ops := range loadOpenAPI(t).Paths {
		for m := range ops {
			got = append(got, m+" "+path)
		}
	}
	sort.Strings(want)
	sort.Strings(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("operations (-function.json +openapi.json):\n%s", diff)
	}
}

// TestOpenAPISchemasMatchTheGoTypes: each schema's properties are the JSON
// names of the Go type the handlers decode or encode.
func TestOpenAPISchemasMatchTheGoTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	pairs := map[string]any{
		"ValidateRequest":  validate.Request{},
		"ValidateResponse": validate.Response{},
		"Check":            validate.Check{},
		"ServiceVerdict":   validate.ServiceVerdict{},
		"NotebookRequest":  notebook.Request{},
		"Accepted":         notebook.Accepted{},
		"RunStatus":        jobrun.Status{},
		"Task":             jobrun.Task{},
		"Problem":          api.Problem{},
	}
	// Problem's extension members, set through api.Error.Extensions.
	extensions := []string{"checks", "databricksErrorCode", "databricksStatus"}
	for name, v := range pairs {
		schema, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("openapi.json has no schema %s", name)
			continue
		}
		var want, got []string
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if tag != "" && tag != "-" {
				want = append(want, tag)
			}
		}
		if name == "Problem" {
			want = append(want, extensions...)
		}
		for p := range schema.Properties {
			got = append(got, p)
		}
		sort.Strings(want)
		sort.Strings(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("schema %s (-Go +openapi.json):\n%s", name, diff)
		}
	}
	var codes []string
	for _, c := range api.Codes() {
		codes = append(codes, string(c))
	}
	if enum := doc.Components.Schemas["Problem"].Properties["code"].Enum; !slices.Equal(codes, enum) {
		t.Errorf("Problem.code enum %v, want api.Codes() %v", enum, codes)
	}
}
