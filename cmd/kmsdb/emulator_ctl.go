package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

func init() {
	register("emulator-ctl", "drive a running `kmsdb emulator`: rotate, inject faults, read call counters", runEmulatorCtl)
}

const emulatorCtlUsage = `usage: kmsdb emulator-ctl [--admin URL | --info FILE] COMMAND [args]

Drives a running ` + "`kmsdb emulator`" + ` through its admin endpoint (the "admin" URL of its
JSON line; default $KMSDB_EMULATOR_ADMIN). --info reads that URL from a file
holding the JSON line. Never prints a secret value.

commands:
  rotate SECRET                     rotate as RotateSecret does (with the emulator's --db-admin,
                                    the database password too); prints the new version id
  add-version [--stage S]... SECRET VERSION_ID VALUE_FILE
                                    store a version with a chosen value (VALUE_FILE, or - for
                                    stdin), for a secret of any type, as the test control
                                    AddVersion: stages default to ACSCurrent; the database is
                                    not changed
  fault [--action A] [--secret S] [--code C] [--http-status N] [--times N]
        [--latency D] [--drop] [--message M]
                                    inject a fault (e.g. --action GetSecretValue
                                    --code Rejected.Throttling --times 2)
  clear-faults                      remove every fault
  calls [--action A] [--secret S]   print how many requests were counted
  reset-calls                       set every counter to zero
  advance DURATION                  move the emulator clock forward (e.g. 2h)
  secret NAME                       print the versions and stages of a secret (JSON, no value)
  revoke-access-key ID              make an AccessKey unknown
  revoke-client-key ID              make a client key unknown

`

// runEmulatorCtl implements `kmsdb emulator-ctl`.
func runEmulatorCtl(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emulator-ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", os.Getenv("KMSDB_EMULATOR_ADMIN"), "admin URL of the emulator (its JSON line's \"admin\")")
	infoFile := fs.String("info", "", "file holding the emulator's JSON line (instead of --admin)")
	fs.Usage = func() {
		fmt.Fprint(stderr, emulatorCtlUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	base, err := adminBase(*admin, *infoFile)
	if err != nil {
		if errors.Is(err, errUsage) {
			fs.Usage()
		}
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usagef("a command is required")
	}
	cmd, ok := ctlCommands[fs.Arg(0)]
	if !ok {
		fs.Usage()
		return usagef("unknown command %q", fs.Arg(0))
	}
	c := &adminClient{base: base, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}}
	defer c.http.CloseIdleConnections()
	call := &ctlCall{c: c, name: fs.Arg(0), args: fs.Args()[1:], stdout: stdout, stderr: stderr, usage: fs.Usage}
	return cmd(ctx, call)
}

// adminBase is the admin URL from --admin or from the JSON line in --info.
func adminBase(admin, infoFile string) (*url.URL, error) {
	if infoFile != "" {
		b, err := os.ReadFile(infoFile)
		if err != nil {
			return nil, fmt.Errorf("--info: %w", err)
		}
		var info emulatorInfo
		if err := json.Unmarshal(bytes.TrimSpace(b), &info); err != nil || info.Admin == "" {
			return nil, fmt.Errorf("--info %s: not the emulator's JSON line with an \"admin\" URL", infoFile)
		}
		admin = info.Admin
	}
	if admin == "" {
		return nil, usagef("--admin, --info or KMSDB_EMULATOR_ADMIN is required")
	}
	base, err := url.Parse(admin)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("--admin %q: not an http URL", admin)
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	return base, nil
}

// ctlCall is one emulator-ctl command: its name, its arguments and where it prints.
type ctlCall struct {
	c              *adminClient
	name           string
	args           []string
	stdout, stderr io.Writer
	usage          func()
}

// one returns the command's single argument.
func (k *ctlCall) one(what string) (string, error) {
	if len(k.args) != 1 || k.args[0] == "" {
		k.usage()
		return "", usagef("%s takes one argument, %s", k.name, what)
	}
	return k.args[0], nil
}

// ctlCommands are emulator-ctl's commands (emulatorCtlUsage lists them).
var ctlCommands = map[string]func(context.Context, *ctlCall) error{
	"rotate":      ctlRotate,
	"add-version": ctlAddVersion,
	"fault":       ctlFault,
	"clear-faults": func(ctx context.Context, k *ctlCall) error {
		return k.c.do(ctx, http.MethodDelete, "faults", nil, nil, nil)
	},
	"calls": ctlCalls,
	"reset-calls": func(ctx context.Context, k *ctlCall) error {
		return k.c.do(ctx, http.MethodDelete, "calls", nil, nil, nil)
	},
	"advance":           ctlAdvance,
	"secret":            ctlSecret,
	"revoke-access-key": ctlRevoke,
	"revoke-client-key": ctlRevoke,
}

func ctlRotate(ctx context.Context, k *ctlCall) error {
	name, err := k.one("the secret name")
	if err != nil {
		return err
	}
	var out struct{ VersionID string }
	if err := k.c.do(ctx, http.MethodPost, "rotate", url.Values{"secret": {name}}, nil, &out); err != nil {
		return err
	}
	_, err = fmt.Fprintln(k.stdout, out.VersionID)
	return err
}

// stringsFlag collects a repeated flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func ctlAddVersion(ctx context.Context, k *ctlCall) error {
	ff := flag.NewFlagSet("emulator-ctl add-version", flag.ContinueOnError)
	ff.SetOutput(k.stderr)
	var stages stringsFlag
	ff.Var(&stages, "stage", "a stage of the version (repeat for several; default ACSCurrent)")
	if err := parseFlags(ff, k.args); err != nil {
		return err
	}
	if ff.NArg() != 3 || ff.Arg(0) == "" || ff.Arg(1) == "" || ff.Arg(2) == "" {
		k.usage()
		return usagef("add-version takes SECRET VERSION_ID VALUE_FILE (- for stdin)")
	}
	name, vid, file := ff.Arg(0), ff.Arg(1), ff.Arg(2)
	var in io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("add-version: value file: %w", err)
		}
		defer f.Close()
		in = f
	}
	const limit = 1 << 20
	value, err := io.ReadAll(io.LimitReader(in, limit+1))
	if err != nil {
		return fmt.Errorf("add-version: value file %s: %w", file, err)
	}
	if len(value) > limit {
		return fmt.Errorf("add-version: value file %s: larger than %d bytes", file, limit)
	}
	body, err := json.Marshal(map[string]any{"versionId": vid, "value": string(value), "stages": []string(stages)})
	if err != nil {
		return err
	}
	var out struct{ VersionID string }
	if err := k.c.do(ctx, http.MethodPost, "versions", url.Values{"secret": {name}}, body, &out); err != nil {
		return err
	}
	_, err = fmt.Fprintln(k.stdout, out.VersionID)
	return err
}

