package funchost

import (
	"bytes"
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// readinessPoll is the host's poll interval while waiting for the handler
// (HttpWorkerProcess: 25 ms).
const readinessPoll = 25 * time.Millisecond

// worker is one run of the custom handler process.
type worker struct {
	cmd  *exec.Cmd
	id   string // FUNCTIONS_CUSTOMHANDLER_WORKER_ID
	port int
	done chan struct{} // closed when the process has exited
	err  error         // the exit error, valid after done
	// disposed: the host killed it; its exit is not an error.
	disposed atomic.Bool
}

// disposeWait is how long the host waits for a killed worker to exit
// (WorkerProcess: processExitTimeoutInMilliseconds = 1000).
const disposeWait = time.Second

// startWorker starts the handler on the host's port and waits until it
// answers GET /. Its stdout and stderr become the host's log records.
func (h *Host) startWorker(ctx context.Context) (*worker, error) {
	exe := h.executable()
	args := make([]string, len(h.args))
	for i, a := range h.args {
		args[i] = expandPercent(a)
	}
	cmd := exec.Command(exe, args...)
	cmd.Dir = h.workingDir
	id := newGUID()
	environ := h.cfg.Environ
	if environ == nil {
		environ = os.Environ()
	}
	cmd.Env = append(append(slices.Clip(environ), h.cfg.Env...),
		"FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(h.port),
		"FUNCTIONS_HTTPWORKER_PORT="+strconv.Itoa(h.port),
		"FUNCTIONS_CUSTOMHANDLER_WORKER_ID="+id,
		"FUNCTIONS_APP_ROOT_PATH="+h.cfg.AppRoot,
	)
	cmd.Stdout = &lineWriter{line: func(l string) { h.console(l, false, id) }, raw: h.cfg.Stdout}
	cmd.Stderr = &lineWriter{line: func(l string) { h.console(l, true, id) }, raw: h.cfg.Stderr}
	childOf(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", exe, err)
	}
	w := &worker{cmd: cmd, id: id, port: h.port, done: make(chan struct{})}
	go func() {
		w.err = cmd.Wait()
		cmd.Stdout.(*lineWriter).flush()
		cmd.Stderr.(*lineWriter).flush()
		close(w.done)
	}()

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
			w.dispose(h)
			return nil, fmt.Errorf("the handler did not answer GET / within %s (initializationTimeout)", h.initTimeout)
		case <-ctx.Done():
			w.dispose(h)
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

func (w *worker) baseURL() string { return "http://127.0.0.1:" + strconv.Itoa(w.port) }

// dispose kills the handler as the host does whenever it stops or restarts
// a worker: Process.Kill(), SIGKILL on Linux, never a signal it could
// handle (WorkerProcess.Dispose); then it waits up to a second.
func (w *worker) dispose(h *Host) {
	w.disposed.Store(true)
	_ = w.cmd.Process.Kill()
	select {
	case <-w.done:
	case <-time.After(disposeWait):
		h.log(LogRecord{Time: time.Now(), Level: Warning, Category: "Worker.HttpWorkerProcess." + w.id,
			Message: fmt.Sprintf("Worker process %d has not exited despite waiting for %d ms", w.cmd.Process.Pid, disposeWait.Milliseconds())})
	}
}

// exitCode is the worker's exit code, or -1 when a signal ended it.
func (w *worker) exitCode() int {
	var exit *exec.ExitError
	if errors.As(w.err, &exit) {
		return exit.ExitCode()
	}
	if w.err == nil {
		return 0
	}
	return -1
}

// supervisor applies the host's rules to a worker that exits
// (WorkerProcess.OnProcessExited, HttpFunctionInvocationDispatcher):
//   - exit code 0: not restarted; invocations fail from then on;
//   - exit code 200: restarted, not counted as an error;
//   - any other exit, or a start that fails: an error, and a restart;
//     the third error, each within 30 minutes of the one before (the
//     window starts over after a longer gap), stops the host
//     (ErrorEventsThreshold = 3, WorkerRestartErrorIntervalThresholdInMinutes).
type supervisor struct {
	mu      sync.Mutex
	current *worker
	errors  []time.Time
	stopped bool
	exited  error // set when the worker exited with 0
	fatal   error
}

const (
	errorThreshold = 3
	errorWindow    = 30 * time.Minute
	// restartExitCode asks the host for a restart
	// (WorkerConstants.IntentionalRestartExitCode).
	restartExitCode = 200
)

// countError adds an error and reports whether the host must stop. The
// caller holds sup.mu.
func (sup *supervisor) countError(now time.Time) bool {
	if n := len(sup.errors); n > 0 && now.Sub(sup.errors[n-1]) > errorWindow {
		sup.errors = sup.errors[:0]
	}
	sup.errors = append(sup.errors, now)
	return len(sup.errors) >= errorThreshold
}

func (h *Host) supervise(ctx context.Context, w *worker) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.done:
		}
		if w.disposed.Load() {
			return
		}
		code := w.exitCode()
		h.sup.mu.Lock()
		if h.sup.stopped {
			h.sup.mu.Unlock()
			return
		}
		h.sup.current = nil
		switch code {
		case 0:
			h.sup.exited = errors.New("the handler exited with code 0; the host does not restart it")
			h.sup.mu.Unlock()
			h.logf("%v", h.sup.exited)
			return
		case restartExitCode:
			h.sup.mu.Unlock()
			h.logf("the handler exited with code 200: restarting it (Language Worker Process exited and needs to be restarted.)")
		default:
			stop := h.sup.countError(time.Now())
			h.sup.mu.Unlock()
			h.log(LogRecord{Time: time.Now(), Level: Error, Category: "Worker.HttpWorkerProcess." + w.id,
				Message: fmt.Sprintf("Language Worker Process exited. Pid=%d. %s exited with code %d", w.cmd.Process.Pid, filepath.Base(w.cmd.Path), code)})
			if stop {
				h.fail3()
				return
			}
		}
		next, err := h.restart(ctx)
		if err != nil {
			return
		}
		w = next
	}
}

