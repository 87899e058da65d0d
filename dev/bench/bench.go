// Package bench measures the handler: cold start, binary size, throughput
// and latency through the payload protocol with tracing on and off,
// concurrency of the service calls, peak memory, span delivery and the
// cost of each telemetry flush policy. Every figure is set beside a
// baseline measured in the same run, since the machines it runs on are
// shared and noisy: ratios mean more than absolute times.
//
// Everything runs on loopback, every loop is bounded in count and time,
// and raw results are written in the Go benchmark format, so that two runs
// compare with `go tool benchstat old.txt new.txt`.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"

	"github.com/nbtrace/nbtrace/dev/funchost"
	"github.com/nbtrace/nbtrace/dev/loadgen"
	"github.com/nbtrace/nbtrace/dev/stage"
	"github.com/nbtrace/nbtrace/handler/manifest"
)

// Options configures Run.
type Options struct {
	RepoRoot string
	// ColdStarts is the number of cold starts of each handler (≥ 20).
	ColdStarts int
	// Rounds is the number of alternating tracing on/off load rounds.
	Rounds int
	// RoundTime bounds each load round.
	RoundTime time.Duration
	// Concurrency is the number of concurrent invocations in the
	// throughput rounds.
	Concurrency int
	// FlushCount is -count for the flush policy benchmark.
	FlushCount int
	// Settings (KEY=VALUE) are given to every handler measured, after the
	// benchmark's own: to measure the effect of a setting.
	Settings []string
	// Out receives the table; Log the progress.
	Out, Log io.Writer
	// Results is the file the raw results are written to.
	Results string
}

// Defaults are the options `go run ./dev bench` uses.
func Defaults(root string) Options {
	return Options{RepoRoot: root, ColdStarts: 25, Rounds: 3, RoundTime: 5 * time.Second, Concurrency: 64,
		FlushCount: 6, Out: os.Stdout, Log: os.Stderr,
		Results: filepath.Join(root, ".nbtrace", "bench", time.Now().UTC().Format("20060102T150405Z")+".txt")}
}

// Goals, from the performance requirements.
const (
	goalColdRatio    = 1.5
	goalColdStart    = 15 * time.Millisecond
	goalBinaryBytes  = 25e6
	goalTracingRatio = 0.8
	goalDelayedP50   = 110 * time.Millisecond
	goalPeakRSS      = 60e6
	serviceDelay     = 100 * time.Millisecond
	hostPoll         = 25 * time.Millisecond // HttpWorkerProcess's readiness poll
	peakConcurrency  = 200
)

// Row is one line of the table.
type Row struct {
	Measure, Result, Baseline, Goal string
	// Met is nil for a row with no goal.
	Met *bool
}

func verdict(r Row) string {
	switch {
	case r.Met == nil:
		return "—"
	case *r.Met:
		return "met"
	default:
		return "NOT MET"
	}
}

func met(b bool) *bool { return &b }

// Run builds everything, measures, writes the raw results and prints the
// table. It returns the rows.
func Run(ctx context.Context, o Options) ([]Row, error) {
	tmp, err := os.MkdirTemp("", "nbtrace-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	r := &runner{o: o, tmp: tmp}
	fmt.Fprintf(o.Log, "bench: building the handler, a minimal handler and the linux/amd64 deployment folder…\n")
	if err := r.build(ctx); err != nil {
		return nil, err
	}
	steps := []func(context.Context) error{r.binarySize, r.coldStarts, r.throughput, r.delayed, r.killDelivery, r.computeStartup, r.flushPolicies}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			r.stopAll()
			return nil, err
		}
	}
	r.stopAll()
	if err := os.MkdirAll(filepath.Dir(o.Results), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(o.Results, r.raw.Bytes(), 0o644); err != nil {
		return nil, err
	}
	printTable(o.Out, r.rows)
	fmt.Fprintf(o.Out, "\n%s, Go %s, %d CPUs. Raw results: %s\n(compare two runs: go tool benchstat OLD NEW)\n",
		runtime.GOOS+"/"+runtime.GOARCH, strings.TrimPrefix(runtime.Version(), "go"), runtime.NumCPU(), o.Results)
	return r.rows, nil
}

type runner struct {
	o        Options
	tmp      string
	appDir   string // staged app, for this machine
	minimal  string // the minimal handler's executable
	linuxExe string // the linux/amd64 handler
	rows     []Row
	raw      bytes.Buffer // Go benchmark format
	procs    []*handlerProc
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.o.Log, "bench: "+format+"\n", args...)
}

