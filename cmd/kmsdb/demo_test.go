package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/internal/testdb"
)

// TestDemo runs the demo against the local PostgreSQL (real logins, password
// enforced) with short intervals, and checks the totals and that the role is gone.
func TestDemo(t *testing.T) {
	for _, engine := range []string{"postgres", "mysql"} {
		t.Run(engine, func(t *testing.T) {
			var out, errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			err := runDemo(ctx, []string{"--engine", engine, "--rotations", "3", "--every", "1s", "--workers", "4"}, &out, &errb)
			t.Logf("output:\n%s%s", out.String(), errb.String())
			if err != nil {
				t.Fatal(err)
			}
			text := out.String()
			for _, want := range []string{"queries/s", "errors 0", "rotated the password (3/3)", ", 0 failed;", "3 rotations", "dropped role"} {
				if !strings.Contains(text, want) {
					t.Errorf("the output lacks %q", want)
				}
			}
			if strings.Contains(text, "P@ss:w/rd") {
				t.Errorf("the output shows the password")
			}
			m := regexp.MustCompile(`throwaway role (\S+)`).FindStringSubmatch(text)
			if m == nil {
				t.Fatal("the output does not name the role")
			}
			var srv *testdb.Server
			if engine == "postgres" {
				srv = testdb.Postgres(t)
			} else {
				srv = testdb.MariaDB(t)
			}
			q := "SELECT count(*) FROM pg_roles WHERE rolname = $1"
			if engine == "mysql" {
				q = "SELECT count(*) FROM mysql.user WHERE user = ?"
			}
			var n int
			if err := srv.Admin().QueryRowContext(ctx, q, m[1]).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("role %s still exists after the demo", m[1])
			}
		})
	}
}

// TestDemoNoDatabase: with no reachable database, one line says what to set.
func TestDemoNoDatabase(t *testing.T) {
	t.Setenv(envDemoPG, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
	t.Setenv(envDemoMySQL, "root@tcp(127.0.0.1:1)/?timeout=2s")
	var out, errb bytes.Buffer
	err := runDemo(context.Background(), nil, &out, &errb)
	if err == nil {
		t.Fatal("the demo ran without a database")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, envDemoPG) || !strings.Contains(msg, envDemoMySQL) {
		t.Errorf("want one line naming %s and %s, got %q", envDemoPG, envDemoMySQL, msg)
	}
	if out.Len() != 0 {
		t.Errorf("unexpected output without -v: %q", out.String())
	}
	var code int
	var stderr bytes.Buffer
	code = exitCode(err, "demo", &stderr)
	if code != 1 || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
		t.Errorf("exit %d, stderr %q: want 1 and one line", code, stderr.String())
	}
}

func TestDemoUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if err := runDemo(context.Background(), []string{"--engine", "oracle"}, &out, &errb); err == nil ||
		!strings.Contains(err.Error(), "oracle") {
		t.Fatalf("want an --engine error, got %v", err)
	}
	if err := runDemo(context.Background(), []string{"extra"}, &out, &errb); err == nil {
		t.Fatal("an extra argument was accepted")
	}
}
