package runclaim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/nbtrace/nbtrace/dev/azurite"
	"github.com/nbtrace/nbtrace/dev/entra"
	"github.com/nbtrace/nbtrace/functions/jobrun"
)

func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func claimWithin(t *testing.T, s *Store, jobID, runID int64) (bool, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Claim(ctx, jobID, runID)
}

// fakeBlob answers every request with answer, counting them.
type fakeBlob struct {
	requests atomic.Int32
	answer   func(w http.ResponseWriter, r *http.Request)
}

func (f *fakeBlob) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	_, _ = io.Copy(io.Discard, r.Body)
	f.answer(w, r)
}

// storageError answers as Azure Storage does: the code in x-ms-error-code
// and in an XML body.
func storageError(status int, code string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		if code != "" {
			w.Header().Set("x-ms-error-code", code)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>fake</Message></Error>`, code)
	}
}

func TestNothingIsDialledUntilFirstClaim(t *testing.T) {
	f := &fakeBlob{answer: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) }}
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg, err := ConfigFromEnv(func(k string) string {
		if k == "AzureWebJobsStorage" {
			return azurite.ConnectionString(srv.URL)
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	s := New(cfg)
	if n := f.requests.Load(); n != 0 {
		t.Fatalf("ConfigFromEnv and New made %d requests, want none", n)
	}
	if won, err := claimWithin(t, s, 1, 2); !won || err != nil {
		t.Fatalf("claim = %v, %v", won, err)
	}
	if n := f.requests.Load(); n != 1 {
		t.Errorf("the claim made %d requests, want 1", n)
	}
}

// TestClaimsInAzurite: without its container, a claim fails and says so;
// with it, the first claim of a run wins, a second loses, other runs and
// other jobs' runs are claims of their own; the blob says which instance
// claimed it.
func TestClaimsInAzurite(t *testing.T) {
	az := azurite.StartForTest(t, root(t))
	a := New(Config{ConnectionString: az.ConnectionString, Instance: "instance-a"})
	won, err := claimWithin(t, a, 3, 9)
	var ce *jobrun.ClaimError
	if won || !errors.As(err, &ce) || ce.Type != "ContainerNotFound" {
		t.Fatalf("claim without the container = %v, %v; want a ContainerNotFound ClaimError", won, err)
	}
	if err := az.CreateContainer(context.Background(), Container); err != nil {
		t.Fatal(err)
	}
	b := New(Config{ConnectionString: az.ConnectionString, Instance: "instance-b"})
	for _, step := range []struct {
		store       *Store
		job, run    int64
		wantClaimed bool
	}{
		{a, 3, 9, true},
		{a, 3, 9, false},
		{b, 3, 9, false},
		{b, 3, 10, true},
		{a, 4, 9, true},
	} {
		won, err := claimWithin(t, step.store, step.job, step.run)
		if err != nil || won != step.wantClaimed {
			t.Errorf("claim of job %d run %d by %s = %v, %v; want %v", step.job, step.run, step.store.cfg.Instance, won, err, step.wantClaimed)
		}
	}
	c, err := container.NewClientFromConnectionString(az.ConnectionString, Container, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.NewBlobClient("3/10").DownloadStream(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `"instance":"instance-b"`) || !strings.Contains(string(body), `"claimedAt":`) {
		t.Errorf("claim blob = %s", body)
	}
}

// TestConcurrentClaimsInAzurite: 20 claims of one run at once, from two
// stores (two instances), many runs over: one wins each run.
func TestConcurrentClaimsInAzurite(t *testing.T) {
	az := azurite.StartForTest(t, root(t))
	if err := az.CreateContainer(context.Background(), Container); err != nil {
		t.Fatal(err)
	}
	stores := []*Store{New(Config{ConnectionString: az.ConnectionString}), New(Config{ConnectionString: az.ConnectionString})}
	for run := int64(1); run <= 10; run++ {
		var wins, losses atomic.Int32
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				won, err := claimWithin(t, stores[i%2], 7, run)
				switch {
				case err != nil:
					t.Errorf("run %d: %v", run, err)
				case won:
					wins.Add(1)
				default:
					losses.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 || losses.Load() != 19 {
			t.Errorf("run %d: %d wins, %d losses; want 1 and 19", run, wins.Load(), losses.Load())
		}
	}
}

// TestClaimsThatCannotBeMade: a store that refuses, fails, is slow or is
// not there gives a *jobrun.ClaimError that says why, after one request
// (no retries: see Store.container).
func TestClaimsThatCannotBeMade(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String()
	closed.Close()
	for _, tc := range []struct {
		name     string
		answer   func(http.ResponseWriter, *http.Request) // nil: nothing listens
		timeout  time.Duration
		sas      bool // a connection string with a SAS, which no error shows
		wantType string
	}{
		{name: "throttled", answer: storageError(http.StatusServiceUnavailable, "ServerBusy"), wantType: "ServerBusy"},
		{name: "the identity lacks the role", answer: storageError(http.StatusForbidden, "AuthorizationPermissionMismatch"), wantType: "AuthorizationPermissionMismatch"},
		{name: "a failure without a code", answer: storageError(http.StatusInternalServerError, ""), wantType: "500"},
		{name: "too slow", answer: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, timeout: 100 * time.Millisecond, wantType: "timeout"},
		{name: "down", wantType: "unreachable"},
		{name: "down, signed with a SAS", sas: true, wantType: "unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := closedURL
			f := &fakeBlob{answer: tc.answer}
			if tc.answer != nil {
				srv := httptest.NewServer(f)
				defer srv.Close()
				url = srv.URL
			}
			cs := azurite.ConnectionString(url)
			if tc.sas {
				cs = "BlobEndpoint=" + url + "/devstoreaccount1;SharedAccessSignature=sv=2025-11-05&sp=rcw&sig=SECRETSIG"
			}
			s := New(Config{ConnectionString: cs})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if tc.timeout > 0 {
				ctx, cancel = context.WithTimeout(context.Background(), tc.timeout)
			}
			defer cancel()
			began := time.Now()
			won, err := s.Claim(ctx, 1, 2)
			var ce *jobrun.ClaimError
			if won || !errors.As(err, &ce) || ce.Type != tc.wantType {
				t.Fatalf("claim = %v, %v; want a ClaimError of type %s", won, err, tc.wantType)
			}
			if strings.Contains(err.Error(), "SECRETSIG") {
				t.Errorf("the error shows the SAS: %v", err)
			}
			if tc.answer != nil && f.requests.Load() != 1 {
				t.Errorf("%d requests, want 1", f.requests.Load())
			}
			if tc.timeout > 0 && time.Since(began) > tc.timeout+time.Second {
				t.Errorf("the claim took %s with a limit of %s", time.Since(began), tc.timeout)
			}
		})
	}
}

// TestClaimAsTheManagedIdentity: in Azure the claim is signed in as the
// app's user-assigned identity (AzureWebJobsStorage__credential and
// __clientId), with a token for Azure Storage from the App Service
// identity endpoint, over HTTPS to the configured blob endpoint.
func TestClaimAsTheManagedIdentity(t *testing.T) {
	tenant := entra.NewTenant()
	app := tenant.AddManagedIdentity("id-nbtrace")
	other := tenant.AddManagedIdentity("id-other")
	idSrv := httptest.NewServer(tenant.NewIdentityEndpoint("header-secret", app, other))
	defer idSrv.Close()
	t.Setenv("IDENTITY_ENDPOINT", idSrv.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "header-secret")

	var mu sync.Mutex
	created := map[string]bool{}
	var problems []string
	blobs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		claims, err := tenant.Verify(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), "https://storage.azure.com")
		switch {
		case err != nil:
			problems = append(problems, "token: "+err.Error())
			storageError(http.StatusUnauthorized, "InvalidAuthenticationInfo")(w, r)
		case claims.AppID != app.ClientID:
			problems = append(problems, "signed in as "+claims.AppID)
			storageError(http.StatusForbidden, "AuthorizationPermissionMismatch")(w, r)
		case r.Method != http.MethodPut || r.Header.Get("If-None-Match") != "*" || r.Header.Get("x-ms-blob-type") != "BlockBlob":
			problems = append(problems, fmt.Sprintf("%s %s If-None-Match %q", r.Method, r.URL.Path, r.Header.Get("If-None-Match")))
			storageError(http.StatusBadRequest, "InvalidInput")(w, r)
		case created[r.URL.Path]:
			storageError(http.StatusConflict, "BlobAlreadyExists")(w, r)
		default:
			created[r.URL.Path] = true
			w.WriteHeader(http.StatusCreated)
		}
	}))
	defer blobs.Close()

	cfg, err := ConfigFromEnv(func(k string) string {
		return map[string]string{
			"AzureWebJobsStorage__blobServiceUri": blobs.URL, "AzureWebJobsStorage__credential": "managedidentity",
			"AzureWebJobsStorage__clientId": app.ClientID,
		}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	s := New(cfg)
	s.transport = blobs.Client()
	if won, err := claimWithin(t, s, 3, 9); !won || err != nil {
		t.Errorf("first claim = %v, %v", won, err)
	}
	if won, err := claimWithin(t, s, 3, 9); won || err != nil {
		t.Errorf("second claim = %v, %v", won, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 || !created["/"+Container+"/3/9"] {
		t.Errorf("problems %v; blobs created %v", problems, created)
	}
}
