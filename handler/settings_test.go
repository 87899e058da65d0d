package main

import (
	"flag"
	"fmt"
	"github.com/nbtrace/nbtrace/functions/api"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tailscale/hujson"
)

var update = flag.Bool("update", false, "rewrite the README's settings table and local.settings.json.template from AllSettings")

const (
	readmePath   = "../README.md"
	templatePath = "../local.settings.json.template"
	tableStart   = "<!-- settings:start (generated from AllSettings by go test ./handler -update) -->"
	tableEnd     = "<!-- settings:end -->"
)

var provisionText = map[api.Provision]string{
	api.ByInfra: "set by infra/", api.ByPlatform: "set by the platform", api.LocalOnly: "never (local only)", api.Optional: "optional",
}

// platformSet reports whether Azure or the Functions host sets the setting.
func platformSet(def string) bool { return strings.HasPrefix(def, "(set by") }

func settingsTable() string {
	var b strings.Builder
	b.WriteString("| Setting | Default | In Azure | What it does |\n|---|---|---|---|\n")
	for _, s := range AllSettings() {
		def := s.Default
		if def == "" {
			def = "(unset)"
		} else if !platformSet(def) {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", s.Name, def, provisionText[s.Azure], strings.ReplaceAll(s.Doc, "|", "\\|"))
	}
	return b.String()
}

func settingsTemplate() string {
	var b strings.Builder
	b.WriteString(`{
  // Copy this file to local.settings.json (git-ignored). "go run ./dev" reads
  // it; "go run ./dev stage -local -o dist" copies it into dist, where
  // "func start --script-root dist" reads it (Core Tools reads only the app
  // root's). Each value in Values becomes an environment variable of the
  // handler, as app settings do in Azure. Comments and trailing commas are
  // allowed here, as Core Tools allows them. Empty values are left unset, so
  // the defaults in the README apply.
  // Generated from the handler's settings list: go test ./handler -update
  "IsEncrypted": false,
  "Values": {
    // Core Tools needs this to run a custom handler (Flex Consumption sets
    // the runtime in the infrastructure instead).
    "FUNCTIONS_WORKER_RUNTIME": "custom",
`)
	for _, s := range AllSettings() {
		fmt.Fprintf(&b, "\n    // %s\n", s.Doc)
		if platformSet(s.Default) {
			fmt.Fprintf(&b, "    // Set by %s.\n    // \"%s\": \"\",\n", strings.TrimPrefix(strings.Trim(s.Default, "()"), "set by "), s.Name)
			continue
		}
		if s.Default != "" {
			fmt.Fprintf(&b, "    // Default: %s\n", s.Default)
		}
		fmt.Fprintf(&b, "    %q: \"\",\n", s.Name)
	}
	b.WriteString(`  },
  "Host": {
    "LocalHttpPort": 7071
  }
}
`)
	return b.String()
}

// TestSettingsDocumented: the README's table and the settings template are
// generated from AllSettings, the one list of every setting the handler
// reads, and must match it.
func TestSettingsDocumented(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(readme), tableStart)
	_, after, ok2 := strings.Cut(rest, tableEnd)
	if !ok1 || !ok2 {
		t.Fatalf("README.md has no %s … %s section", tableStart, tableEnd)
	}
	wantReadme := before + tableStart + "\n" + settingsTable() + tableEnd + after
	wantTemplate := settingsTemplate()
	if *update {
		if err := os.WriteFile(readmePath, []byte(wantReadme), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(templatePath, []byte(wantTemplate), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(wantReadme, string(readme)); diff != "" && !*update {
		t.Errorf("README settings table is stale; run go test ./handler -update (-want +got):\n%s", diff)
	}
	tmpl, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantTemplate, string(tmpl)); diff != "" && !*update {
		t.Errorf("local.settings.json.template is stale; run go test ./handler -update (-want +got):\n%s", diff)
	}
	if _, err := hujson.Standardize(tmpl); err != nil {
		t.Errorf("the template is not valid JSON with comments: %v", err)
	}
	seen := map[string]bool{}
	for _, s := range AllSettings() {
		if seen[s.Name] {
			t.Errorf("setting %s is listed twice", s.Name)
		}
		seen[s.Name] = true
		if s.Doc == "" {
			t.Errorf("setting %s has no description", s.Name)
		}
		if _, ok := provisionText[s.Azure]; !ok {
			t.Errorf("setting %s does not say who sets it in Azure", s.Name)
		}
		if platformSet(s.Default) != (s.Azure == api.ByPlatform) {
			t.Errorf("setting %s: default %q and provision %q disagree", s.Name, s.Default, s.Azure)
		}
	}
}
