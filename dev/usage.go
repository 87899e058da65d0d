package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// commands are go run ./dev's commands, in the order help lists them. Each
// defines its flags in its case of dispatch, on a FlagSet from newFlagSet,
// and parses them before doing anything else: help runs each with -h, so
// that the usage it prints is the real FlagSets' and a new flag appears in
// it without more.
var commands = []struct {
	name string
	// usage is the command line, after "go run ./dev".
	usage   string
	summary string
}{
	{"up", "[up] [flags]", "the local stack (the default command): the Functions host stand-in running the handler, " +
		"services A and B, the Databricks and Entra ID stand-ins, and an OTLP trace sink that prints each finished trace as a tree"},
	{"stage", "stage [flags]", "build the app folder for func start and deployment: host.json, the function.json files and the handler"},
	{"check", "check [flags] FOLDER", "check a staged folder against the Functions host's rules"},
	{"bench", "bench [flags]", "measure the handler (cold starts, load with tracing on and off, memory); prints a table of figures and goals"},
	{"databricks", "databricks [flags]", "the Databricks stand-in on its own, with the notebook job deployed, for an app func start runs: " +
		"prints the DATABRICKS_HOST, DATABRICKS_JOB_ID and DATABRICKS_TOKEN settings for it, or writes them into local.settings.json (-settings)"},
}

// command reports whether name is a command, and its usage and summary.
func command(name string) (usage, summary string, ok bool) {
	for _, c := range commands {
		if c.name == name {
			return c.usage, c.summary, true
		}
	}
	return "", "", false
}

// commandNames lists the commands for a message: "up, stage, check or bench".
func commandNames() string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// isHelp reports whether arg, the first argument, asks for the help of
// every command.
func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "-help" || arg == "--help"
}

// newFlagSet is the FlagSet of command name: its errors and its usage (on
// -h) go to stderr, and parsing returns flag.ErrHelp on -h, which run
// turns into success.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(fs.Output(), name, fs) }
	return fs
}

// printUsage prints command name's usage line, summary and flags.
func printUsage(w io.Writer, name string, fs *flag.FlagSet) {
	usage, summary, _ := command(name)
	fmt.Fprintf(w, "go run ./dev %s\n  %s\n", usage, summary)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		fmt.Fprintln(w, "  (no flags)")
		return
	}
	fs.PrintDefaults()
}

// help prints the usage of every command, or of the one args names, to
// stdout: each command's own, printed by its FlagSet when it is run with
// -h.
func help(ctx context.Context, root string, args []string, stdout io.Writer) error {
	names := make([]string, 0, len(commands))
	switch {
	case len(args) == 0:
		fmt.Fprintln(stdout, "The local stack and tools of nbtrace. go run ./dev help COMMAND (or COMMAND -h) prints one command's usage.")
		fmt.Fprintln(stdout)
		for _, c := range commands {
			names = append(names, c.name)
		}
	case len(args) == 1:
		if _, _, ok := command(args[0]); !ok {
			return fmt.Errorf("help: unknown command %q: the commands are %s", args[0], commandNames())
		}
		names = append(names, args[0])
	default:
		return fmt.Errorf("help: one command at most, not %q", args)
	}
	for i, name := range names {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if err := dispatch(ctx, root, name, []string{"-h"}, io.Discard, stdout); !errors.Is(err, flag.ErrHelp) {
			return fmt.Errorf("help: %s -h did not print its usage (it must parse its flags first, from a newFlagSet): %v", name, err)
		}
	}
	return nil
}