func ctlFault(ctx context.Context, k *ctlCall) error {
	ff := flag.NewFlagSet("emulator-ctl fault", flag.ContinueOnError)
	ff.SetOutput(k.stderr)
	var f struct {
		Action     string `json:"action"`
		Secret     string `json:"secret,omitempty"`
		Code       string `json:"code,omitempty"`
		HTTPStatus int    `json:"httpStatus,omitempty"`
		Times      int    `json:"times,omitempty"`
		Latency    string `json:"latency,omitempty"`
		Drop       bool   `json:"drop,omitempty"`
		Message    string `json:"message,omitempty"`
	}
	ff.StringVar(&f.Action, "action", "*", "action it hits (GetSecretValue, dkms:GetSecretValue, sts:AssumeRole, …; * = all)")
	ff.StringVar(&f.Secret, "secret", "", "secret it hits (default any)")
	ff.StringVar(&f.Code, "code", "", "error code to answer with (Rejected.Throttling, ServiceUnavailableTemporary, InternalFailure, …)")
	ff.IntVar(&f.HTTPStatus, "http-status", 0, "HTTP status (default from the code)")
	ff.IntVar(&f.Times, "times", 0, "how many requests it hits (0 = until clear-faults)")
	latency := ff.Duration("latency", 0, "delay before answering")
	ff.BoolVar(&f.Drop, "drop", false, "close the connection without an answer")
	ff.StringVar(&f.Message, "message", "", "error message")
	if err := parseFlags(ff, k.args); err != nil {
		return err
	}
	if ff.NArg() > 0 {
		return usagef("fault: unexpected argument %q", ff.Arg(0))
	}
	if *latency > 0 {
		f.Latency = latency.String()
	}
	body, err := json.Marshal(f) //nolint:gosec // not a credential: Fault.Secret is the name of the secret to fault
	if err != nil {
		return err
	}
	return k.c.do(ctx, http.MethodPost, "faults", nil, body, nil)
}

func ctlCalls(ctx context.Context, k *ctlCall) error {
	cf := flag.NewFlagSet("emulator-ctl calls", flag.ContinueOnError)
	cf.SetOutput(k.stderr)
	action := cf.String("action", "", "count only this action (default all)")
	secret := cf.String("secret", "", "count only this secret (default all)")
	if err := parseFlags(cf, k.args); err != nil {
		return err
	}
	var out struct{ Calls int }
	if err := k.c.do(ctx, http.MethodGet, "calls", url.Values{"action": {*action}, "secret": {*secret}}, nil, &out); err != nil {
		return err
	}
	_, err := fmt.Fprintln(k.stdout, out.Calls)
	return err
}

func ctlAdvance(ctx context.Context, k *ctlCall) error {
	d, err := k.one("a duration such as 2h")
	if err != nil {
		return err
	}
	if _, err := time.ParseDuration(d); err != nil {
		return usagef("advance %q: not a duration such as 2h", d)
	}
	return k.c.do(ctx, http.MethodPost, "advance", url.Values{"by": {d}}, nil, nil)
}

func ctlSecret(ctx context.Context, k *ctlCall) error {
	name, err := k.one("the secret name")
	if err != nil {
		return err
	}
	var out json.RawMessage
	if err := k.c.do(ctx, http.MethodGet, "secrets/"+url.PathEscape(name), nil, nil, &out); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = k.stdout.Write(buf.Bytes())
	return err
}

func ctlRevoke(ctx context.Context, k *ctlCall) error {
	id, err := k.one("the key id")
	if err != nil {
		return err
	}
	return k.c.do(ctx, http.MethodPost, k.name, url.Values{"id": {id}}, nil, nil)
}

// adminClient calls the emulator's admin endpoint.
type adminClient struct {
	base *url.URL
	http *http.Client
}

func (c *adminClient) do(ctx context.Context, method, op string, q url.Values, body []byte, out any) error {
	u := c.base.JoinPath(op) // op is escaped: a secret name may hold '/', '?' or '%'
	if q != nil {
		u.RawQuery = q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("emulator admin: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("emulator admin %s %s: %w", method, op, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("emulator admin %s %s: HTTP %d", method, op, resp.StatusCode)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("emulator admin %s %s: answer is not JSON: %w", method, op, err)
		}
	}
	return nil
}
