package stack

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestAnsweredInvocationsSurviveTheKill: the host kills the handler, it
// never asks it to stop. Invocations answered at least DeliveryWindow
// before the kill have every span and log record of theirs at the sink,
// with the default flush policy, and no SIGTERM flush to lean on.
func TestAnsweredInvocationsSurviveTheKill(t *testing.T) {
	s := startStack(t, Options{Env: []string{"NBTRACE_LOG_LEVEL=info", "OTEL_BSP_SCHEDULE_DELAY=5000", "OTEL_BLRP_SCHEDULE_DELAY=1000"}}) // the exporters' own defaults
	const n = 24
	traces := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		traces[i] = fmt.Sprintf("5e1c0000000000000000%012x", i+1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, body := post(t, s.URL+"/api/validate", `{"dataset":"sales","date":"2026-11-25","rowCount":10}`,
				map[string]string{"traceparent": "00-" + traces[i] + "-b7ad6b7169203331-01"})
			if res.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("invocation %d: %d %v", i, res.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	time.Sleep(DeliveryWindow)
	pid, _, _ := s.Host.HandlerProcess()
	s.Host.KillHandler() // SIGKILL, as the host's Dispose
	time.Sleep(500 * time.Millisecond)
	for i, trace := range traces {
		var handler int
		for _, sp := range s.Sink.Trace(trace) {
			if sp.Service == "nbtrace" {
				handler++
			}
		}
		// validate: its invocation, two calls to the services, and each
		// service's invocation of simulate.
		if handler != 5 {
			t.Errorf("invocation %d: %d of the handler's 5 spans reached the sink", i, handler)
		}
		if logs := s.Sink.LogRecords(trace); logs < 3 {
			t.Errorf("invocation %d: %d log records reached the sink, want the 3 invocations' own", i, logs)
		}
	}
	if now, _, _ := s.Host.HandlerProcess(); now == pid {
		t.Errorf("handler %d was not killed", pid)
	}
}
