package azurite

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Version is the Azurite the project pins: the newest that runs on Node 20
// (3.36 and later need Node 21 or newer).
const Version = "3.35.0"

// InstallCommand installs the pinned Azurite into the project's npm
// folder, run from the project's root (.nbtrace/ is git-ignored).
const InstallCommand = "npm install --prefix .nbtrace/node --save-exact --no-audit --no-fund azurite@" + Version

// The emulator's one account and its key, which are public: "Azurite
// accepts the same well-known account and key used by the legacy Azure
// Storage Emulator" (https://learn.microsoft.com/azure/storage/common/storage-use-azurite#well-known-storage-account-and-key).
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// ErrNotInstalled is Find's error when neither Node with the project's
// Azurite nor azurite-blob on the PATH is there.
var ErrNotInstalled = errors.New("Azurite is not installed (in the project's root: " + InstallCommand + ")")

// Install is a runnable Azurite Blob service.
type Install struct {
	// Command and Args start the Blob service; more arguments follow.
	Command string
	Args    []string
	// Version is the installed version, "" when unknown (from the PATH).
	Version string
}

// Find looks for Azurite: the pinned version in root/.nbtrace/node, run
// with node, else azurite-blob on the PATH. It returns ErrNotInstalled
// when there is neither, and an error naming the version when the
// project's folder holds another one.
func Find(root string) (Install, error) {
	dir := filepath.Join(root, ".nbtrace", "node", "node_modules", "azurite")
	raw, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err == nil {
		var pkg struct{ Version string }
		if err := json.Unmarshal(raw, &pkg); err != nil {
			return Install{}, fmt.Errorf("%s: %w", dir, err)
		}
		if pkg.Version != Version {
			return Install{}, fmt.Errorf("%s holds Azurite %s; the project pins %s (%s)", dir, pkg.Version, Version, InstallCommand)
		}
		node, err := exec.LookPath("node")
		if err != nil {
			return Install{}, fmt.Errorf("Azurite is in %s but node is not on the PATH: %w", dir, err)
		}
		return Install{Command: node, Args: []string{filepath.Join(dir, "dist", "src", "blob", "main.js")}, Version: pkg.Version}, nil
	}
	// An npm install -g azurite: its azurite-blob is a node script whose
	// #!/usr/bin/env node line execs node, so one process runs.
	if p, err := exec.LookPath("azurite-blob"); err == nil {
		return Install{Command: p}, nil
	}
	return Install{}, ErrNotInstalled
}

// Server is a running Azurite Blob service.
type Server struct {
	// BlobURL is the Blob service's address, such as http://127.0.0.1:41234.
	BlobURL string
	// ConnectionString signs in to it with the well-known account key, as
	// AzureWebJobsStorage would.
	ConnectionString string
	cmd              *exec.Cmd
	dir              string
	out              *tail
	exited           chan struct{}
	stopOnce         sync.Once
	stopErr          error
}

// listening is Azurite's line once the Blob service listens
// (src/blob/main.ts: "Azurite Blob service successfully listens on …").
var listening = regexp.MustCompile(`successfully listens on (http://\S+)`)

// Start starts the Blob service of in on a free loopback port, with its
// data in memory and its telemetry off, and returns once it answers.
// ctx bounds the start only; Stop ends the service, and so does the end
// of this process. Its error, when Azurite exits or does not answer in
// time, holds Azurite's last output.
func Start(ctx context.Context, in Install) (_ *Server, err error) {
	dir, err := os.MkdirTemp("", "nbtrace-azurite-")
	if err != nil {
		return nil, err
	}
	args := append(append([]string{}, in.Args...),
		"--blobHost", "127.0.0.1", "--blobPort", "0", // port 0: the line it prints names the port it got
		"--inMemoryPersistence", "--extentMemoryLimit", "256",
		"--disableTelemetry", // Azurite reports usage to Microsoft by default
		"--silent",
		// azblob v1.8.3 sends x-ms-version 2026-12-06; Azurite 3.35.0
		// knows versions up to 2025-11-05 and refuses newer ones without
		// this flag.
		"--skipApiVersionCheck",
	)
	cmd := exec.Command(in.Command, args...)
	cmd.Dir = dir // where Azurite would write anything it writes
	out := &tail{}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, out
	childOf(cmd)
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start Azurite: %w", err)
	}
	s := &Server{cmd: cmd, dir: dir, out: out, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = pw.Close()
		close(s.exited)
	}()
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			_, _ = out.Write(append(sc.Bytes(), '\n'))
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case url <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case s.BlobURL = <-url:
	case <-s.exited:
		return nil, fmt.Errorf("Azurite exited at start: %s", out)
	case <-ctx.Done():
		return nil, fmt.Errorf("Azurite did not start: %w; its output: %s", ctx.Err(), out)
	}
	s.ConnectionString = ConnectionString(s.BlobURL)
	if err := s.waitAnswer(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// ConnectionString is the connection string of the emulator's account on
// the Blob service at blobURL, in the explicit form Azurite's docs give
// for a service on another port
// (https://learn.microsoft.com/azure/storage/common/storage-use-azurite#http-connection-strings).
func ConnectionString(blobURL string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + AccountName + ";AccountKey=" + AccountKey +
		";BlobEndpoint=" + blobURL + "/" + AccountName + ";"
}

// CreateContainer makes the container name, if it is not there.
func (s *Server) CreateContainer(ctx context.Context, name string) error {
	c, err := container.NewClientFromConnectionString(s.ConnectionString, name, nil)
	if err != nil {
		return err
	}
	if _, err := c.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return fmt.Errorf("create container %s in Azurite: %w", name, err)
	}
	return nil
}

// waitAnswer waits until the service answers HTTP (any status).
func (s *Server) waitAnswer(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	for {
		res, err := client.Get(s.BlobURL + "/" + AccountName + "?comp=list")
		if err == nil {
			res.Body.Close()
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("Azurite exited at start: %s", s.out)
		case <-ctx.Done():
			return fmt.Errorf("Azurite does not answer on %s: %w", s.BlobURL, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop kills the service and removes its folder; its data goes with it.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.exited:
		default:
			if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				s.stopErr = err
			}
			<-s.exited
		}
		if err := os.RemoveAll(s.dir); err != nil && s.stopErr == nil {
			s.stopErr = err
		}
	})
	return s.stopErr
}

// tail keeps the last 4 KiB written to it, for error messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if n := len(t.buf) - 4096; n > 0 {
		t.buf = t.buf[n:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

// RunInstall runs InstallCommand in root (npm, from the npm registry): what
// go run ./dev does once, when Node's npm is there and Azurite is not. Its
// error holds npm's last output.
func RunInstall(ctx context.Context, root string) error {
	f := strings.Fields(InstallCommand)
	cmd := exec.CommandContext(ctx, f[0], f[1:]...)
	cmd.Dir = root
	out := &tail{}
	cmd.Stdout, cmd.Stderr = out, out
	childOf(cmd)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", InstallCommand, err, out)
	}
	return nil
}