func (r *runner) build(ctx context.Context) error {
	r.appDir = filepath.Join(r.tmp, "app")
	if err := stage.Stage(ctx, stage.Options{RepoRoot: r.o.RepoRoot, Out: r.appDir, GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Stderr: r.o.Log}); err != nil {
		return err
	}
	linuxDir := filepath.Join(r.tmp, "linux-amd64")
	if err := stage.Stage(ctx, stage.Options{RepoRoot: r.o.RepoRoot, Out: linuxDir, GOOS: "linux", GOARCH: "amd64", Stderr: r.o.Log}); err != nil {
		return err
	}
	r.linuxExe = filepath.Join(linuxDir, "handler")
	r.minimal = filepath.Join(r.tmp, "minimal")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", r.minimal, "./dev/bench/minimal")
	cmd.Dir, cmd.Stderr = r.o.RepoRoot, r.o.Log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build the minimal handler: %w", err)
	}
	fmt.Fprintf(&r.raw, "goos: %s\ngoarch: %s\npkg: github.com/nbtrace/nbtrace/dev/bench\ncpu: %d CPUs\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	return nil
}

func (r *runner) binarySize(context.Context) error {
	fi, err := os.Stat(r.linuxExe)
	if err != nil {
		return err
	}
	fmt.Fprintf(&r.raw, "BenchmarkBinarySize/linux-amd64 1 %d bytes\n", fi.Size())
	r.rows = append(r.rows, Row{Measure: "binary size, stripped, linux/amd64", Result: mb(float64(fi.Size())),
		Goal: "≤ " + mb(goalBinaryBytes), Met: met(fi.Size() <= goalBinaryBytes)})
	return nil
}

// coldStarts starts each handler ColdStarts times, alternating, and times
// exec → first answer to GET / (what the host's readiness poll waits
// for). The poll here retries every 0.2 ms, so that the figure is the
// handler's; the host's own 25 ms poll adds up to 25 ms to both.
func (r *runner) coldStarts(ctx context.Context) error {
	n := max(r.o.ColdStarts, 20)
	r.logf("cold starts: %d of each handler, alternating", n)
	env := r.handlerEnv("http://127.0.0.1:9/a", "http://127.0.0.1:9/b", "http://127.0.0.1:9")
	var real, base []float64
	for i := range n {
		for _, which := range []string{"nbtrace", "minimal"} {
			exe := filepath.Join(r.appDir, "handler")
			if which == "minimal" {
				exe = r.minimal
			}
			d, err := coldStart(ctx, exe, r.appDir, env)
			if err != nil {
				return fmt.Errorf("cold start %d of %s: %w", i, which, err)
			}
			fmt.Fprintf(&r.raw, "BenchmarkColdStart/handler=%s 1 %d ns/op\n", which, d.Nanoseconds())
			if which == "nbtrace" {
				real = append(real, float64(d))
			} else {
				base = append(base, float64(d))
			}
		}
	}
	rs, bs := summary(real), summary(base)
	ratio := rs.Center / bs.Center
	// The host polls every 25 ms from the start, so it sees a handler
	// ready at the first poll after it is: what a caller waits for.
	polled := func(v []float64) []float64 {
		out := make([]float64, len(v))
		for i, d := range v {
			out[i] = math.Ceil(d/float64(hostPoll)) * float64(hostPoll)
		}
		return out
	}
	r.rows = append(r.rows,
		Row{Measure: fmt.Sprintf("cold start: exec → first GET / answer, median of %d", n), Result: msCI(rs),
			Baseline: "minimal handler " + msCI(bs), Goal: "≤ " + ms(float64(goalColdStart)), Met: met(rs.Center <= float64(goalColdStart))},
		Row{Measure: "cold start vs the minimal handler", Result: fmt.Sprintf("%.2f×", ratio),
			Goal: fmt.Sprintf("≤ %.1f×", goalColdRatio), Met: met(ratio <= goalColdRatio)},
		Row{Measure: "cold start as the host's 25 ms readiness poll sees it, median", Result: ms(summary(polled(real)).Center),
			Baseline: "minimal handler " + ms(summary(polled(base)).Center)})
	return nil
}

