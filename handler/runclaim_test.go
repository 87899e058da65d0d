package main

import (
	"os"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/handler/manifest"
)

// TestRunClaimSettingsFailStartUp: a wrong storage setting fails the start
// of the functions that record runs, naming the setting; a right one
// starts them without a call to storage (none is listening here).
func TestRunClaimSettingsFailStartUp(t *testing.T) {
	app, err := manifest.Load(os.DirFS(appRoot(t)))
	if err != nil {
		t.Fatal(err)
	}
	build := func(more map[string]string) error {
		_, err := buildFunctions(app, api.Env{Getenv: appEnv(more), BaseURL: "http://x/api", TracerProvider: noop.NewTracerProvider()})
		return err
	}
	err = build(map[string]string{"AzureWebJobsStorage__accountName": "stnbtrace", "AzureWebJobsStorage__credential": "key"})
	for _, want := range []string{`function "notebook": AzureWebJobsStorage__credential`, `function "runs": AzureWebJobsStorage__credential`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	if err := build(map[string]string{"AzureWebJobsStorage__blobServiceUri": "https://127.0.0.1:1/",
		"AzureWebJobsStorage__credential": "managedidentity", "AzureWebJobsStorage__clientId": "c1"}); err != nil {
		t.Errorf("identity-based storage: %v", err)
	}
	if err := build(map[string]string{"AzureWebJobsStorage": "UseDevelopmentStorage=true"}); err != nil {
		t.Errorf("UseDevelopmentStorage=true: %v", err)
	}
}
