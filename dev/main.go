// Command dev runs nbtrace's local development stack and builds its
// deployment folder.
//
//	go run ./dev                      the local stack on http://localhost:7071
//	go run ./dev stage -o dist        the deployment folder (linux/amd64, no local settings)
//	go run ./dev stage -local -o dist the folder for func start (this machine, local settings in it)
//	go run ./dev check [-local] dist  check a staged folder against the host's rules
//	go run ./dev databricks           the Databricks stand-in alone, for func start
//	go run ./dev bench                measure the handler; prints a table of figures and goals
//	go run ./dev help                 every command and its flags
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nbtrace/nbtrace/dev/azurite"
	"github.com/nbtrace/nbtrace/dev/bench"
	"github.com/nbtrace/nbtrace/dev/dbxstandin"
	"github.com/nbtrace/nbtrace/dev/funchost"
	"github.com/nbtrace/nbtrace/dev/procs"
	"github.com/nbtrace/nbtrace/dev/stack"
	"github.com/nbtrace/nbtrace/dev/stage"
)

func main() {
	// A killed go run ./dev stops the stack as Ctrl+C does.
	procs.OnParentExit(func() {
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			_ = p.Signal(syscall.SIGTERM)
		}
	})
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := stack.RepoRoot(cwd)
	if err != nil {
		return err
	}
	if len(args) > 0 && isHelp(args[0]) {
		return help(ctx, root, args[1:], stdout)
	}
	cmd := "up"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	if _, _, ok := command(cmd); !ok {
		return fmt.Errorf("unknown command %q: the commands are %s (go run ./dev help describes them)", cmd, commandNames())
	}
	err = dispatch(ctx, root, cmd, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // the command's FlagSet printed its usage
	}
	return err
}

// dispatch runs command cmd of the commands table with its arguments.
func dispatch(ctx context.Context, root, cmd string, args []string, stdout, stderr io.Writer) error {
	switch cmd {
	case "up":
		return up(ctx, root, args, stdout, stderr)
	case "stage":
		fs := newFlagSet("stage", stderr)
		out := fs.String("o", filepath.Join(root, "dist"), "the folder to write (replaced)")
		goos := fs.String("goos", "linux", "GOOS of the handler (with -local: this machine's)")
		goarch := fs.String("goarch", "amd64", "GOARCH of the handler (with -local: this machine's)")
		local := fs.Bool("local", false, "a folder for func start on this machine: the handler built for it, and -settings copied in (never for deployment)")
		settings := fs.String("settings", filepath.Join(root, "local.settings.json"), "with -local, the local.settings.json to copy into the folder, where func start reads it")
		if err := fs.Parse(args); err != nil {
			return err
		}
		o := stage.Options{RepoRoot: root, Out: *out, GOOS: *goos, GOARCH: *goarch, Stderr: stderr}
		if *local {
			o.Settings = *settings
			o.GOOS, o.GOARCH = localTarget(fs)
		}
		if err := stage.Stage(ctx, o); err != nil {
			return err
		}
		if *local {
			fmt.Fprintf(stdout, "staged %s (%s/%s, with %s) for func start --script-root %s; not for deployment\n", *out, o.GOOS, o.GOARCH, o.Settings, *out)
			return nil
		}
		fmt.Fprintf(stdout, "staged %s (%s/%s): deploy it (azd deploy); for func start, stage with -local\n", *out, o.GOOS, o.GOARCH)
		return nil
	case "check":
		fs := newFlagSet("check", stderr)
		goos := fs.String("goos", "linux", "GOOS the handler must be built for (with -local: this machine's)")
		goarch := fs.String("goarch", "amd64", "GOARCH the handler must be built for (with -local: this machine's)")
		local := fs.Bool("local", false, "check a folder for func start (stage -local): it must hold local.settings.json, which a deployment package must not")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: go run ./dev check [-local] [-goos linux -goarch amd64] FOLDER (a folder go run ./dev stage wrote, such as dist)")
		}
		if *local {
			lgoos, lgoarch := localTarget(fs)
			if err := stage.CheckLocal(fs.Arg(0), lgoos, lgoarch); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s is ready for func start --script-root %s (%s/%s)\n", fs.Arg(0), fs.Arg(0), lgoos, lgoarch)
			return nil
		}
		if err := stage.Check(fs.Arg(0), *goos, *goarch); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s has the layout the Functions host needs (%s/%s), for deployment\n", fs.Arg(0), *goos, *goarch)
		return nil
	case "bench":
		o := bench.Defaults(root)
		o.Out, o.Log = stdout, stderr
		fs := newFlagSet("bench", stderr)
		fs.IntVar(&o.ColdStarts, "coldstarts", o.ColdStarts, "cold starts of each handler (at least 20)")
		fs.IntVar(&o.Rounds, "rounds", o.Rounds, "load rounds of each handler, tracing on and off alternating")
		fs.DurationVar(&o.RoundTime, "round-time", o.RoundTime, "length of each load round")
		fs.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "concurrent invocations in the load rounds")
		fs.IntVar(&o.FlushCount, "flush-count", o.FlushCount, "-count of the flush policy benchmark")
		fs.StringVar(&o.Results, "o", o.Results, "file for the raw results (Go benchmark format, for benchstat)")
		fs.Func("set", "a setting KEY=VALUE for every handler measured (repeatable), such as NBTRACE_FLUSH_POLICY=batch", func(v string) error {
			if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
				return fmt.Errorf("%q is not KEY=VALUE", v)
			}
			o.Settings = append(o.Settings, v)
			return nil
		})
		if err := fs.Parse(args); err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		_, err := bench.Run(ctx, o)
		return err
	case "databricks":
		fs := newFlagSet("databricks", stderr)
		addr := fs.String("addr", "127.0.0.1:0", "the stand-in's address; 127.0.0.1:0 picks a free port")
		settings := fs.String("settings", "", "a local.settings.json to write DATABRICKS_HOST, DATABRICKS_JOB_ID and DATABRICKS_TOKEN into (made from local.settings.json.template when missing); empty: print them only")
		runner := fs.String("runner", "python", "how runs execute the notebook: python (papermill in .venv) or none (a run succeeds at once)")
		otlp := fs.String("otlp", "", "OTLP/HTTP base URL the notebook exports its spans to, such as http://127.0.0.1:4318; empty: none")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return serveDatabricks(ctx, root, *addr, *settings, *runner, *otlp, stdout, stderr)
	default:
		return fmt.Errorf("command %q is in the commands table but has no case in dispatch", cmd)
	}
}