func coldStart(ctx context.Context, exe, dir string, env []string) (time.Duration, error) {
	port, err := funchost.FreePort()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe)
	cmd.Dir = dir
	cmd.Env = append(env, "FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port))
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := waitReady(ctx, "http://127.0.0.1:"+strconv.Itoa(port), 200*time.Microsecond); err != nil {
		return 0, fmt.Errorf("%s: %w", exe, err)
	}
	return time.Since(start), nil
}

// waitReady polls GET base/ every poll until it answers 200, for at most
// 10 s. Each poll is a new connection, as each of the host's is.
func waitReady(ctx context.Context, base string, poll time.Duration) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(poll) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if res, err := client.Get(base + "/"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("no answer 200 to GET %s/ within 10s", base)
}

// handlerEnv is the environment the handler gets in these measurements:
// what the local stack sets, with services A and B at the given URLs and
// Databricks at an address never dialled (its client is built lazily).
func (r *runner) handlerEnv(serviceA, serviceB, otlp string, extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"FUNCTIONS_WORKER_RUNTIME=custom",
		"FUNCTIONS_APP_ROOT_PATH=" + r.appDir,
		"WEBSITE_HOSTNAME=localhost:7071",
		"SERVICE_A_URL=" + serviceA, "SERVICE_B_URL=" + serviceB,
		"DATABRICKS_HOST=http://127.0.0.1:9", "DATABRICKS_TOKEN=dapi-bench", "DATABRICKS_JOB_ID=1",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp,
		"OTEL_TRACES_SAMPLER=always_on",
		"NBTRACE_LOG_LEVEL=warn",
	}
	return append(append(env, extra...), r.o.Settings...)
}

// handlerProc is a running handler, driven as the host drives it.
type handlerProc struct {
	cmd     *exec.Cmd
	url     string
	payload []byte
	client  *http.Client
	ids     atomic.Int64
}

func (r *runner) startHandler(ctx context.Context, env []string) (*handlerProc, error) {
	port, err := funchost.FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(r.appDir, "handler"))
	cmd.Dir = r.appDir
	cmd.Env = append(env, "FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = r.o.Log, r.o.Log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &handlerProc{cmd: cmd, url: "http://127.0.0.1:" + strconv.Itoa(port),
		client: loadgen.Client(peakConcurrency, 30*time.Second)}
	r.procs = append(r.procs, p)
	if err := waitReady(ctx, p.url, 5*time.Millisecond); err != nil {
		return nil, err
	}
	p.payload, err = validatePayload()
	return p, err
}

// validatePayload is the host's payload for POST /api/validate, built by
// the host stand-in's own code.
func validatePayload() ([]byte, error) {
	body := []byte(`{"dataset":"sales","date":"` + time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly) + `","rowCount":1200}`)
	req, err := http.NewRequest(http.MethodPost, "http://localhost:7071/api/validate", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return funchost.Payload(req, body, manifest.Function{Name: "validate", Trigger: "req"}, map[string]string{})
}

// invoke sends one payload invocation of validate and checks that the
// answer is the host's 200 with a valid verdict.
func (p *handlerProc) invoke(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/validate", bytes.NewReader(p.payload))
	if err != nil {
		return err
	}
	funchost.SetInvocationHeaders(req.Header, fmt.Sprintf("00000000-0000-4000-8000-%012d", p.ids.Add(1)))
	res, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`\"valid\":true`)) {
		return fmt.Errorf("invocation answered %d: %.200s", res.StatusCode, b)
	}
	return nil
}

func (p *handlerProc) pid() int { return p.cmd.Process.Pid }

