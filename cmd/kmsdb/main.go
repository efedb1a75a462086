// Command kmsdb is the kmsdb command line: fetch a secret (redacted), check a database login through a secret,
// and run the local KMS emulator. Run `kmsdb` without arguments for the list of commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// runFunc runs one subcommand. ctx ends on SIGINT or SIGTERM; args exclude the command name.
type runFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

type command struct {
	name, help string
	run        runFunc
}

var commands = map[string]command{}

// register adds a subcommand; call it from an init function in the command's own file.
func register(name, help string, run runFunc) {
	if _, dup := commands[name]; dup {
		panic("kmsdb: command " + name + " registered twice")
	}
	commands[name] = command{name: name, help: help, run: run}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runMain dispatches to a subcommand and returns the exit code: 0 ok, 1 the command failed, 2 usage error.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return exitCode(c.run(ctx, []string{"-h"}, stdout, stderr), c.name, stderr)
			}
		}
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "kmsdb: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return exitCode(c.run(ctx, args[1:], stdout, stderr), c.name, stderr)
}

func exitCode(err error, name string, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "kmsdb %s: %v\n", name, err)
	return 1
}

// errUsage is returned (wrapped) by a command whose arguments are wrong after it printed its usage.
var errUsage = errors.New("usage error")

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: kmsdb COMMAND [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].help)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `kmsdb COMMAND -h` for a command's flags.")
}

// parseSecretArg parses args for a command that takes exactly one SECRET
// argument, with flags before or after it, and returns the secret name.
func parseSecretArg(fs *flag.FlagSet, cmd string, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return "", fmt.Errorf("%s: missing SECRET: %w", cmd, errUsage)
	}
	name := rest[0]
	if err := fs.Parse(rest[1:]); err != nil { // flags may follow the secret name
		return "", err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return "", fmt.Errorf("%s: one SECRET expected, got %d arguments: %w", cmd, fs.NArg()+1, errUsage)
	}
	if strings.TrimSpace(name) == "" {
		return "", fmt.Errorf("%s: empty SECRET name: %w", cmd, errUsage)
	}
	return name, nil
}