func up(ctx context.Context, root string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("up", stderr)
	addr := fs.String("addr", "", "the host's address (default localhost:7071, or local.settings.json Host.LocalHttpPort); 127.0.0.1:0 picks a free port")
	otlp := fs.String("otlp", "127.0.0.1:4318", "the trace sink's address; 127.0.0.1:0 picks a free port")
	// The flag that sets each address stack.Start listens on, which its
	// ListenError names by its option.
	addrFlags := map[string]string{"Addr": "-addr", "OTLPAddr": "-otlp"}
	mode := fs.String("protocol", "", "payload, forwarding or proxying; default: what host.json says")
	gen := fs.String("host-generation", string(funchost.Gen2026), "the Functions host to behave as: 2026 (today's; proxying, its call to the handler not recorded) or 2024 (host 4.1037)")
	telemetryMode := fs.String("telemetry-mode", "", "host.json's telemetryMode for the host stand-in: ApplicationInsights or OpenTelemetry; default: what host.json says")
	settings := fs.String("settings", filepath.Join(root, "local.settings.json"), "local.settings.json to read, if it exists")
	forward := fs.String("forward", "", "also send every trace, log and metric to this OTLP/HTTP base URL (such as a local Jaeger)")
	key := fs.String("function-key", "", "check function keys as Azure does, accepting this one (?code= or x-functions-key); func start checks none")
	runner := fs.String("runner", "python", "how Databricks runs execute the notebook: python (papermill) or none (a run succeeds at once; for contract tests)")
	auth := fs.String("auth", string(stack.AuthIdentity), "how the handler signs in to Databricks: identity (a managed identity through a local identity endpoint, as in Azure) or token (a personal access token)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var forwarding, proxying *bool
	on, off := true, false
	switch *mode {
	case "":
	case "payload":
		forwarding, proxying = &off, &off
	case "forwarding":
		forwarding, proxying = &on, &off
	case "proxying":
		forwarding, proxying = &off, &on
	default:
		return fmt.Errorf("-protocol: %q is not payload, forwarding or proxying", *mode)
	}
	if *gen != string(funchost.Gen2024) && *gen != string(funchost.Gen2026) {
		return fmt.Errorf("-host-generation: %q is not 2024 or 2026", *gen)
	}
	var runs dbxstandin.Runner
	switch *runner {
	case "python":
	case "none":
		runs = dbxstandin.RunnerFunc(func(context.Context, dbxstandin.RunContext) error { return nil })
	default:
		return fmt.Errorf("-runner: %q is not python or none", *runner)
	}
	var keys []string
	if *key != "" {
		keys = []string{*key}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(stderr, "starting the local stack…")
	began := time.Now()
	installAzurite(ctx, root, stderr)
	s, err := stack.Start(ctx, stack.Options{
		RepoRoot: root, Addr: *addr, OTLPAddr: *otlp, Forwarding: forwarding, Proxying: proxying,
		HostGeneration: funchost.Generation(*gen), TelemetryMode: *telemetryMode,
		SettingsFile: *settings, Traces: stdout, Log: stderr, Settle: 750 * time.Millisecond, Forward: *forward,
		FunctionKeys: keys, Runner: runs, Auth: stack.Auth(*auth),
	})
	if lerr := (*stack.ListenError)(nil); errors.As(err, &lerr) {
		f, why := addrFlags[lerr.Option], ""
		if errors.Is(err, syscall.EADDRINUSE) {
			why = " (another stack may be running)"
		}
		return fmt.Errorf("%w%s: pick another address with %s, or %s 127.0.0.1:0 for a free port", err, why, f, f)
	}
	if err != nil {
		return err
	}
	app := s.Host.App()
	fmt.Fprintf(stdout, "\nnbtrace local stack (a %s Functions host), started in %s\n", *gen, time.Since(began).Round(100*time.Millisecond))
	fmt.Fprintf(stdout, "  Functions host stand-in  %s\n", s.URL)
	for _, fn := range app.Functions {
		fmt.Fprintf(stdout, "    %-5s %s%s  (auth: %s)\n", strings.Join(fn.Methods, ","), s.URL, fn.Path(app.Host.RoutePrefix), fn.AuthLevel)
	}
	fmt.Fprintf(stdout, "  Trace sink (OTLP/HTTP)   %s/v1/traces   spans as JSON: %s/api/traces/{traceId}\n", s.OTLPURL, s.OTLPURL)
	fmt.Fprintf(stdout, "  Databricks stand-in      %s   job %d (deployed from notebooks/)\n", s.DatabricksURL, s.JobID)
	if s.Identity != nil {
		fmt.Fprintf(stdout, "    signed in as           managed identity %s (a local App Service identity endpoint), admitted with the workspace's ARM id\n", s.Identity.ClientID)
	} else {
		fmt.Fprintln(stdout, "    signed in as           a personal access token (DATABRICKS_TOKEN)")
	}
	if python, ok, reason := stack.Python(root); ok {
		fmt.Fprintf(stdout, "  Notebook runs            papermill with %s; executed notebooks in .nbtrace/runs/\n", python)
	} else {
		fmt.Fprintf(stdout, "  Notebook runs            UNAVAILABLE: %s\n", reason)
	}
	fmt.Fprintf(stdout, "\nTry:\n  curl -s -X POST %s/api/validate -H 'Content-Type: application/json' \\\n    -d '{\"dataset\":\"sales\",\"date\":\"%s\",\"rowCount\":1200}'\n",
		s.URL, time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly))
	fmt.Fprintf(stdout, "  curl -s -X POST '%s/api/notebook?wait=60s' -H 'Content-Type: application/json' \\\n    -d '{\"dataset\":\"sales\",\"date\":\"%s\",\"rowCount\":1200}'\n",
		s.URL, time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly))
	fmt.Fprintln(stdout, "Each finished trace is printed below as a tree. Ctrl+C stops.")
	<-ctx.Done()
	fmt.Fprintln(stderr, "\nstopping: the handler finishes in-flight invocations and flushes its spans…")
	return s.Stop()
}

// installAzurite installs the pinned Azurite once, when Node's npm is
// there and Azurite is not, so that the stack claims runs as the app does
// in Azure; without npm, or when the install fails, the stack says so and
// keeps the in-memory guard.
func installAzurite(ctx context.Context, root string, stderr io.Writer) {
	if _, err := azurite.Find(root); !errors.Is(err, azurite.ErrNotInstalled) {
		return
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return
	}
	fmt.Fprintf(stderr, "installing Azurite %s, the storage emulator, into .nbtrace/node (once, from the npm registry)…\n", azurite.Version)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := azurite.RunInstall(ctx, root); err != nil {
		fmt.Fprintf(stderr, "claims: could not install Azurite: %v\n", err)
	}
}