// restart starts a new worker; a failed start is an error too.
func (h *Host) restart(ctx context.Context) (*worker, error) {
	for {
		next, err := h.startWorker(ctx)
		if err == nil {
			h.sup.mu.Lock()
			stopped := h.sup.stopped
			if !stopped {
				h.sup.current = next
			}
			h.sup.mu.Unlock()
			if stopped { // the host stopped while this one started
				next.dispose(h)
				return nil, errors.New("the host is stopping")
			}
			return next, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		h.logf("%v", err)
		h.sup.mu.Lock()
		stop := h.sup.countError(time.Now())
		h.sup.mu.Unlock()
		if stop {
			h.fail3()
			return nil, err
		}
	}
}

// fail3 stops the host after the third error, as it stops the application.
func (h *Host) fail3() {
	h.sup.mu.Lock()
	h.sup.fatal = errors.New("Exceeded http worker restart retry count. Shutting down Functions Host")
	h.sup.mu.Unlock()
	h.log(LogRecord{Time: time.Now(), Level: Error, Category: "Host.Function.Invocation", Message: h.sup.fatal.Error()})
}

// worker returns the running handler, waiting briefly while it restarts.
func (h *Host) worker(ctx context.Context) (*worker, error) {
	for {
		h.sup.mu.Lock()
		w, fatal, exited, stopped := h.sup.current, h.sup.fatal, h.sup.exited, h.sup.stopped
		h.sup.mu.Unlock()
		switch {
		case w != nil:
			return w, nil
		case fatal != nil:
			return nil, fatal
		case exited != nil:
			return nil, exited
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

// lineWriter hands each whole line written to it to line, and copies the
// raw output to raw when set.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	line func(string)
	raw  io.Writer
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.raw != nil {
		_, _ = lw.raw.Write(p)
	}
	lw.buf = append(lw.buf, p...)
	for {
		i := bytes.IndexByte(lw.buf, '\n')
		if i < 0 {
			break
		}
		lw.line(strings.TrimSuffix(string(lw.buf[:i]), "\r"))
		lw.buf = lw.buf[i+1:]
	}
	if len(lw.buf) > 1<<20 { // a line over 1 MiB is logged in parts
		lw.line(string(lw.buf))
		lw.buf = lw.buf[:0]
	}
	return len(p), nil
}

// flush logs a last line that ended without a newline.
func (lw *lineWriter) flush() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if len(lw.buf) > 0 {
		lw.line(string(lw.buf))
		lw.buf = nil
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
