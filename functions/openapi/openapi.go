// Package openapi serves the API's contract: the openapi function answers
// the OpenAPI 3.1 document (openapi.json beside this file, the one place it
// is kept), and the ui function a browsable page of it, Swagger UI from the
// npm package swagger-ui-dist (5.35.0, in swagger-ui/), embedded in the
// binary: nothing is fetched at run time.
package openapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/nbtrace/nbtrace/functions/api"
)

// Document is the OpenAPI document.
//
//go:embed openapi.json
var Document []byte

var (
	//go:embed swagger-ui/swagger-ui-bundle.js
	bundleJS []byte
	//go:embed swagger-ui/swagger-ui.css
	bundleCSS []byte
)

// NewDocument builds the openapi function. It returns an error when the
// embedded document is not JSON.
func NewDocument(api.Env) (http.Handler, error) {
	if !json.Valid(Document) {
		return nil, fmt.Errorf("the embedded openapi.json is not JSON")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(Document)
	}), nil
}

var page = template.Must(template.New("ui").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>nbtrace API</title>
<link rel="stylesheet" href="{{.Base}}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{{.Base}}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({ url: {{.Spec}}, dom_id: "#swagger-ui", deepLinking: true, tryItOutEnabled: true });
</script>
</body>
</html>
`))

// NewUI builds the ui function: /api/ui is the page, /api/ui/<asset> its
// assets. The page finds the document at the app's route prefix.
func NewUI(env api.Env) (http.Handler, error) {
	assets := map[string]struct {
		body  []byte
		ctype string
	}{
		"swagger-ui-bundle.js": {bundleJS, "text/javascript; charset=utf-8"},
		"swagger-ui.css":       {bundleCSS, "text/css; charset=utf-8"},
	}
	return api.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		path := strings.Trim(r.PathValue("path"), "/")
		if path == "" || path == "index.html" {
			// Relative to the page's own path, so it works behind any host
			// name and route prefix.
			prefix := strings.TrimSuffix(strings.TrimSuffix(r.URL.Path, "/index.html"), "/")
			base := prefix
			if !strings.HasSuffix(prefix, "/ui") {
				base = "/api/ui"
			}
			var buf bytes.Buffer
			if err := page.Execute(&buf, map[string]string{"Base": base, "Spec": strings.TrimSuffix(base, "/ui") + "/openapi.json"}); err != nil {
				return fmt.Errorf("render the API page: %w", err)
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(buf.Bytes())
			return nil
		}
		a, ok := assets[path]
		if !ok {
			return api.Errorf(api.ENOTFOUND, "there is no %s here", path)
		}
		w.Header().Set("Content-Type", a.ctype)
		w.Header().Set("Cache-Control", "public, max-age=86400")
		_, _ = w.Write(a.body)
		return nil
	}), nil
}
