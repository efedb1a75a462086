package credprov

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"time"
	"unicode"

	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/kmsdb/kmsdb/secretsource"
)

// External mode's limits: credentials-go's default timeout, and how much of
// the command's stdout and stderr is kept (the rest is discarded).
const (
	externalTimeout   = 60 * time.Second
	externalOutputMax = 64 << 10
)

// External runs a CLI profile's process_command (mode External) with
// credentials-go v1.4.14's rules (ExternalCredentialsProvider): the command
// is split as it splits it (splitProcessCommand), runs with the process's
// environment for at most 60 s, and prints on stdout
// {"mode":"AK"|"StsToken","access_key_id","access_key_secret","sts_token",
// "expiration":"2006-01-02T15:04:05Z"}. access_key_id and access_key_secret
// are required, sts_token too in mode StsToken. Credentials with an
// expiration are kept until 180 s before it; without one the command runs
// at every call.
//
// Unlike credentials-go, nothing is printed (it prints the command and its
// whole output, secret included, when the output is not JSON), at most 64
// KiB of stdout and of stderr are kept, and errors say what went wrong
// ("exit status 2", "not valid JSON at offset 7") without ever quoting the
// output or stderr. Nor is the output written back to the configuration, as
// the CLI and credentials-go do.
type External struct {
	args    []string
	timeout time.Duration
	cache   *cached
}

// NewExternal builds the provider for command.
func NewExternal(command string) (*External, error) {
	args, err := splitProcessCommand(command, runtime.GOOS)
	if err != nil {
		return nil, configError("external", err.Error())
	}
	p := &External{args: args, timeout: externalTimeout}
	p.cache = newCached(p.fetch)
	return p, nil
}

// externalAnswer is credentials-go's externalCredentialResponse.
type externalAnswer struct {
	Mode            string `json:"mode"`
	AccessKeyID     string `json:"access_key_id"`
	AccessKeySecret string `json:"access_key_secret"`
	SecurityToken   string `json:"sts_token"`
	Expiration      string `json:"expiration"`
}

// capped keeps the first max bytes written and counts the rest.
type capped struct {
	buf     bytes.Buffer
	max     int
	dropped int
}

func (c *capped) Write(b []byte) (int, error) {
	room := c.max - c.buf.Len()
	if room >= len(b) {
		return c.buf.Write(b)
	}
	if room > 0 {
		c.buf.Write(b[:room])
	}
	c.dropped += len(b) - max(room, 0)
	return len(b), nil
}

func (p *External) fetch() (session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.args[0], p.args[1:]...) //nolint:gosec // G204: the user's own process_command
	stdout := &capped{max: externalOutputMax}
	stderr := &capped{max: externalOutputMax}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// A child the command leaves behind, holding the pipes, must not hold
	// Wait past the timeout.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	errLen := stderr.buf.Len() + stderr.dropped
	switch {
	case ctx.Err() != nil:
		return session{}, p.fail(secretsource.KindTimeout, fmt.Sprintf("timed out after %v", p.timeout), errLen)
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return session{}, p.fail(secretsource.KindUnknown, ee.String(), errLen) // "exit status 2", "signal: killed"
		}
		// exec's own errors name the program and the reason, never output.
		return session{}, p.fail(secretsource.KindConfig, "cannot run it: "+err.Error(), errLen)
	case stdout.dropped > 0:
		return session{}, p.fail(secretsource.KindInvalidAnswer, fmt.Sprintf("its output is longer than %d KiB", externalOutputMax>>10), errLen)
	}
	var a externalAnswer
	if err := json.Unmarshal(stdout.buf.Bytes(), &a); err != nil {
		return session{}, p.fail(secretsource.KindInvalidAnswer, "its output is not valid JSON: "+externalJSONProblem(err, stdout.buf.Len()), errLen)
	}
	if a.AccessKeyID == "" || a.AccessKeySecret == "" {
		return session{}, p.fail(secretsource.KindInvalidAnswer, "its output has no access_key_id or no access_key_secret", errLen)
	}
	if a.Mode == "StsToken" && a.SecurityToken == "" {
		return session{}, p.fail(secretsource.KindInvalidAnswer, "its output is mode StsToken without sts_token", errLen)
	}
	s := session{accessKeyID: a.AccessKeyID, accessKeySecret: a.AccessKeySecret, securityToken: a.SecurityToken}
	if a.Expiration != "" {
		// As credentials-go: an expiration it cannot parse means no caching.
		if t, err := time.Parse("2006-01-02T15:04:05Z", a.Expiration); err == nil {
			s.expires = t
		}
	}
	return s, nil
}

