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

// Exit codes. A command may define more (ping: exitPreviousOnly).
const (
	exitOK     = 0
	exitFailed = 1 // the command ran and failed
	exitUsage  = 2 // wrong command line: nothing was done
)

// runMain dispatches to a subcommand and returns the exit code: 0 ok, 1 the command failed, 2 usage error.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-version", "--version":
		return exitCode(runVersion(ctx, args[1:], stdout, stderr), "version", stderr)
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

// exitCode prints err, once, as "kmsdb NAME: ..." and maps it to the exit code: 0 for none (or -h), 2 for a
// usage error, an *exitError's code, else 1.
func exitCode(err error, name string, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "kmsdb %s: %v\n", name, err)
	var ee *exitError
	switch {
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.As(err, &ee):
		return ee.code
	}
	return exitFailed
}

// errUsage matches every usage error (errors.Is); make them with usagef.
var errUsage = errors.New("usage error")

// usageError is a wrong command line. Its text is the reason only: exitCode prefixes the command.
type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == errUsage }

// usagef returns a usage error: exitCode prints it after whatever usage the command printed, and exits 2.
func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// exitError is a command outcome with its own exit code (other than 0, 1 and 2).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// parseFlags is fs.Parse without the flag package's own printing: -h prints fs.Usage and returns flag.ErrHelp;
// a wrong flag prints fs.Usage and returns a usage error holding the reason, which exitCode prints once, last.
func parseFlags(fs *flag.FlagSet, args []string) error {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		usage()
		return err
	}
	usage()
	return usagef("%v", err)
}

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
	fmt.Fprintln(w, "Run `kmsdb COMMAND -h` for a command's flags, `kmsdb version` (or --version) for the build.")
	fmt.Fprintln(w, "Exit status: 0 ok, 1 the command failed, 2 usage error (ping adds 3, see `kmsdb ping -h`).")
}

// parseSecretArg parses args for a command that takes exactly one SECRET
// argument, with flags before or after it, and returns the secret name.
func parseSecretArg(fs *flag.FlagSet, args []string) (string, error) {
	if err := parseFlags(fs, args); err != nil {
		return "", err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return "", usagef("missing SECRET")
	}
	name := rest[0]
	if err := parseFlags(fs, rest[1:]); err != nil { // flags may follow the secret name
		return "", err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return "", usagef("one SECRET expected, got %d arguments", fs.NArg()+1)
	}
	if strings.TrimSpace(name) == "" {
		return "", usagef("empty SECRET name")
	}
	return name, nil
}