// stop kills the handler, as the host does (it never sends a signal the
// handler could handle), and waits for it.
func (p *handlerProc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

func (r *runner) stopAll() {
	for _, p := range r.procs {
		p.stop()
	}
	r.procs = nil
}

// throughput drives validate through the payload protocol, with services
// A and B answering at once, on two handlers: one tracing every
// invocation to the local OTLP sink, one with telemetry off. Rounds
// alternate between them; the figures are medians over rounds.
func (r *runner) throughput(ctx context.Context) error {
	svc := startServices(0)
	defer svc.Close()
	sink := startSink()
	defer sink.Close()
	on, err := r.startHandler(ctx, r.handlerEnv(svc.URL+"/a", svc.URL+"/b", sink.URL, "OTEL_LOGS_EXPORTER=none", "OTEL_METRICS_EXPORTER=none"))
	if err != nil {
		return err
	}
	off, err := r.startHandler(ctx, r.handlerEnv(svc.URL+"/a", svc.URL+"/b", sink.URL, "OTEL_SDK_DISABLED=true", "OTEL_TRACES_SAMPLER=always_off"))
	if err != nil {
		return err
	}
	var sent int64 // invocations of the traced handler
	for _, p := range []*handlerProc{on, off} {
		res, err := loadgen.Run(ctx, loadgen.Options{Concurrency: 8, Requests: 2000, Duration: 10 * time.Second}, p.invoke)
		if err != nil {
			return err
		}
		if res.Errors > 0 || res.Cut > 0 {
			return fmt.Errorf("warm-up: %v; first: %v", res, res.FirstErr)
		}
		if p == on {
			sent += int64(res.Sent)
		}
	}
	// Rounds are bounded by a count, from a short calibration at full
	// concurrency, so that none is cut off mid-invocation (every span
	// sent is then expected); the time limit only guards.
	cal, err := loadgen.Run(ctx, loadgen.Options{Concurrency: r.o.Concurrency, Requests: 100000, Duration: time.Second}, off.invoke)
	if err != nil {
		return err
	}
	perRound := max(int(cal.Rate()*r.o.RoundTime.Seconds()), r.o.Concurrency)
	r.logf("throughput: %d rounds of %d invocations (about %v) per handler, %d concurrent", r.o.Rounds, perRound, r.o.RoundTime, r.o.Concurrency)
	var rates = map[string][]float64{}
	var lat = map[string][]time.Duration{}
	for i := range r.o.Rounds {
		for _, v := range []struct {
			name string
			p    *handlerProc
		}{{"on", on}, {"off", off}} {
			res, err := loadgen.Run(ctx, loadgen.Options{Concurrency: r.o.Concurrency, Requests: perRound, Duration: 4*r.o.RoundTime + 10*time.Second}, v.p.invoke)
			if err != nil {
				return err
			}
			if res.Cut > 0 {
				return fmt.Errorf("round %d, tracing %s: cut off by its time limit after %v", i, v.name, res)
			}
			if res.Errors > 0 {
				return fmt.Errorf("round %d, tracing %s: %v; first: %v", i, v.name, res, res.FirstErr)
			}
			if v.name == "on" {
				sent += int64(res.Sent)
			}
			rates[v.name] = append(rates[v.name], res.Rate())
			lat[v.name] = append(lat[v.name], res.Latencies...)
			fmt.Fprintf(&r.raw, "BenchmarkValidate/tracing=%s %d %.0f ns/op %.0f inv/s %d p50-ns %d p99-ns\n",
				v.name, res.Sent, 1e9/res.Rate(), res.Rate(), res.Percentile(50), res.Percentile(99))
		}
	}
	// The host kills the traced handler (scale-in, restart) no sooner than
	// GoalKillWindow after its last answer here; then every trace is
	// whole, and the spans of one invocation known.
	time.Sleep(GoalKillWindow)
	on.stop()
	received := sink.settle(ctx)
	perInvocation := sink.spansPerTrace()
	expected := sent * perInvocation
	onS, offS := summary(rates["on"]), summary(rates["off"])
	pct := func(name string, p float64) time.Duration {
		l := lat[name]
		slices.Sort(l)
		return loadgen.Result{Latencies: l}.Percentile(p)
	}
	ratio := onS.Center / offS.Center
	r.rows = append(r.rows,
		Row{Measure: fmt.Sprintf("validate, tracing on: invocations/s (p50 / p99), %d concurrent", r.o.Concurrency),
			Result:   fmt.Sprintf("%.0f/s (%s / %s)", onS.Center, ms(float64(pct("on", 50))), ms(float64(pct("on", 99)))),
			Baseline: fmt.Sprintf("tracing off %.0f/s (%s / %s)", offS.Center, ms(float64(pct("off", 50))), ms(float64(pct("off", 99))))},
		Row{Measure: "throughput, tracing on / off", Result: fmt.Sprintf("%.2f", ratio),
			Goal: fmt.Sprintf("≥ %.1f", goalTracingRatio), Met: met(ratio >= goalTracingRatio)},
		Row{Measure: fmt.Sprintf("spans received by the sink / expected (%d per invocation)", perInvocation),
			Result: fmt.Sprintf("%d / %d (%.2f %%)", received, expected, 100*float64(received)/float64(expected)),
			Goal:   "100 %", Met: met(received == expected)},
	)
	fmt.Fprintf(&r.raw, "BenchmarkSpansDelivered 1 %d spans %d expected-spans\n", received, expected)
	return nil
}

// delayed measures validate with services A and B each taking 100 ms: the
// two calls overlap, so an invocation should take about 100 ms, where
// calling them one after the other (measured here with the same client)
// takes 200 ms. Then 200 invocations at once, for the peak RSS.
func (r *runner) delayed(ctx context.Context) error {
	svc := startServices(serviceDelay)
	defer svc.Close()
	sink := startSink()
	defer sink.Close()
	p, err := r.startHandler(ctx, r.handlerEnv(svc.URL+"/a", svc.URL+"/b", sink.URL))
	if err != nil {
		return err
	}
	r.logf("validate with services delayed %v: concurrent (the handler) and sequential calls", serviceDelay)
	conc, err := loadgen.Run(ctx, loadgen.Options{Concurrency: 4, Requests: 100, Duration: time.Minute}, p.invoke)
	if err != nil {
		return err
	}
	client := loadgen.Client(4, 10*time.Second)
	seq, err := loadgen.Run(ctx, loadgen.Options{Concurrency: 4, Requests: 100, Duration: time.Minute}, func(ctx context.Context) error {
		for _, s := range []string{"/a", "/b"} {
			res, err := client.Post(svc.URL+s, "application/json", strings.NewReader(`{"dataset":"sales"}`))
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if conc.Errors+seq.Errors > 0 {
		return fmt.Errorf("delayed services: %v / %v", conc.FirstErr, seq.FirstErr)
	}
	for _, l := range conc.Latencies {
		fmt.Fprintf(&r.raw, "BenchmarkValidateDelayed/calls=concurrent 1 %d ns/op\n", l)
	}
	for _, l := range seq.Latencies {
		fmt.Fprintf(&r.raw, "BenchmarkValidateDelayed/calls=sequential 1 %d ns/op\n", l)
	}
	c50 := conc.Percentile(50)
	r.rows = append(r.rows, Row{Measure: "validate p50, services A and B each 100 ms", Result: ms(float64(c50)),
		Baseline: "sequential calls " + ms(float64(seq.Percentile(50))), Goal: "≤ " + ms(float64(goalDelayedP50)), Met: met(c50 <= goalDelayedP50)})

	r.logf("peak RSS: %d concurrent invocations", peakConcurrency)
	peak, err := loadgen.Run(ctx, loadgen.Options{Concurrency: peakConcurrency, Requests: 10 * peakConcurrency, Duration: time.Minute}, p.invoke)
	if err != nil {
		return err
	}
	if peak.Errors > 0 {
		return fmt.Errorf("%d concurrent: %v; first: %v", peakConcurrency, peak, peak.FirstErr)
	}
	hwm, err := loadgen.ProcStatus(p.pid(), "VmHWM")
	if err != nil {
		r.rows = append(r.rows, Row{Measure: fmt.Sprintf("peak RSS, %d concurrent invocations", peakConcurrency), Result: "not measurable here: " + err.Error(),
			Goal: "≤ " + mb(goalPeakRSS), Met: met(false)})
		return nil
	}
	// What the RSS is made of now: the binary's pages read from disk, and
	// the heap, stacks and buffers.
	file, _ := loadgen.ProcStatus(p.pid(), "RssFile")
	anon, _ := loadgen.ProcStatus(p.pid(), "RssAnon")
	fmt.Fprintf(&r.raw, "BenchmarkPeakRSS/concurrent=%d 1 %d peak-RSS-bytes %d file-RSS-bytes %d anon-RSS-bytes\n", peakConcurrency, hwm, file, anon)
	r.rows = append(r.rows, Row{Measure: fmt.Sprintf("peak RSS, %d concurrent invocations (tracing on)", peakConcurrency),
		Result: mb(float64(hwm)), Baseline: fmt.Sprintf("at the end: binary %s + heap, stacks %s", mb(float64(file)), mb(float64(anon))),
		Goal: "≤ " + mb(goalPeakRSS), Met: met(hwm <= goalPeakRSS)})
	return nil
}

// flushPolicies runs BenchmarkFlushPolicy (one traced invocation with each
// NBTRACE_FLUSH_POLICY, OTLP to a loopback receiver) FlushCount times.
func (r *runner) flushPolicies(ctx context.Context) error {
	r.logf("flush policies: go test -bench FlushPolicy -count %d", r.o.FlushCount)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "test", "./handler/internal/telemetry", "-run", "^$", "-bench", "^BenchmarkFlushPolicy$",
		"-count", strconv.Itoa(r.o.FlushCount))
	cmd.Dir, cmd.Stdout, cmd.Stderr = r.o.RepoRoot, &out, r.o.Log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("flush benchmark: %w\n%s", err, out.Bytes())
	}
	times, err := flushTimes(out.Bytes(), &r.raw)
	if err != nil {
		return fmt.Errorf("flush benchmark: %w", err)
	}
	if len(times["batch"]) == 0 || len(times["async"]) == 0 || len(times["sync"]) == 0 {
		return fmt.Errorf("flush benchmark printed no results:\n%s", out.Bytes())
	}
	b, a, s := summary(times["batch"]), summary(times["async"]), summary(times["sync"])
	r.rows = append(r.rows,
		Row{Measure: "flush policy async (default): cost per invocation", Result: usCI(a), Baseline: "batch " + usCI(b),
			Goal: "≤ batch + 20 µs (the invocation never waits)", Met: met(a.Center <= b.Center+20e3)},
		Row{Measure: "flush policy sync: cost per invocation", Result: usCI(s), Baseline: "batch " + usCI(b),
			Goal: "— (waits for the export by design)"},
	)
	return nil
}

// flushTimes reads BenchmarkFlushPolicy's output with benchstat's reader:
// nanoseconds per invocation by policy (the sub-benchmark's name, its
// -GOMAXPROCS suffix apart). The records are copied to raw as they are,
// with their configuration (pkg, cpu).
func flushTimes(out []byte, raw io.Writer) (map[string][]float64, error) {
	times := map[string][]float64{}
	rd, wr := benchfmt.NewReader(bytes.NewReader(out), "BenchmarkFlushPolicy"), benchfmt.NewWriter(raw)
	for rd.Scan() {
		res, ok := rd.Result().(*benchfmt.Result)
		if !ok {
			continue // a syntax error or unit metadata: not a result
		}
		_, parts := res.Name.Parts()
		sec, ok := res.Value("sec/op") // ns/op, as the reader tidies it
		if len(parts) == 0 || !ok {
			continue
		}
		policy := strings.TrimPrefix(string(parts[0]), "/")
		times[policy] = append(times[policy], math.Round(sec*1e12)/1e3) // ns, to a thousandth
		if err := wr.Write(res); err != nil {
			return nil, err
		}
	}
	return times, rd.Err()
}

func summary(v []float64) benchmath.Summary {
	return benchmath.AssumeNothing.Summary(benchmath.NewSample(v, &benchmath.DefaultThresholds), 0.95)
}

func ms(ns float64) string { return fmt.Sprintf("%.1f ms", ns/1e6) }

func msCI(s benchmath.Summary) string {
	return fmt.Sprintf("%.1f ms (95 %% CI %.1f–%.1f)", s.Center/1e6, s.Lo/1e6, s.Hi/1e6)
}

func usCI(s benchmath.Summary) string {
	return fmt.Sprintf("%.1f µs (95 %% CI %.1f–%.1f)", s.Center/1e3, s.Lo/1e3, s.Hi/1e3)
}

// mb prints bytes in MB (10⁶ bytes), the unit of the goals.
func mb(b float64) string { return fmt.Sprintf("%.1f MB", b/1e6) }

func printTable(w io.Writer, rows []Row) {
	head := Row{Measure: "Measure", Result: "Result", Baseline: "Baseline (same run)", Goal: "Goal"}
	width := [4]int{}
	all := append([]Row{head}, rows...)
	for _, r := range all {
		for i, c := range []string{r.Measure, r.Result, r.Baseline, r.Goal} {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n-len([]rune(s))) }
	for i, r := range all {
		v := verdict(r)
		if i == 0 {
			v = "Verdict"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", pad(r.Measure, width[0]), pad(r.Result, width[1]), pad(r.Baseline, width[2]), pad(r.Goal, width[3]), v)
		if i == 0 {
			fmt.Fprintf(w, "|%s|%s|%s|%s|---|\n", strings.Repeat("-", width[0]+2), strings.Repeat("-", width[1]+2), strings.Repeat("-", width[2]+2), strings.Repeat("-", width[3]+2))
		}
	}
}
