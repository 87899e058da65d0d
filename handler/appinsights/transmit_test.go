package appinsights

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

func envs(n int) []Envelope {
	out := make([]Envelope, n)
	for i := range out {
		out[i] = newEnvelope(MessageName, "k", map[string]string{}, "MessageData", &MessageData{Ver: 2, Message: fmt.Sprint(i)}, "t")
	}
	return out
}

func start(t *testing.T, in *ingestion, o Options) (*Transmitter, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(in)
	t.Cleanup(srv.Close)
	if o.Backoff == 0 {
		o.Backoff = 10 * time.Millisecond
	}
	tx := NewTransmitter(Connection{InstrumentationKey: "k", IngestionEndpoint: srv.URL + "/"}, o)
	t.Cleanup(func() { _ = tx.Shutdown(context.Background()) })
	return tx, srv
}

func flush(t *testing.T, tx *Transmitter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tx.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSendsGzipBatches(t *testing.T) {
	in := &ingestion{}
	tx, _ := start(t, in, Options{MaxBatch: 4})
	tx.Enqueue(envs(10))
	flush(t, tx)
	if got := len(in.Envelopes()); got != 10 {
		t.Fatalf("%d envelopes arrived, want 10", got)
	}
	if len(in.Requests()) < 3 {
		t.Errorf("%d posts for 10 envelopes in batches of 4", len(in.Requests()))
	}
	for _, r := range in.Requests() {
		if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Authorization") != "" {
			t.Errorf("headers %v", r.Header)
		}
	}
	if s := tx.Stats(); s.Sent != 10 || s.DroppedRejected+s.DroppedQueueFull != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestPartialSuccessRetriesOnlyRetriableItems: of a 206, the items with a
// retriable status are sent again, the others dropped and counted.
func TestPartialSuccessRetriesOnlyRetriableItems(t *testing.T) {
	in := &ingestion{}
	in.Answer = func(n, attempt int) (int, string, map[string]string) {
		if attempt == 1 {
			return http.StatusPartialContent, `{"itemsReceived":4,"itemsAccepted":2,"errors":[{"index":1,"statusCode":500,"message":"later"},{"index":3,"statusCode":400,"message":"bad field"}]}`, nil
		}
		return http.StatusOK, "", nil
	}
	tx, _ := start(t, in, Options{})
	tx.Enqueue(envs(4))
	flush(t, tx)
	got := in.Envelopes()
	// 206 kept all four (the fake stores what it received), then the
	// retriable one came again.
	if len(got) != 5 {
		t.Fatalf("%d envelopes received, want 4 then 1", len(got))
	}
	retried := got[4]["data"].(map[string]any)["baseData"].(map[string]any)["message"]
	if retried != "1" {
		t.Errorf("retried item %v, want item 1", retried)
	}
	if s := tx.Stats(); s.Sent != 3 || s.DroppedRejected != 1 || s.Retried != 1 {
		t.Errorf("stats %+v, want 3 sent, 1 rejected, 1 retried", s)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	in := &ingestion{}
	var first, second atomic.Int64
	in.Answer = func(n, attempt int) (int, string, map[string]string) {
		if attempt == 1 {
			first.Store(time.Now().UnixNano())
			return http.StatusTooManyRequests, `{}`, map[string]string{"Retry-After": "1"}
		}
		second.Store(time.Now().UnixNano())
		return http.StatusOK, "", nil
	}
	tx, _ := start(t, in, Options{})
	tx.Enqueue(envs(2))
	flush(t, tx)
	if gap := time.Duration(second.Load() - first.Load()); gap < time.Second-10*time.Millisecond {
		t.Errorf("retried after %v, Retry-After asked for 1s", gap)
	}
	if s := tx.Stats(); s.Sent != 2 || s.Retried != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestGivesUpAndCounts(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		wantPosts int
	}{
		{"server error: retried, then dropped", 500, 3},
		{"bad request: dropped at once", 400, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &ingestion{Answer: func(int, int) (int, string, map[string]string) { return tt.status, `{}`, nil }}
			tx, _ := start(t, in, Options{MaxAttempts: 3})
			tx.Enqueue(envs(5))
			flush(t, tx)
			if len(in.Requests()) != tt.wantPosts {
				t.Errorf("%d posts, want %d", len(in.Requests()), tt.wantPosts)
			}
			if s := tx.Stats(); s.DroppedRejected != 5 || s.Sent != 0 {
				t.Errorf("stats %+v, want 5 dropped", s)
			}
		})
	}
}

// TestNeverBlocks: with the endpoint down or hanging, queuing returns at
// once, a full queue drops and counts, and a flush gives up with its
// context.
func TestNeverBlocks(t *testing.T) {
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(hang) // before Close, which waits for the hanging request
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // nothing listens there any more
	for name, url := range map[string]string{"slow": slow.URL, "down": down.URL} {
		t.Run(name, func(t *testing.T) {
			tx := NewTransmitter(Connection{InstrumentationKey: "k", IngestionEndpoint: url + "/"},
				Options{MaxQueue: 100, MaxBatch: 10, Timeout: 5 * time.Second, Backoff: time.Hour})
			start := time.Now()
			for range 50 {
				tx.Enqueue(envs(10))
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("queuing 500 envelopes took %v", d)
			}
			if s := tx.Stats(); s.DroppedQueueFull < 390 {
				t.Errorf("stats %+v: the queue of 100 should have dropped the rest", s)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := tx.Flush(ctx); err == nil {
				t.Error("flush reported success with the endpoint unavailable")
			}
		})
	}
}

type fakeCredential struct{ calls atomic.Int32 }

func (f *fakeCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.calls.Add(1)
	if len(o.Scopes) != 1 || o.Scopes[0] != MonitorScope {
		return azcore.AccessToken{}, fmt.Errorf("scopes %v", o.Scopes)
	}
	return azcore.AccessToken{Token: fmt.Sprintf("tok-%d", f.calls.Load()), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestEntraIDToken(t *testing.T) {
	in := &ingestion{}
	in.Answer = func(n, attempt int) (int, string, map[string]string) {
		if attempt == 2 {
			return http.StatusUnauthorized, `{}`, nil
		}
		return http.StatusOK, "", nil
	}
	cred := &fakeCredential{}
	tx, _ := start(t, in, Options{Credential: cred})
	for range 3 {
		tx.Enqueue(envs(1))
		flush(t, tx)
	}
	var auth []string
	for _, r := range in.Requests() {
		auth = append(auth, r.Header.Get("Authorization"))
	}
	// One token until the 401, then a fresh one.
	if strings.Join(auth, ",") != "Bearer tok-1,Bearer tok-1,Bearer tok-2,Bearer tok-2" {
		t.Errorf("Authorization headers %v", auth)
	}
}

func TestConnectionStrings(t *testing.T) {
	c, err := ParseConnectionString("InstrumentationKey=abc;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com;LiveEndpoint=https://x")
	if err != nil || c.InstrumentationKey != "abc" || c.TrackURL() != "https://westeurope-5.in.applicationinsights.azure.com/v2.1/track" {
		t.Errorf("%+v %v", c, err)
	}
	if c, _ := ParseConnectionString("InstrumentationKey=abc"); c.TrackURL() != DefaultIngestionEndpoint+"v2.1/track" {
		t.Errorf("default endpoint: %s", c.TrackURL())
	}
	if _, err := ParseConnectionString("IngestionEndpoint=https://x/;secret=1"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("err = %v", err)
	}
	for s, want := range map[string]Auth{"": {}, "Authorization=AAD": {EntraID: true}, "Authorization=AAD;ClientId=123": {EntraID: true, ClientID: "123"}} {
		if got, err := ParseAuthenticationString(s); err != nil || got != want {
			t.Errorf("%q: %+v %v", s, got, err)
		}
	}
	if _, err := ParseAuthenticationString("Authorization=Basic"); err == nil {
		t.Error("Authorization=Basic accepted")
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0.00:00:00.000", 1500 * time.Microsecond: "0.00:00:00.002",
		26*time.Hour + 3*time.Minute + 4*time.Second + 5*time.Millisecond: "1.02:03:04.005"} {
		if got := formatDuration(d); got != want {
			t.Errorf("%v = %s, want %s", d, got, want)
		}
	}
}
