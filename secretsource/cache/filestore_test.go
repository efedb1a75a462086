package cache

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

func testKey(t testing.TB) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestFileStoreRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	st, err := NewFileStore(dir, testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fetched := t0.Add(-time.Minute)
	want := secretsource.Fields{Name: "acs/ram/user/app", VersionID: "v7-version-d41f9a", VersionStages: []string{"ACSCurrent"},
		SecretType: secretsource.TypeRAM, DataType: secretsource.DataText, Value: []byte("TOP-SECRET-VALUE"),
		CreateTime: t0.Add(-time.Hour), AutomaticRotation: true, RotationInterval: 7 * 24 * time.Hour,
		NextRotationDate: t0.Add(time.Hour), LastRotationDate: t0.Add(-time.Hour), ExtendedConfig: `{"SecretSubType":"RamUserAccessKey"}`}
	if err := st.Save(ctx, Record{Secret: secretsource.NewSecret(want), FetchedAt: fetched}); err != nil {
		t.Fatal(err)
	}
	// Saving again replaces the file.
	if err := st.Save(ctx, Record{Secret: secretsource.NewSecret(want), FetchedAt: fetched}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, %v", fi.Mode().Perm(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("%d files, want 1", len(ents))
	}
	path := filepath.Join(dir, ents[0].Name())
	fi, _ = os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	// Each at least 8 bytes: a shorter one turns up in random ciphertext by
	// chance ("v7" did, about once in a hundred runs).
	for _, leak := range []string{"TOP-SECRET-VALUE", "acs/ram/user/app", "v7-version-d41f9a", "RamUserAccessKey"} {
		if bytes.Contains(raw, []byte(leak)) {
			t.Errorf("file holds %q in clear", leak)
		}
	}
	recs, err := st.Load(ctx)
	if err != nil || len(recs) != 1 {
		t.Fatalf("Load = %d records, %v", len(recs), err)
	}
	got := recs[0].Secret.Fields()
	if !recs[0].FetchedAt.Equal(fetched) || got.Name != want.Name || got.VersionID != want.VersionID ||
		string(got.Value) != string(want.Value) || got.RotationInterval != want.RotationInterval ||
		!got.NextRotationDate.Equal(want.NextRotationDate) || got.ExtendedConfig != want.ExtendedConfig ||
		got.SecretType != want.SecretType || !got.CreateTime.Equal(want.CreateTime) || !got.AutomaticRotation {
		t.Errorf("round trip: got %+v", recs[0].Secret)
	}
	if err := st.Delete(ctx, want.Name); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, want.Name); err != nil {
		t.Errorf("deleting a missing record: %v", err)
	}
	if recs, _ := st.Load(ctx); len(recs) != 0 {
		t.Errorf("%d records after Delete", len(recs))
	}
}

func TestFileStoreRejects(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := testKey(t)
	st, _ := NewFileStore(dir, key)
	_ = st.Save(ctx, Record{Secret: secretsource.NewSecret(secretsource.Fields{Name: "a", VersionID: "1", Value: []byte("x")}), FetchedAt: t0})
	_ = st.Save(ctx, Record{Secret: secretsource.NewSecret(secretsource.Fields{Name: "b", VersionID: "1", Value: []byte("y")}), FetchedAt: t0})

	t.Run("wrong key", func(t *testing.T) {
		other, _ := NewFileStore(dir, testKey(t))
		recs, err := other.Load(ctx)
		if len(recs) != 0 || err == nil || !strings.Contains(err.Error(), "cannot decrypt") {
			t.Errorf("Load with another key = %d records, %v", len(recs), err)
		}
	})
	t.Run("swapped files", func(t *testing.T) {
		a, b := filepath.Join(dir, st.fileName("a")), filepath.Join(dir, st.fileName("b"))
		da, _ := os.ReadFile(a)
		db, _ := os.ReadFile(b)
		_ = os.WriteFile(a, db, 0o600)
		_ = os.WriteFile(b, da, 0o600)
		recs, err := st.Load(ctx)
		if len(recs) != 0 || err == nil {
			t.Errorf("swapped files loaded: %d records, %v", len(recs), err)
		}
		_ = os.WriteFile(a, da, 0o600)
		_ = os.WriteFile(b, db, 0o600)
	})
	t.Run("tampered and garbage files", func(t *testing.T) {
		a := filepath.Join(dir, st.fileName("a"))
		da, _ := os.ReadFile(a)
		bad := bytes.Clone(da)
		bad[len(bad)-1] ^= 1
		_ = os.WriteFile(a, bad, 0o600)
		_ = os.WriteFile(filepath.Join(dir, "junk"+fileExt), []byte("junk"), 0o600)
		_ = os.WriteFile(filepath.Join(dir, "README"), []byte("ignored"), 0o600)
		recs, err := st.Load(ctx)
		if len(recs) != 1 || recs[0].Secret.Name() != "b" || err == nil {
			t.Errorf("Load = %v, %v; want only b and an error", recs, err)
		}
		if strings.Contains(fmt.Sprint(err), "x") && strings.Contains(fmt.Sprint(err), `"x"`) {
			t.Errorf("error shows a value: %v", err)
		}
		_ = os.WriteFile(a, da, 0o600)
	})
	t.Run("bad arguments", func(t *testing.T) {
		if _, err := NewFileStore(dir, []byte("short")); err == nil || !strings.Contains(err.Error(), "key must be 16, 24 or 32 bytes") {
			t.Errorf("short key: %v", err)
		}
		if _, err := NewFileStore("", key); err == nil {
			t.Error("empty dir accepted")
		}
		if err := st.Save(ctx, Record{}); err == nil {
			t.Error("record without a secret accepted")
		}
	})
}

