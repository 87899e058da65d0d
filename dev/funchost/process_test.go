package funchost

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a custom handler (fakeHandler) and as a host
// stand-in process (fakeHost), chosen by the environment.
func TestMain(m *testing.M) {
	switch os.Getenv("FUNCHOST_TEST_ROLE") {
	case "handler":
		fakeHandler()
		return
	case "host":
		fakeHost()
		return
	case "failing":
		// A handler that stops at start-up for lack of a setting.
		fmt.Fprintln(os.Stderr, "handler: function \"notebook\": DATABRICKS_HOST is not set")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// fakeHandler answers GET /, serves its environment as a JSON array at
// GET /env, and exits with the code POST /exit?code=N names. It notes a
// SIGTERM in $FUNCHOST_TEST_SIGNALS, and prints its pid and port on stdout.
func fakeHandler() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		for range sig {
			f, _ := os.OpenFile(os.Getenv("FUNCHOST_TEST_SIGNALS"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			fmt.Fprintln(f, "SIGTERM")
			f.Close()
		}
	}()
	port := os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT")
	fmt.Printf("pid=%d port=%s\n", os.Getpid(), port)
	http.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		os.Exit(code)
	})
	http.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) { _ = json.NewEncoder(w).Encode(os.Environ()) })
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	_ = http.ListenAndServe("127.0.0.1:"+port, nil)
}

// fakeHost starts a host stand-in over the app in $FUNCHOST_TEST_APP,
// prints the handler's pid, and waits to be killed.
func fakeHost() {
	h, err := Start(context.Background(), Config{AppRoot: os.Getenv("FUNCHOST_TEST_APP"), Env: []string{"FUNCHOST_TEST_ROLE=handler"}, Log: os.Stderr})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	pid, _, _ := h.HandlerProcess()
	fmt.Printf("handler=%d\n", pid)
	select {}
}

// fakeApp writes an app whose handler is this test binary.
func fakeApp(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hj, _ := json.Marshal(map[string]any{"version": "2.0", "customHandler": map[string]any{"description": map[string]any{"defaultExecutablePath": exe}}})
	fj := `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["post"],"authLevel":"anonymous"},{"type":"http","direction":"out","name":"res"}]}`
	if err := os.WriteFile(filepath.Join(dir, "host.json"), hj, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "echo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "echo", "function.json"), []byte(fj), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startFake(t *testing.T, extraEnv ...string) *Host {
	t.Helper()
	var log strings.Builder
	h, err := Start(context.Background(), Config{AppRoot: fakeApp(t), Env: append([]string{"FUNCHOST_TEST_ROLE=handler"}, extraEnv...), Log: &lockedBuilder{b: &log}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Stop() })
	return h
}

type lockedBuilder struct{ b *strings.Builder }

func (l *lockedBuilder) Write(p []byte) (int, error) { return l.b.Write(p) }

// exitWith makes the running handler exit with code, and waits until the
// host has dealt with it: a new handler, or none for good.
func exitWith(t *testing.T, h *Host, code int) (newPid int, running bool) {
	t.Helper()
	pid, base, ok := h.HandlerProcess()
	if !ok {
		t.Fatal("no handler running")
	}
	_, _ = http.Post(base+"/exit?code="+strconv.Itoa(code), "text/plain", nil)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		h.sup.mu.Lock()
		exited, fatal := h.sup.exited, h.sup.fatal
		h.sup.mu.Unlock()
		if now, _, ok := h.HandlerProcess(); ok && now != pid {
			return now, true
		}
		if exited != nil || fatal != nil {
			return 0, false
		}
	}
	t.Fatalf("the host did nothing after the handler exited with %d", code)
	return 0, false
}

// TestExitCodes: the host's rules for a handler that exits.
func TestExitCodes(t *testing.T) {
	t.Run("0 is not restarted", func(t *testing.T) {
		h := startFake(t)
		if _, running := exitWith(t, h, 0); running {
			t.Fatal("a handler that exited with 0 was restarted")
		}
		if _, err := h.worker(context.Background()); err == nil || !strings.Contains(err.Error(), "code 0") {
			t.Errorf("invocations after exit 0: %v", err)
		}
	})
	t.Run("200 restarts without counting", func(t *testing.T) {
		h := startFake(t)
		_, base, _ := h.HandlerProcess()
		for i := range 4 {
			if _, running := exitWith(t, h, 200); !running {
				t.Fatalf("exit 200 number %d was not restarted", i+1)
			}
		}
		if _, now, _ := h.HandlerProcess(); now != base {
			t.Errorf("the restarted handler is on %s, not on the host's port %s", now, base)
		}
	})
	t.Run("the third error stops the host", func(t *testing.T) {
		h := startFake(t)
		for i := range 2 {
			if _, running := exitWith(t, h, 3); !running {
				t.Fatalf("error %d was not restarted", i+1)
			}
		}
		if _, running := exitWith(t, h, 3); running {
			t.Fatal("the third error within 30 minutes was restarted")
		}
		if _, err := h.worker(context.Background()); err == nil || !strings.Contains(err.Error(), "Shutting down Functions Host") {
			t.Errorf("after three errors: %v", err)
		}
		var logged bool
		for _, r := range h.Logs() {
			logged = logged || (r.Level == Error && strings.Contains(r.Message, "Language Worker Process exited") && strings.Contains(r.Message, "code 3"))
		}
		if !logged {
			t.Error("the exits were not logged as errors")
		}
	})
}

// TestStopKills: the host never asks the handler to stop; it kills it.
func TestStopKills(t *testing.T) {
	signals := filepath.Join(t.TempDir(), "signals")
	h := startFake(t, "FUNCHOST_TEST_SIGNALS="+signals)
	pid, _, _ := h.HandlerProcess()
	start := time.Now()
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > disposeWait {
		t.Errorf("stop took %s", took)
	}
	if b, _ := os.ReadFile(signals); len(b) > 0 {
		t.Errorf("the handler was sent %q", b)
	}
	if alive(pid) {
		t.Errorf("handler %d still runs after Stop", pid)
	}
}

// TestHandlerDiesWithTheHost: a host stand-in killed with SIGKILL leaves no
// handler behind holding its port.
func TestHandlerDiesWithTheHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the kernel kills a dead parent's children on Linux only (Pdeathsig)")
	}
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "FUNCHOST_TEST_ROLE=host", "FUNCHOST_TEST_APP="+fakeApp(t))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var pid int
	if _, err := fmt.Fscanf(out, "handler=%d\n", &pid); err != nil || pid <= 0 {
		t.Fatalf("the host stand-in did not start a handler: %v", err)
	}
	if !alive(pid) {
		t.Fatal("the handler is not running")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	for deadline := time.Now().Add(2 * time.Second); alive(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("handler %d outlived its host stand-in", pid)
		}
	}
}

// alive reports whether process pid runs (and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil && !isLinux()
	}
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] != "Z"
}

func isLinux() bool { _, err := os.Stat("/proc/self/stat"); return err == nil }
