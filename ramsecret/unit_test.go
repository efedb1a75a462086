package ramsecret

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/alibabacloud-go/tea/tea"

	"github.com/kmsdb/kmsdb/secretsource"
)

func TestProviderAdapters(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "unit-secret-1")}
	p, err := New(c, "acs/ram/user/unit")
	if err != nil {
		t.Fatal(err)
	}
	m, err := p.GetCredential()
	if err != nil {
		t.Fatal(err)
	}
	if tea.StringValue(m.AccessKeyId) != "AKID1" || tea.StringValue(m.AccessKeySecret) != "unit-secret-1" ||
		tea.StringValue(m.Type) != "access_key" || tea.StringValue(m.ProviderName) != DefaultProviderName {
		t.Errorf("GetCredential: unexpected model (id %q)", tea.StringValue(m.AccessKeyId))
	}
	m2, _ := p.GetCredential()
	if m2 == m || m2.AccessKeyId == m.AccessKeyId {
		t.Error("GetCredential must return a fresh model each call")
	}
	cc, err := p.GetCredentials()
	if err != nil || cc.AccessKeyId != "AKID1" || cc.AccessKeySecret != "unit-secret-1" || cc.SecurityToken != "" {
		t.Errorf("GetCredentials: %v", err)
	}
	if p.GetProviderName() != DefaultProviderName || tea.StringValue(p.GetType()) != "access_key" ||
		tea.StringValue(p.GetBearerToken()) != "" {
		t.Error("names")
	}
	if r, err := p.Resolve(); err != nil || r != p {
		t.Error("Resolve must return the provider")
	}
	id, _ := p.GetAccessKeyId()
	sec, _ := p.GetAccessKeySecret()
	tok, _ := p.GetSecurityToken()
	if *id != "AKID1" || *sec != "unit-secret-1" || *tok != "" {
		t.Error("deprecated getters")
	}

	// A missing secret surfaces with its name, through every adapter.
	empty, _ := New(&memCache{}, "acs/ram/user/missing")
	if _, err := empty.GetCredential(); err == nil || !errors.Is(err, secretsource.ErrNotFound) {
		t.Errorf("GetCredential on a missing secret: %v", err)
	}
	if _, err := empty.GetCredentials(); err == nil {
		t.Error("GetCredentials on a missing secret: no error")
	}
}

func TestAccessKeyWarmDoesNotAllocate(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "unit-secret-1")}
	p, _ := New(c, "acs/ram/user/unit")
	ctx := context.Background()
	if _, err := p.AccessKey(ctx); err != nil {
		t.Fatal(err)
	}
	// memCache locks but does not allocate; the decode is memoised per *Secret.
	if n := testing.AllocsPerRun(100, func() { _, _ = p.AccessKey(ctx) }); n != 0 {
		t.Errorf("AccessKey on a warm cache allocates %.0f times", n)
	}
}

// No torn reads: while versions swap underneath, every key handed out is one
// of the pairs, whole.
func TestNoTornKeys(t *testing.T) {
	c := &memCache{current: ramSecret("v0", "AKID0", "s0")}
	p, _ := New(c, "acs/ram/user/unit")
	ctx := context.Background()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				k, err := p.AccessKey(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				m, err := p.GetCredential()
				if err != nil {
					t.Error(err)
					return
				}
				for _, pair := range [][2]string{{k.ID, k.Secret}, {*m.AccessKeyId, *m.AccessKeySecret}} {
					if "AKID"+pair[1][1:] != pair[0] {
						t.Errorf("torn key: id %q with the secret of another version", pair[0])
						return
					}
				}
			}
		}()
	}
	for i := 1; i <= 2000; i++ {
		s := ramSecret(fmt.Sprintf("v%d", i), fmt.Sprintf("AKID%d", i), fmt.Sprintf("s%d", i))
		c.mu.Lock()
		c.current = s
		c.mu.Unlock()
	}
	stop.Store(true)
	wg.Wait()
}

func TestFormattingHidesSecret(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "very-secret-value")}
	p, _ := New(c, "acs/ram/user/unit")
	k, _ := p.AccessKey(context.Background())
	rk := &RejectedKeyError{Secret: "acs/ram/user/unit", VersionID: "v1", Code: "InvalidAccessKeyId.NotFound", Err: rejectedErr()}
	e, _ := NewECS(c, "acs/ram/user/unit")
	var out bytes.Buffer
	for _, v := range []any{k, &k, p, e, rk, struct{ K, P, E any }{k, p, e}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		if b, err := json.Marshal(v); err == nil {
			out.Write(b)
		}
		slog.New(slog.NewTextHandler(&out, nil)).Info("m", "v", v)
		slog.New(slog.NewJSONHandler(&out, nil)).Info("m", "v", v)
	}
	for _, secret := range []string{"very-secret-value", fmt.Sprintf("%x", "very-secret-value")} {
		if containsSecret(out.String(), secret) {
			t.Errorf("secret in %q", out.String())
		}
	}
	if !strings.Contains(out.String(), "acs/ram/user/unit") {
		t.Errorf("the output does not name the secret: %q", out.String())
	}
}
