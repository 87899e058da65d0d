package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nbtrace/nbtrace/dev/loadgen"
	"github.com/nbtrace/nbtrace/dev/stack"
)

// KillDelays are the delays between the last answer of a batch of
// invocations and the SIGKILL of the handler that answered them, at which
// the share of their spans and log records that reached the exporters is
// measured.
var KillDelays = []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}

// GoalKillWindow is the goal of the kill row: stack.DeliveryWindow.
const GoalKillWindow = stack.DeliveryWindow

// killBatch is the invocations of one measured batch, and killConcurrency
// how many are in flight at once.
const (
	killBatch       = 40
	killConcurrency = 8
	killRepeats     = 5
)

// killDelivery measures what the host's SIGKILL loses: for each delay, a
// handler with the default flush policy answers a batch of invocations, is
// killed that long after the last answer (as the host kills it, with no
// signal it could handle), and the spans and log records that reached the
// sink are counted against those of a batch left to finish.
func (r *runner) killDelivery(ctx context.Context) error {
	svc := startServices(0)
	defer svc.Close()
	sink := startSink()
	defer sink.Close()
	env := r.handlerEnv(svc.URL+"/a", svc.URL+"/b", sink.URL, "OTEL_METRICS_EXPORTER=none", "NBTRACE_LOG_LEVEL=info")
	batch := func(delay time.Duration, kill bool) (spans, logs int64, err error) {
		p, err := r.startHandler(ctx, env)
		if err != nil {
			return 0, 0, err
		}
		defer p.stop()
		// The handler's own start-up records (its log lines) are not
		// counted: wait for them first.
		sink.settleFor(ctx, 300*time.Millisecond)
		s0, l0 := sink.spans.Load(), sink.logs.Load()
		res, err := loadgen.Run(ctx, loadgen.Options{Concurrency: killConcurrency, Requests: killBatch, Duration: 30 * time.Second}, p.invoke)
		if err != nil {
			return 0, 0, err
		}
		if res.Errors > 0 || res.Cut > 0 {
			return 0, 0, fmt.Errorf("kill batch: %v; first: %v", res, res.FirstErr)
		}
		if kill {
			time.Sleep(delay)
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		sink.settleFor(ctx, 500*time.Millisecond)
		return sink.spans.Load() - s0, sink.logs.Load() - l0, nil
	}
	wantSpans, wantLogs, err := batch(0, false)
	if err != nil {
		return err
	}
	if wantSpans == 0 || wantLogs == 0 {
		return fmt.Errorf("a batch left to finish delivered %d spans and %d log records", wantSpans, wantLogs)
	}
	var parts []string
	allFrom := time.Duration(-1)
	for _, d := range KillDelays {
		var minShare = 1.0
		for range killRepeats {
			spans, logs, err := batch(d, true)
			if err != nil {
				return err
			}
			share := min(float64(spans)/float64(wantSpans), float64(logs)/float64(wantLogs))
			minShare = min(minShare, share)
			fmt.Fprintf(&r.raw, "BenchmarkKillDelivery/delay=%s 1 %d spans %d logs %.4f share\n", d, spans, logs, share)
		}
		parts = append(parts, fmt.Sprintf("%s %.0f %%", msDur(d), 100*minShare))
		if minShare < 1 {
			allFrom = -1
		} else if allFrom < 0 {
			allFrom = d
		}
	}
	verdict := allFrom >= 0 && allFrom <= GoalKillWindow
	from := "never"
	if allFrom >= 0 {
		from = msDur(allFrom)
	}
	r.rows = append(r.rows, Row{
		Measure:  fmt.Sprintf("SIGKILL after the last answer: spans and log records delivered, worst of %d batches of %d", killRepeats, killBatch),
		Result:   strings.Join(parts, ", "),
		Baseline: fmt.Sprintf("all from %s (a batch left to finish: %d spans, %d log records)", from, wantSpans, wantLogs),
		Goal:     "100 % from " + msDur(GoalKillWindow), Met: met(verdict)})
	return nil
}

func msDur(d time.Duration) string { return fmt.Sprintf("%g ms", float64(d)/float64(time.Millisecond)) }
