package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

func init() {
	register("version", "print the kmsdb version, VCS revision and Go version of this binary (also --version)", runVersion)
}

// readBuildInfo is debug.ReadBuildInfo; tests replace it.
var readBuildInfo = debug.ReadBuildInfo

// runVersion implements `kmsdb version` and `kmsdb --version`.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: kmsdb version\n\nPrints the module version of this binary (\"(devel)\" when built from a checkout),\n"+
			"the VCS revision and time it was built from, and the Go version and platform.\n")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	_, err := fmt.Fprintln(stdout, versionText())
	return err
}

// versionText is one line: "kmsdb v0.1.0 (rev 1a2b3c4d5e6f, 2026-11-29T10:00:00Z, modified) go1.26.8 linux/amd64".
// `go install …@version` fills in the module version; a build from a checkout has "(devel)" and the revision.
func versionText() string {
	version, detail := "(unknown)", ""
	goVersion := runtime.Version()
	if bi, ok := readBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		var rev, when, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = ", modified"
				}
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			detail = " (rev " + rev
			if when != "" {
				detail += ", " + when
			}
			detail += modified + ")"
		}
	}
	return fmt.Sprintf("kmsdb %s%s %s %s/%s", version, detail, goVersion, runtime.GOOS, runtime.GOARCH)
}
