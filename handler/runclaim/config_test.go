package runclaim

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConfigFromEnv(t *testing.T) {
	const key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	azurite := "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + key + ";BlobEndpoint=http://127.0.0.1:4242/devstoreaccount1;"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{name: "nothing: no store", env: map[string]string{}, want: Config{Timeout: 2 * time.Second}},
		{name: "Azure, as infra/ sets it", env: map[string]string{
			"AzureWebJobsStorage__accountName": "stnbtrace", "AzureWebJobsStorage__blobServiceUri": "https://stnbtrace.blob.core.windows.net/",
			"AzureWebJobsStorage__credential": "managedidentity", "AzureWebJobsStorage__clientId": "c1", "WEBSITE_INSTANCE_ID": "i1",
		}, want: Config{ServiceURL: "https://stnbtrace.blob.core.windows.net/", ManagedIdentity: true, ClientID: "c1", Instance: "i1", Timeout: 2 * time.Second}},
		{name: "account name only, credential in another case", env: map[string]string{"AzureWebJobsStorage__accountName": "stnbtrace", "AzureWebJobsStorage__credential": "ManagedIdentity"},
			want: Config{ServiceURL: "https://stnbtrace.blob.core.windows.net/", ManagedIdentity: true, Timeout: 2 * time.Second}},
		{name: "service URI without a slash, developer's sign-in", env: map[string]string{"AzureWebJobsStorage__blobServiceUri": "https://st.blob.core.windows.net", "NBTRACE_RUN_CLAIM_TIMEOUT": "500ms"},
			want: Config{ServiceURL: "https://st.blob.core.windows.net/", Timeout: 500 * time.Millisecond}},
		{name: "a connection string wins, as for the host", env: map[string]string{"AzureWebJobsStorage": azurite, "AzureWebJobsStorage__accountName": "stnbtrace"},
			want: Config{ConnectionString: azurite, Timeout: 2 * time.Second}},
		{name: "UseDevelopmentStorage=true is Azurite's default port", env: map[string]string{"AzureWebJobsStorage": "UseDevelopmentStorage=true"},
			want: Config{ConnectionString: developmentStorage, Timeout: 2 * time.Second}},
		{name: "not a connection string", env: map[string]string{"AzureWebJobsStorage": "AccountKey=secret-not-base64"}, wantErr: "AzureWebJobsStorage is not a storage connection string"},
		{name: "bad service URI", env: map[string]string{"AzureWebJobsStorage__blobServiceUri": "stnbtrace"}, wantErr: "AzureWebJobsStorage__blobServiceUri"},
		{name: "a token over plain HTTP", env: map[string]string{"AzureWebJobsStorage__blobServiceUri": "http://stnbtrace.blob.core.windows.net/", "AzureWebJobsStorage__credential": "managedidentity"}, wantErr: "not HTTPS"},
		{name: "bad account", env: map[string]string{"AzureWebJobsStorage__accountName": "St_Nbtrace"}, wantErr: "AzureWebJobsStorage__accountName"},
		{name: "unknown credential", env: map[string]string{"AzureWebJobsStorage__accountName": "st1", "AzureWebJobsStorage__credential": "msi"}, wantErr: "AzureWebJobsStorage__credential"},
		{name: "bad timeout", env: map[string]string{"NBTRACE_RUN_CLAIM_TIMEOUT": "1h"}, wantErr: "NBTRACE_RUN_CLAIM_TIMEOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ConfigFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("the error shows the setting's value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if got.Configured() != (tc.want.ServiceURL != "" || tc.want.ConnectionString != "") {
				t.Errorf("Configured = %v", got.Configured())
			}
		})
	}
}