// TestFileStoreWarmRestartWithoutKMS: a process fetched a secret and saved it;
// the next one starts while KMS is down and still serves it.
func TestFileStoreWarmRestartWithoutKMS(t *testing.T) {
	dir := t.TempDir()
	key := testKey(t)
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	st1, _ := NewFileStore(dir, key)
	c1, err := New(src, withClock(fc), WithStore(st1))
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, c1, "db")
	_ = c1.Close() // waits for the save

	fc.Advance(3 * time.Hour)
	down := newFakeSource(fc)
	down.setErr(errUnavailable)
	st2, _ := NewFileStore(dir, key)
	c2 := newTestCache(t, down, withClock(fc), WithStore(st2))
	s := mustGet(t, c2, "db")
	if s.VersionID() != "v1" || s.Text() != "pw-1" {
		t.Fatalf("restart without KMS served %v", s)
	}
	if info, _ := c2.Info("db"); !info.Stale || info.Age != 3*time.Hour {
		t.Errorf("info %+v", info)
	}
}

// TestStoresRace is the race test of both stores: 100 goroutines saving,
// loading and deleting.
func TestStoresRace(t *testing.T) {
	fs, err := NewFileStore(t.TempDir(), testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []Store{newMemStore(), fs} {
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				ctx := context.Background()
				name := fmt.Sprintf("s%d", i%7)
				sec := secretsource.NewSecret(secretsource.Fields{Name: name, VersionID: fmt.Sprint(i), Value: []byte("v")})
				if err := st.Save(ctx, Record{Secret: sec, FetchedAt: t0}); err != nil {
					t.Error(err)
				}
				if _, err := st.Load(ctx); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Error(err)
				}
				if i%3 == 0 {
					if err := st.Delete(ctx, name); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
	}
}

// FuzzFileStoreLoad: whatever bytes sit in the directory, Load neither panics
// nor returns a record it could not authenticate.
func FuzzFileStoreLoad(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	seedDir := f.TempDir()
	st, _ := NewFileStore(seedDir, key)
	_ = st.Save(context.Background(), Record{Secret: secretsource.NewSecret(secretsource.Fields{Name: "a", VersionID: "1", Value: []byte("x")}), FetchedAt: t0})
	good, _ := os.ReadFile(filepath.Join(seedDir, st.fileName("a")))
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{fileFormat})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		st, _ := NewFileStore(dir, key)
		if err := os.WriteFile(filepath.Join(dir, st.fileName("a")), data, 0o600); err != nil {
			t.Fatal(err)
		}
		recs, err := st.Load(context.Background())
		// Only an authentic file (the seed, sealed under key) can decrypt.
		if len(recs) > 1 || (len(recs) == 1 && (err != nil || recs[0].Secret.Name() != "a" || recs[0].Secret.Text() != "x")) {
			t.Fatalf("Load accepted forged data: %d records, %v", len(recs), err)
		}
	})
}

// The key never shows when a FileStore is printed, logged or marshalled.
func TestFileStoreNeverPrintsKey(t *testing.T) {
	key := testKey(t)
	st, err := NewFileStore(t.TempDir(), key)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, v := range []any{st, *st, struct{ S Store }{st}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		if b, err := json.Marshal(v); err == nil {
			out.Write(b)
		}
		slog.New(slog.NewTextHandler(&out, nil)).Info("m", "v", v)
		slog.New(slog.NewJSONHandler(&out, nil)).Info("m", "v", v)
	}
	s := out.String()
	for _, form := range []string{string(key), fmt.Sprintf("%x", key), fmt.Sprintf("%X", key), fmt.Sprintf("%d", key),
		fmt.Sprintf("%d", key[:8]), base64.StdEncoding.EncodeToString(key)} {
		if strings.Contains(s, strings.Trim(form, "[]")) {
			t.Fatalf("the key appears in the output:\n%s", s)
		}
	}
}
