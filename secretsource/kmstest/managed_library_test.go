package kmstest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// libraryDirs are the packages (with their subpackages) that read database, RAM and ECS secrets on their own:
// they must read them only as KMS serves managed secrets, ACSCurrent and ACSPrevious, never ACSPending and never
// by a version id (which KMS ignores without a stage). Paths are relative to this package.
var libraryDirs = []string{"../../connector", "../../internal/rotation", "../../drivers", "../../ramsecret", "../cache"}

// managedSecretHazards lists the places in f that would work against this emulator's old leniency and not
// against KMS: the ACSPending stage (a string literal or secretsource.StagePending), a VersionRef literal that
// sets a version id, and an assignment to a VersionID field (a VersionRef built piecewise).
func managedSecretHazards(fset *token.FileSet, f *ast.File) []string {
	var out []string
	report := func(n ast.Node, what string) {
		out = append(out, fmt.Sprintf("%s: %s", fset.Position(n.Pos()), what))
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BasicLit:
			if n.Kind == token.STRING && strings.Contains(n.Value, "ACSPending") {
				report(n, "reads the ACSPending stage")
			}
		case *ast.Ident:
			if n.Name == "StagePending" {
				report(n, "reads the ACSPending stage (StagePending)")
			}
		case *ast.CompositeLit:
			if !isVersionRefType(n.Type) {
				return true
			}
			for _, el := range n.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if !ok { // unkeyed: {Stage, VersionID}
					if len(n.Elts) > 1 {
						report(n, "builds a VersionRef with a version id")
					}
					break
				}
				if id, ok := kv.Key.(*ast.Ident); ok && id.Name == "VersionID" {
					report(kv, "builds a VersionRef with a version id")
				}
			}
		case *ast.AssignStmt:
			for _, l := range n.Lhs {
				if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "VersionID" {
					report(l, "sets a VersionID field")
				}
			}
		}
		return true
	})
	return out
}

func isVersionRefType(e ast.Expr) bool {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name == "VersionRef"
	case *ast.SelectorExpr:
		return t.Sel.Name == "VersionRef"
	}
	return false
}

// TestLibraryReadsManagedSecretsAsKMSServesThem: no non-test Go file of the connector (internal/rotation
// included), the drivers, ramsecret or the cache reads ACSPending or pins a version id. The emulator refuses both
// for managed secrets now; this keeps code from depending on them where no test happens to exercise it.
func TestLibraryReadsManagedSecretsAsKMSServesThem(t *testing.T) {
	fset := token.NewFileSet()
	files := 0
	for _, dir := range libraryDirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			files++
			for _, h := range managedSecretHazards(fset, f) {
				t.Errorf("%s: KMS serves managed secrets only at ACSCurrent and ACSPrevious and ignores a version id without a stage", h)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
	}
	if files < 20 {
		t.Fatalf("scanned only %d files: the library directories moved? (%v)", files, libraryDirs)
	}
}

// TestManagedSecretHazardsFinds: the scanner above flags each pattern it looks for, and not the reads it allows.
func TestManagedSecretHazardsFinds(t *testing.T) {
	const src = `package p

import "github.com/kmsdb/kmsdb/secretsource"

func bad(vs secretsource.VersionSource, id string) {
	vs.GetSecretVersion(ctx, "db", secretsource.VersionRef{Stage: secretsource.StagePending})
	vs.GetSecretVersion(ctx, "db", secretsource.VersionRef{Stage: "ACSPending"})
	vs.GetSecretVersion(ctx, "db", secretsource.VersionRef{VersionID: id})
	vs.GetSecretVersion(ctx, "db", secretsource.VersionRef{"ACSPrevious", id})
	var ref secretsource.VersionRef
	ref.VersionID = id
}

// good reads what KMS serves; ACSPending in a comment is fine.
func good(vs secretsource.VersionSource, s *secretsource.Secret) {
	vs.GetSecretVersion(ctx, "db", secretsource.VersionRef{Stage: secretsource.StagePrevious})
	vs.GetSecretVersion(ctx, "db", secretsource.VersionRef{})
	_ = s.VersionID()
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	got := managedSecretHazards(fset, f)
	wantLines := []int{6, 7, 8, 9, 11}
	if len(got) != len(wantLines) {
		t.Fatalf("found %d hazards, want %d:\n%s", len(got), len(wantLines), strings.Join(got, "\n"))
	}
	for i, line := range wantLines {
		if !strings.HasPrefix(got[i], fmt.Sprintf("p.go:%d:", line)) {
			t.Errorf("hazard %d: %s, want line %d", i, got[i], line)
		}
	}
}
