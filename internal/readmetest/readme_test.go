package readmetest

import (
	"context"
	"database/sql"
	"go/ast"
	"go/parser"
	"go/token"
	"log"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/drivers/pgkms"
)

// Each Example_readmeN holds the README's Nth Go block between the lines
// "// README:" and "// end"; the lines around it only make it compile
// (variables the snippet uses or leaves unused). They are compiled, not run:
// the snippets name hosts of Alibaba Cloud.

func Example_readme1() {
	ctx := context.Background()
	// README:
	db := sql.OpenDB(mysqlkms.NewConnector("db-secret")) // MySQL / MariaDB
	pg := sql.OpenDB(pgkms.NewConnector("db-secret"))    // PostgreSQL, database/sql
	pool, err := pgkms.NewPool(ctx, "db-secret")         // PostgreSQL, pgxpool
	// end
	_, _, _, _ = db, pg, pool, err
}

func Example_readme2() {
	// README:
	db := sql.OpenDB(mysqlkms.NewConnector("db-secret",
		mysqlkms.WithDSN("tcp(rm-xxx.mysql.rds.aliyuncs.com:3306)/app?parseTime=true"))) // no user, no password
	// end
	_ = db
}

func Example_readme3() {
	ctx := context.Background()
	// README:
	db := sql.OpenDB(pgkms.NewConnector("db-secret", pgkms.WithDSN("host=pgm-xxx.pg.rds.aliyuncs.com dbname=app")))
	pool, err := pgkms.NewPool(ctx, "db-secret", pgkms.WithDSN("postgres://pgm-xxx.pg.rds.aliyuncs.com/app"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	// end
	_ = db
}

func Example_readme4() {
	// README:
	cleanup, err := mysqlkms.RegisterDriver("mysqlkms-app",
		mysqlkms.WithLogger(slog.Default()), mysqlkms.WithGracePeriod(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer cleanup()
	db, err := sql.Open("mysqlkms-app", "db-secret?tcp(rm-xxx.mysql.rds.aliyuncs.com:3306)/app")
	// end
	_, _ = db, err
}

func Example_readme5() {
	// README:
	c := pgkms.NewConnector("db-secret")
	db := sql.OpenDB(c)
	st := c.Stats() // Logins, AuthFailures, Retries, PreviousUsed, Failed
	// end
	_, _ = db, st
}

// TestREADMESnippets: the README's Go blocks are, line for line (import
// blocks aside, white space folded), the marked parts of the Example_readmeN
// functions above, in order; a block changed in one place and not the other
// fails.
func TestREADMESnippets(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	snippets := exampleSnippets(t)
	if len(blocks) != len(snippets) {
		t.Fatalf("README has %d Go blocks, readme_test.go %d Example_readmeN functions: one each", len(blocks), len(snippets))
	}
	for i, b := range blocks {
		if got, want := fold(dropImports(b[1])), snippets[i]; got != want {
			t.Errorf("README Go block %d differs from Example_readme%d:\nREADME:\n%s\nexample:\n%s", i+1, i+1, got, want)
		}
	}
}

// exampleSnippets returns the marked lines of each Example_readmeN, in order.
func exampleSnippets(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "readme_test.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || !strings.HasPrefix(fn.Name.Name, "Example_readme") {
			continue
		}
		body := string(src[fn.Body.Pos():fn.Body.End()])
		_, rest, ok1 := strings.Cut(body, "// README:\n")
		snippet, _, ok2 := strings.Cut(rest, "// end\n")
		if !ok1 || !ok2 {
			t.Fatalf("%s lacks its // README: ... // end lines", fn.Name.Name)
		}
		out = append(out, fold(snippet))
	}
	return out
}

// dropImports removes an import block (a snippet shows its imports; the
// Example's file has them).
func dropImports(s string) string {
	return regexp.MustCompile(`(?s)^import \(.*?\)\n\n?`).ReplaceAllString(s, "")
}

// fold trims each line and drops empty ones.
func fold(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}
