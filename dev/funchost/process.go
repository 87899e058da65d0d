package funchost

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// readinessPoll is the host's poll interval while waiting for the handler
// (HttpWorkerProcess: 25 ms).
const readinessPoll = 25 * time.Millisecond

// worker is one run of the custom handler process.
type worker struct {
	cmd  *exec.Cmd
	port int
	done chan struct{} // closed when the process has exited
	err  error         // the exit error, valid after done
}

// startWorker starts the handler and waits until it answers GET /.
func (h *Host) startWorker(ctx context.Context) (*worker, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	exe := h.executable()
	args := make([]string, len(h.args))
	for i, a := range h.args {
		args[i] = expandPercent(a)
	}
	cmd := exec.Command(exe, args...)
	cmd.Dir = h.workingDir
	cmd.Env = append(append(os.Environ(), h.cfg.Env...),
		"FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port),
		"FUNCTIONS_HTTPWORKER_PORT="+strconv.Itoa(port),
		"FUNCTIONS_CUSTOMHANDLER_WORKER_ID="+newGUID(),
		"FUNCTIONS_APP_ROOT_PATH="+h.cfg.AppRoot,
	)
	cmd.Stdout, cmd.Stderr = h.cfg.Stdout, h.cfg.Stderr
	ownProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", exe, err)
	}
	w := &worker{cmd: cmd, port: port, done: make(chan struct{})}
	go func() { w.err = cmd.Wait(); close(w.done) }()

	deadline := time.NewTimer(h.initTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readinessPoll)
	defer tick.Stop()
	probe := &http.Client{Timeout: time.Second}
	for {
		// Any HTTP answer, even a 404, means ready; only socket errors wait.
		if res, err := probe.Get(w.baseURL() + "/"); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return w, nil
		}
		select {
		case <-w.done:
			return nil, fmt.Errorf("the handler exited before it was ready: %v", w.err)
		case <-deadline.C:
			w.kill()
			return nil, fmt.Errorf("the handler did not answer GET / within %s (initializationTimeout)", h.initTimeout)
		case <-ctx.Done():
			w.kill()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

func (w *worker) baseURL() string { return "http://127.0.0.1:" + strconv.Itoa(w.port) }

func (w *worker) kill() {
	_ = w.cmd.Process.Kill()
	<-w.done
}

// stop sends SIGTERM and waits for the process, killing it after grace.
func (w *worker) stop(grace time.Duration) error {
	terminate(w.cmd.Process)
	select {
	case <-w.done:
		return w.err
	case <-time.After(grace):
		w.kill()
		return fmt.Errorf("the handler did not exit within %s of SIGTERM; killed", grace)
	}
}

// supervisor restarts the handler when it exits, as the host does, and
// stops after 3 failures within 30 minutes (WorkerConstants).
type supervisor struct {
	mu       sync.Mutex
	current  *worker
	failures []time.Time
	stopped  bool
	fatal    error
}

const (
	maxFailures   = 3
	failureWindow = 30 * time.Minute
)

func (h *Host) supervise(ctx context.Context, w *worker) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.done:
		}
		h.sup.mu.Lock()
		if h.sup.stopped {
			h.sup.mu.Unlock()
			return
		}
		now := time.Now()
		h.sup.failures = append(h.sup.failures, now)
		recent := h.sup.failures[:0]
		for _, t := range h.sup.failures {
			if now.Sub(t) < failureWindow {
				recent = append(recent, t)
			}
		}
		h.sup.failures = recent
		if len(recent) >= maxFailures {
			h.sup.fatal = fmt.Errorf("the handler failed %d times within %s; the host stops", len(recent), failureWindow)
			h.sup.current = nil
			h.sup.mu.Unlock()
			h.logf("%v", h.sup.fatal)
			return
		}
		h.sup.current = nil
		h.sup.mu.Unlock()
		h.logf("the handler exited (%v); restarting it", w.err)
		next, err := h.startWorker(ctx)
		if err != nil {
			h.sup.mu.Lock()
			h.sup.fatal = fmt.Errorf("restart the handler: %w", err)
			h.sup.mu.Unlock()
			h.logf("%v", err)
			return
		}
		h.sup.mu.Lock()
		h.sup.current = next
		h.sup.mu.Unlock()
		w = next
	}
}

// worker returns the running handler, waiting briefly while it restarts.
func (h *Host) worker(ctx context.Context) (*worker, error) {
	for {
		h.sup.mu.Lock()
		w, fatal, stopped := h.sup.current, h.sup.fatal, h.sup.stopped
		h.sup.mu.Unlock()
		switch {
		case w != nil:
			return w, nil
		case fatal != nil:
			return nil, fatal
		case stopped:
			return nil, errors.New("the host is stopping")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(readinessPoll):
		}
	}
}

// executable resolves defaultExecutablePath as the host does: relative to
// the app root if that file exists, else as a command on PATH.
func (h *Host) executable() string {
	p := h.exePath
	if filepath.IsAbs(p) {
		return p
	}
	if abs := filepath.Join(h.cfg.AppRoot, p); fileExists(abs) {
		return abs
	}
	if found, err := exec.LookPath(p); err == nil {
		return found
	}
	return p
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

var percentVar = regexp.MustCompile(`%([A-Za-z_][A-Za-z0-9_]*)%`)

// expandPercent expands %VAR% as Environment.ExpandEnvironmentVariables.
func expandPercent(s string) string {
	return percentVar.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := os.LookupEnv(m[1 : len(m)-1]); ok {
			return v
		}
		return m
	})
}

// FreePort picks a free loopback port for a handler, as the host does
// before it starts one.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