// fail is the error of a run: what went wrong, and only the size of stderr.
func (p *External) fail(kind secretsource.Kind, what string, stderrLen int) *Error {
	msg := "process_command " + p.args[0] + ": " + what
	if stderrLen > 0 {
		msg += fmt.Sprintf(" (stderr: %d bytes, not shown)", stderrLen)
	}
	return &Error{Provider: "external", Kind: kind, Message: msg}
}

// externalJSONProblem says where JSON is wrong without quoting it.
func externalJSONProblem(err error, n int) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case n == 0:
		return "the output is empty"
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d of %d bytes", se.Offset, n)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be a JSON %s, not %s", te.Field, te.Type, te.Value)
	}
	return fmt.Sprintf("not a JSON object (%d bytes)", n)
}

// GetCredentials runs the command, or returns the credentials it printed
// last while they are not within 180 s of their expiration.
func (p *External) GetCredentials() (*providers.Credentials, error) {
	s, err := p.cache.get()
	if err != nil {
		return nil, err
	}
	return s.credentials(p.GetProviderName()), nil
}

// GetProviderName is "external", credentials-go's name.
func (p *External) GetProviderName() string { return "external" }

// splitProcessCommand is credentials-go v1.4.14's splitProcessCommandForOS
// (credentials/providers/command_split.go, Apache License 2.0, Copyright
// Alibaba Cloud), copied unchanged but for its name: the same
// process_command gives the same argv.
func splitProcessCommand(command, goos string) ([]string, error) {
	command = strings.TrimSpace(command)
	if command == "" {
		return nil, fmt.Errorf("process_command is empty")
	}

	windows := goos == "windows"
	var args []string
	var current strings.Builder
	inSingle := false
	inDouble := false
	// hasToken tracks that a token has started even if it is empty, so quoted
	// empty arguments like `tool "" arg` keep their empty argv element.
	hasToken := false

	flush := func() {
		if hasToken {
			args = append(args, current.String())
			current.Reset()
			hasToken = false
		}
	}

	runes := []rune(command)
	for i := 0; i < len(runes); i++ {
		r := runes[i]
		if inSingle {
			if r == '\'' {
				inSingle = false
			} else {
				current.WriteRune(r)
			}
			continue
		}
		if inDouble {
			if r == '"' {
				inDouble = false
				continue
			}
			if r == '\\' && i+1 < len(runes) {
				next := runes[i+1]
				if windows {
					// On Windows only \" is an escape inside double quotes.
					if next == '"' {
						current.WriteRune(next)
						i++
						continue
					}
				} else if next == '\n' {
					// Backslash-newline is a line continuation: both removed.
					i++
					continue
				} else if next == '"' || next == '\\' || next == '$' || next == '`' {
					current.WriteRune(next)
					i++
					continue
				}
			}
			current.WriteRune(r)
			continue
		}
		// unquoted
		if r == '\\' {
			if windows {
				// Path separator — keep literal.
				hasToken = true
				current.WriteRune(r)
				continue
			}
			if i+1 >= len(runes) {
				return nil, fmt.Errorf("invalid process_command: trailing backslash")
			}
			if runes[i+1] == '\n' {
				// Backslash-newline is a line continuation: both removed.
				i++
				continue
			}
			hasToken = true
			current.WriteRune(runes[i+1])
			i++
			continue
		}
		if r == '\'' {
			inSingle = true
			hasToken = true
			continue
		}
		if r == '"' {
			inDouble = true
			hasToken = true
			continue
		}
		if unicode.IsSpace(r) {
			flush()
			continue
		}
		hasToken = true
		current.WriteRune(r)
	}

	if inSingle || inDouble {
		return nil, fmt.Errorf("invalid process_command: unclosed quote")
	}
	flush()
	if len(args) == 0 || args[0] == "" {
		return nil, fmt.Errorf("process_command is empty")
	}
	return args, nil
}
