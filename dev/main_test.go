package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nbtrace/nbtrace/dev/azurite"
	"github.com/nbtrace/nbtrace/dev/internal/syncbuf"
	"github.com/nbtrace/nbtrace/dev/procs"
)

// TestMain ends the tests when go test is killed: the handlers a stack
// starts die with this process.
func TestMain(m *testing.M) {
	procs.OnParentExit(func() { os.Exit(3) })
	os.Exit(m.Run())
}

// flagsOf are the flags each command has today; a flag added since shows
// in help by construction (help prints the commands' own FlagSets).
var flagsOf = map[string][]string{
	"up":         {"addr", "otlp", "protocol", "host-generation", "telemetry-mode", "settings", "forward", "function-key", "runner", "auth"},
	"stage":      {"o", "goos", "goarch", "local", "settings"},
	"check":      {"goos", "goarch", "local"},
	"bench":      {"coldstarts", "rounds", "round-time", "concurrency", "flush-count", "o", "set"},
	"databricks": {"addr", "settings", "runner", "otlp"},
}

// sections splits help's output into each command's part, by the usage
// lines that start them.
func sections(t *testing.T, out string) map[string]string {
	t.Helper()
	got := map[string]string{}
	var name string
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "go run ./dev "); ok {
			name = strings.Trim(strings.Fields(rest)[0], "[]")
		}
		if name != "" {
			got[name] += line + "\n"
		}
	}
	return got
}

func TestHelpListsEveryCommandAndFlag(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), args, &stdout, &stderr); err != nil {
				t.Fatalf("run(%q) = %v, want nil (exit status 0)", args, err)
			}
			got := sections(t, stdout.String())
			if len(got) != len(commands) || len(got) != len(flagsOf) {
				t.Errorf("help has sections for %d commands, want %d (%d in the table):\n%s", len(got), len(flagsOf), len(commands), stdout.String())
			}
			for _, c := range commands {
				part := got[c.name]
				if !strings.Contains(part, c.summary) {
					t.Errorf("%s: no summary in help:\n%s", c.name, part)
				}
				for _, f := range flagsOf[c.name] {
					if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(f) + `\b`).MatchString(part) {
						t.Errorf("%s: flag -%s missing from help:\n%s", c.name, f, part)
					}
				}
			}
		})
	}
}

func TestHelpOfOneCommand(t *testing.T) {
	for _, args := range [][]string{{"help", "stage"}, {"stage", "-h"}, {"stage", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), args, &stdout, &stderr); err != nil {
				t.Fatalf("run(%q) = %v, want nil", args, err)
			}
			got := sections(t, stdout.String()+stderr.String())
			if len(got) != 1 || !strings.Contains(got["stage"], "  -goarch") {
				t.Errorf("want stage's usage alone, got:\n%s%s", stdout.String(), stderr.String())
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	for _, args := range [][]string{{"nope"}, {"help", "nope"}} {
		err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "up, stage, check, bench or databricks") {
			t.Errorf("run(%q) = %v, want an error listing the commands", args, err)
		}
	}
}

// TestListenErrorNamesTheFlag: an address in use fails up at once, before
// any build, with the flag that picks another.
func TestListenErrorNamesTheFlag(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, tc := range []struct{ flag, other string }{{"-addr", "-otlp"}, {"-otlp", "-addr"}} {
		t.Run(tc.flag, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var stderr bytes.Buffer
			err := run(ctx, []string{tc.flag, held.Addr().String(), tc.other, "127.0.0.1:0", "-settings", ""}, &bytes.Buffer{}, &stderr)
			if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "pick another address with "+tc.flag) {
				t.Errorf("err = %v, want address already in use, naming %s", err, tc.flag)
			}
			if strings.Contains(stderr.String(), "building the handler") {
				t.Errorf("the handler was built before the address was found in use:\n%s", stderr.String())
			}
		})
	}
}

// hostURLLine is the line of up's output that dev/contract.sh reads the
// host's URL from (its sed pattern matches the same).
var hostURLLine = regexp.MustCompile(`(?m)^  Functions host stand-in  +(http://\S+)`)

// TestUpOnFreePortsBesideATakenDefault: with the default ports (7071,
// 4318) held by another listener, as by a stack a developer left running,
// up asked for free ports starts, and prints the URL it chose, which
// answers.
func TestUpOnFreePortsBesideATakenDefault(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:7071", "127.0.0.1:4318"} {
		if ln, err := net.Listen("tcp", addr); err == nil {
			defer ln.Close()
		} else {
			t.Logf("%s is held already: %v", addr, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-otlp", "127.0.0.1:0", "-runner", "none", "-settings", ""}, &stdout, &stderr)
	}()
	var url string
	deadline := time.After(5 * time.Minute) // the first build is slow
	for url == "" {
		select {
		case err := <-done:
			t.Fatalf("up ended: %v\n%s%s", err, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("up printed no URL within 5 minutes:\n%s%s", stdout.String(), stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if m := hostURLLine.FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
		}
	}
	if strings.HasSuffix(url, ":7071") {
		t.Errorf("up took the default port: %s", url)
	}
	res, err := http.Get(url + "/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET %s/api/openapi.json: %s", url, res.Status)
	}
	for _, want := range []string{"building the handler (the first build takes a few minutes", "built the handler in "} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("up's log lacks %q:\n%s", want, stderr.String())
		}
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("up stopped with %v", err)
	}
}

// TestUpInstallsAzuriteWhenNpmIsThere: with npm on the PATH and no Azurite,
// the stack installs the pinned one (here a stand-in npm that writes what
// npm install would), and says so; without npm it installs nothing.
func TestUpInstallsAzuriteWhenNpmIsThere(t *testing.T) {
	root, bin := t.TempDir(), t.TempDir()
	npm := "#!/bin/sh\n" +
		`[ "$*" = "` + strings.TrimPrefix(azurite.InstallCommand, "npm ") + `" ] || exit 3` + "\n" +
		"mkdir -p .nbtrace/node/node_modules/azurite && echo '{\"version\":\"" + azurite.Version + "\"}' > .nbtrace/node/node_modules/azurite/package.json\n"
	if err := os.WriteFile(filepath.Join(bin, "npm"), []byte(npm), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH")) // the stand-in npm first
	var out bytes.Buffer
	installAzurite(context.Background(), root, &out)
	if _, err := os.Stat(filepath.Join(root, ".nbtrace", "node", "node_modules", "azurite", "package.json")); err != nil {
		t.Fatalf("npm was not run as InstallCommand says: %v; output %q", err, out.String())
	}
	if !strings.Contains(out.String(), "installing Azurite "+azurite.Version) {
		t.Errorf("output %q does not say what it installs", out.String())
	}
	// Installed: nothing to do. No npm: nothing either.
	out.Reset()
	installAzurite(context.Background(), root, &out)
	t.Setenv("PATH", t.TempDir())
	installAzurite(context.Background(), t.TempDir(), &out)
	if out.Len() != 0 {
		t.Errorf("installed again, or without npm: %q", out.String())
	}
}
