package appinsights

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/nbtrace/nbtrace/functions/api"
)

// MonitorScope is the scope of Entra ID tokens for ingestion (with the
// double slash Azure Monitor expects).
const MonitorScope = "https://monitor.azure.com//.default"

// Options configures a Transmitter.
type Options struct {
	// Credential signs requests in with Entra ID; nil sends none.
	Credential azcore.TokenCredential
	// HTTPClient posts batches; a client with Timeout by default.
	HTTPClient *http.Client
	// Timeout of one post; 10 s by default.
	Timeout time.Duration
	// MaxQueue bounds the envelopes waiting to be sent; 8192 by default.
	// Past it new envelopes are dropped and counted.
	MaxQueue int
	// MaxBatch bounds one post; 512 envelopes by default.
	MaxBatch int
	// MaxAttempts bounds how often one batch is tried; 4 by default.
	MaxAttempts int
	// Backoff is the first wait before a retry, doubled each time; 1 s by
	// default. A longer Retry-After wins.
	Backoff time.Duration
	// MaxBackoff caps one wait; 30 s by default.
	MaxBackoff time.Duration
}

// Stats counts what happened to envelopes.
type Stats struct {
	// Sent were accepted by the ingestion endpoint.
	Sent int64
	// Retried were sent again after a retriable failure.
	Retried int64
	// DroppedQueueFull could not be queued.
	DroppedQueueFull int64
	// DroppedRejected were refused for good (400, or a non-retriable item
	// of a partial success) or ran out of attempts.
	DroppedRejected int64
}

// Transmitter sends envelopes in the background.
type Transmitter struct {
	conn   Connection
	opts   Options
	mu     sync.Mutex
	queue  []Envelope
	wake   chan struct{}
	idle   *sync.Cond // signalled when queue and in-flight are empty
	busy   bool
	closed bool
	done   chan struct{}
	stats  struct{ sent, retried, full, rejected atomic.Int64 }
	token  struct {
		mu      sync.Mutex
		value   string
		expires time.Time
	}
}

// NewTransmitter starts a transmitter's sender.
func NewTransmitter(conn Connection, o Options) *Transmitter {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: o.Timeout}
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = 8192
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 4
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	t := &Transmitter{conn: conn, opts: o, wake: make(chan struct{}, 1), done: make(chan struct{})}
	t.idle = sync.NewCond(&t.mu)
	go t.run()
	return t
}

// Stats returns the counters.
func (t *Transmitter) Stats() Stats {
	return Stats{Sent: t.stats.sent.Load(), Retried: t.stats.retried.Load(),
		DroppedQueueFull: t.stats.full.Load(), DroppedRejected: t.stats.rejected.Load()}
}

// Enqueue queues envelopes without blocking; what does not fit is dropped
// and counted.
func (t *Transmitter) Enqueue(envs []Envelope) {
	if len(envs) == 0 {
		return
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.stats.full.Add(int64(len(envs)))
		return
	}
	room := t.opts.MaxQueue - len(t.queue)
	if room < len(envs) {
		t.stats.full.Add(int64(len(envs) - max(room, 0)))
		envs = envs[:max(room, 0)]
	}
	t.queue = append(t.queue, envs...)
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Flush waits until everything queued has been sent or given up, or ctx
// ends.
func (t *Transmitter) Flush(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		t.mu.Lock()
		for len(t.queue) > 0 || t.busy {
			t.idle.Wait()
		}
		t.mu.Unlock()
		close(done)
	}()
	select {
	case t.wake <- struct{}{}:
	default:
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("application insights flush: %w", ctx.Err())
	}
}

// Shutdown flushes within ctx and stops the sender.
func (t *Transmitter) Shutdown(ctx context.Context) error {
	err := t.Flush(ctx)
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.done)
	}
	t.mu.Unlock()
	return err
}

func (t *Transmitter) run() {
	for {
		select {
		case <-t.wake:
		case <-t.done:
			return
		}
		for {
			t.mu.Lock()
			if len(t.queue) == 0 {
				t.busy = false
				t.idle.Broadcast()
				t.mu.Unlock()
				break
			}
			n := min(len(t.queue), t.opts.MaxBatch)
			batch := append([]Envelope(nil), t.queue[:n]...)
			t.queue = t.queue[n:]
			t.busy = true
			t.mu.Unlock()
			t.send(batch)
		}
	}
}

