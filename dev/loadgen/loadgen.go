// Package loadgen is a closed-loop load generator for loopback tests and
// benchmarks: a fixed number of workers each send one request at a time,
// until a request count or a time limit is reached, whichever comes first.
// ProcStatus reads what a process under load holds in memory.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options bounds a run. Requests and Duration are both limits; at least
// one must be set.
type Options struct {
	Concurrency int
	Requests    int
	Duration    time.Duration
}

// Result is what a run measured.
type Result struct {
	Sent   int
	Errors int
	// Cut counts the requests the time limit cut off: neither sent nor
	// errors, but they reached the server.
	Cut       int
	FirstErr  error
	Elapsed   time.Duration
	Latencies []time.Duration // sorted
}

// Rate is requests completed per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile latency (0 < p ≤ 100), nearest
// rank.
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies))*p/100+0.5) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

func (r Result) String() string {
	return fmt.Sprintf("%d requests in %v (%.0f/s), %d errors, p50 %v, p99 %v", r.Sent, r.Elapsed.Round(time.Millisecond),
		r.Rate(), r.Errors, r.Percentile(50), r.Percentile(99))
}

// Run calls do from o.Concurrency workers until o.Requests calls have been
// started or o.Duration has passed (or ctx ends). do returns an error for
// a failed request; latency is measured around it.
func Run(ctx context.Context, o Options, do func(ctx context.Context) error) (Result, error) {
	if o.Concurrency <= 0 {
		return Result{}, errors.New("loadgen: Concurrency must be positive")
	}
	if o.Requests <= 0 && o.Duration <= 0 {
		return Result{}, errors.New("loadgen: set Requests, Duration or both")
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	var (
		started atomic.Int64
		mu      sync.Mutex
		res     Result
		wg      sync.WaitGroup
	)
	begin := time.Now()
	for range o.Concurrency {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1024)
			var errs, cut int
			var first error
			for ctx.Err() == nil {
				if o.Requests > 0 && started.Add(1) > int64(o.Requests) {
					break
				}
				t0 := time.Now()
				err := do(ctx)
				d := time.Since(t0)
				if err != nil && ctx.Err() != nil && o.Duration > 0 {
					cut++ // cut off by the time limit: not counted
					break
				}
				lat = append(lat, d)
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
				}
			}
			mu.Lock()
			res.Latencies = append(res.Latencies, lat...)
			res.Errors += errs
			res.Cut += cut
			if res.FirstErr == nil {
				res.FirstErr = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(begin)
	res.Sent = len(res.Latencies)
	slices.Sort(res.Latencies)
	return res, nil
}

// Client returns an HTTP client for n concurrent workers against one
// loopback host: n idle connections kept, so that no run exhausts
// ephemeral ports by reconnecting.
func Client(n int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        n,
			MaxIdleConnsPerHost: n,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

// ProcStatus reads a size field of /proc/PID/status (VmRSS, VmHWM,
// RssFile, RssAnon: kB there) in bytes. It is Linux's; elsewhere the file
// does not exist (os.ErrNotExist).
func ProcStatus(pid int, field string) (int64, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
