package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/nbtrace/nbtrace/dev/dbxstandin"
)

// VenvHint is how to make the Python environment notebook runs need, run
// in the project's root: the Makefile's venv target, which makes .venv from
// the pinned notebooks/requirements.txt, as CI and make test make it. It is
// the one way every message and the README give.
const VenvHint = "make venv"

// Python returns the interpreter of the project's virtual environment
// (NBTRACE_PYTHON, else .venv/bin/python under root) and whether it has
// papermill; when it has not, the reason says so.
func Python(root string) (python string, ok bool, reason string) {
	python = os.Getenv("NBTRACE_PYTHON")
	if python == "" {
		python = filepath.Join(root, ".venv", "bin", "python")
	}
	if _, err := os.Stat(python); err != nil {
		return python, false, fmt.Sprintf("no Python environment at %s (make it with: %s)", python, VenvHint)
	}
	out, err := exec.Command(python, "-c", "import papermill, opentelemetry.sdk").CombinedOutput()
	if err != nil {
		return python, false, fmt.Sprintf("%s lacks papermill or the OpenTelemetry SDK (%s); run: %s", python, bytes.TrimSpace(out), VenvHint)
	}
	return python, true, ""
}

// computeEnv is the environment a run's notebook gets: this process's,
// without its telemetry settings, which a Databricks compute would not have
// (the notebook reads its own from its settings file and secrets).
func computeEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OTEL_") || strings.HasPrefix(k, "APPLICATIONINSIGHTS_") || strings.HasPrefix(k, "NBTRACE_") || strings.HasPrefix(k, "DATABRICKS_") ||
			strings.HasPrefix(k, "IDENTITY_") || strings.HasPrefix(k, "MSI_") || k == "AZURE_CLIENT_ID" || k == "REQUESTS_CA_BUNDLE" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// NotebookRunner runs a Databricks run's notebook as a job cluster would,
// locally: papermill executes the notebook imported into the stand-in, with
// the run's job parameters as papermill parameters and the job cluster's
// environment variables, in a folder holding the files imported beside it
// (its Python module). Each executed notebook is kept for inspection in
// .nbtrace/runs/<run id>/ under root. A failing notebook fails the run.
// Without Python, every run fails and says how to get it. env is added to
// each run's environment (what the compute provides: an identity endpoint,
// trusted certificates).
func NotebookRunner(root string, log io.Writer, env ...string) dbxstandin.Runner {
	var once sync.Once
	var python, reason string
	var ok bool
	return dbxstandin.RunnerFunc(func(ctx context.Context, rc dbxstandin.RunContext) error {
		once.Do(func() { python, ok, reason = Python(root) })
		if !ok {
			return fmt.Errorf("notebook runs are unavailable: %s", reason)
		}
		if rc.Notebook == nil {
			return fmt.Errorf("no notebook was imported at %s", rc.NotebookPath)
		}
		dir, err := runDir(filepath.Join(root, ".nbtrace", "runs"), rc.RunID)
		if err != nil {
			return err
		}
		for name, b := range rc.Folder {
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(name)), b, 0o644); err != nil {
				return err
			}
		}
		input := filepath.Join(dir, "input.ipynb")
		if err := os.WriteFile(input, rc.Notebook, 0o644); err != nil {
			return err
		}
		args := []string{"-m", "papermill", input, filepath.Join(dir, "output.ipynb"), "--cwd", dir, "--log-output", "--no-progress-bar", "-k", "python3"}
		names := make([]string, 0, len(rc.Parameters))
		for k := range rc.Parameters {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			args = append(args, "-r", k, rc.Parameters[k])
		}
		cmd := exec.CommandContext(ctx, python, args...)
		cmd.Dir = dir
		cmd.Env = computeEnv(os.Environ())
		for k, v := range rc.EnvVars {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		// What dbutils.secrets would read on Databricks: the module reads
		// it here when there is no dbutils, and fails on a missing secret
		// as dbutils does.
		secrets, err := json.Marshal(rc.Secrets)
		if err != nil {
			return err
		}
		cmd.Env = append(cmd.Env, "NBTRACE_LOCAL_SECRETS="+string(secrets))
		// What dbutils.credentials.getServiceCredentialsProvider would
		// give: the client id of each service credential's identity.
		creds, err := json.Marshal(rc.ServiceCredentials)
		if err != nil {
			return err
		}
		cmd.Env = append(cmd.Env, "NBTRACE_LOCAL_SERVICE_CREDENTIALS="+string(creds))
		cmd.Env = append(cmd.Env, env...)
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		err = cmd.Run()
		_ = os.WriteFile(filepath.Join(dir, "papermill.log"), out.Bytes(), 0o644)
		if err != nil {
			fmt.Fprintf(log, "[databricks] run %d failed; see %s\n", rc.RunID, dir)
			return fmt.Errorf("the notebook failed (%v); the executed notebook is in %s", err, dir)
		}
		fmt.Fprintf(log, "[databricks] run %d succeeded; executed notebook in %s\n", rc.RunID, dir)
		return nil
	})
}

// runDir makes the folder that keeps run id's notebook under parent:
// parent/<run id>, or, should a run of another stack have kept its output
// under the same id, parent/<run id>-<random>; never another run's.
func runDir(parent string, id int64) (string, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	dir := filepath.Join(parent, strconv.FormatInt(id, 10))
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		return os.MkdirTemp(parent, strconv.FormatInt(id, 10)+"-")
	}
	return dir, err
}