// send posts a batch, retrying what is retriable.
func (t *Transmitter) send(batch []Envelope) {
	wait := t.opts.Backoff
	for attempt := 1; len(batch) > 0; attempt++ {
		retry, after, _ := t.post(batch)
		if len(retry) == 0 {
			return
		}
		if attempt >= t.opts.MaxAttempts {
			t.stats.rejected.Add(int64(len(retry)))
			return
		}
		t.stats.retried.Add(int64(len(retry)))
		batch = retry
		d := max(wait, after)
		d = min(d, t.opts.MaxBackoff)
		select {
		case <-time.After(d):
		case <-t.done:
			t.stats.rejected.Add(int64(len(batch)))
			return
		}
		wait *= 2
	}
}

// trackResponse is the ingestion endpoint's answer.
type trackResponse struct {
	ItemsReceived int `json:"itemsReceived"`
	ItemsAccepted int `json:"itemsAccepted"`
	Errors        []struct {
		Index      int    `json:"index"`
		StatusCode int    `json:"statusCode"`
		Message    string `json:"message"`
	} `json:"errors"`
}

func retriable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, 439, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// post sends one batch. It returns the envelopes to try again, how long
// the server asked to wait, and an error for a failed post.
func (t *Transmitter) post(batch []Envelope) (retry []Envelope, after time.Duration, err error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if err := json.NewEncoder(gz).Encode(batch); err != nil {
		t.stats.rejected.Add(int64(len(batch)))
		return nil, 0, err
	}
	_ = gz.Close()
	ctx, cancel := context.WithTimeout(context.Background(), t.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.conn.TrackURL(), &buf)
	if err != nil {
		t.stats.rejected.Add(int64(len(batch)))
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	if t.opts.Credential != nil {
		tok, err := t.bearer(ctx)
		if err != nil {
			return batch, 0, err // sign-in trouble passes: retry
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := t.opts.HTTPClient.Do(req)
	if err != nil {
		return batch, 0, err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	after, _ = api.ParseRetryAfter(res.Header.Get("Retry-After"), time.Now())
	switch {
	case res.StatusCode == http.StatusOK:
		t.stats.sent.Add(int64(len(batch)))
		return nil, 0, nil
	case res.StatusCode == http.StatusPartialContent:
		var tr trackResponse
		if err := json.Unmarshal(body, &tr); err != nil {
			return batch, after, fmt.Errorf("partial success without a readable answer: %w", err)
		}
		failed := 0
		for _, e := range tr.Errors {
			if e.Index < 0 || e.Index >= len(batch) {
				continue
			}
			failed++
			if retriable(e.StatusCode) {
				retry = append(retry, batch[e.Index])
			} else {
				t.stats.rejected.Add(1)
			}
		}
		t.stats.sent.Add(int64(len(batch) - failed))
		return retry, after, nil
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		t.token.mu.Lock()
		t.token.value = "" // a fresh token next time
		t.token.mu.Unlock()
		return batch, after, fmt.Errorf("ingestion refused the credentials (%d)", res.StatusCode)
	case retriable(res.StatusCode):
		return batch, after, fmt.Errorf("ingestion answered %d", res.StatusCode)
	default:
		t.stats.rejected.Add(int64(len(batch)))
		return nil, 0, fmt.Errorf("ingestion rejected the batch (%d)", res.StatusCode)
	}
}

// bearer returns a cached Entra ID token, renewed 5 minutes before expiry.
func (t *Transmitter) bearer(ctx context.Context) (string, error) {
	t.token.mu.Lock()
	defer t.token.mu.Unlock()
	if t.token.value != "" && time.Until(t.token.expires) > 5*time.Minute {
		return t.token.value, nil
	}
	tok, err := t.opts.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{MonitorScope}})
	if err != nil {
		return "", errors.New("application insights: Entra ID token: " + err.Error())
	}
	t.token.value, t.token.expires = tok.Token, tok.ExpiresOn
	return tok.Token, nil
}
