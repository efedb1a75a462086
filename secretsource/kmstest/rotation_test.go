package kmstest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	kms3 "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
)

func decodeObj(t *testing.T, v string) map[string]string {
	t.Helper()
	m := map[string]string{}
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		t.Fatalf("value is not a JSON object of strings: %v", err)
	}
	return m
}

func TestRotateByType(t *testing.T) {
	srv := newTestServer(t,
		WithSecret(SecretSpec{Name: "rds-double", Type: "Rds", Data: rdsValue,
			ExtendedConfig: map[string]any{"SecretSubType": "DoubleUsers"}}),
		WithSecret(SecretSpec{Name: "generic-json", Data: `{"host":"db","port":3306,"password":"old"}`}),
		WithSecret(SecretSpec{Name: "generic-bin", DataType: "binary", Data: "AAEC"}),
		WithSecret(SecretSpec{Name: "acs/ecs/pw", Type: "ECS", Data: `{"UserName":"root","Password":"old"}`}),
		WithSecret(SecretSpec{Name: "acs/ecs/ssh", Type: "ECS", Data: `{"UserName":"root","PublicKey":"ssh-ed25519 AAAA x","PrivateKey":"-----BEGIN PRIVATE KEY-----"}`,
			ExtendedConfig: map[string]any{"SecretSubType": "SSHKey"}}),
	)
	rotate := func(name string) (old, cur SecretState) {
		t.Helper()
		old, _ = srv.Secret(name)
		id, err := srv.RotateSecret(name)
		if err != nil {
			t.Fatal(err)
		}
		cur, _ = srv.Secret(name)
		if cur.CurrentVersionID != id || cur.PreviousVersionID != old.CurrentVersionID || cur.PendingVersionID != "" ||
			cur.PreviousValue != old.CurrentValue || cur.CurrentValue == old.CurrentValue || cur.LastRotationDate.IsZero() {
			t.Fatalf("%s: stages after rotation: %v", name, cur)
		}
		return old, cur
	}
	t.Run("Generic text", func(t *testing.T) {
		_, cur := rotate(genericName)
		if len(cur.CurrentValue) < 16 {
			t.Fatal("short value")
		}
	})
	t.Run("Generic JSON keeps the connection fields", func(t *testing.T) {
		_, cur := rotate("generic-json")
		var m map[string]any
		if err := json.Unmarshal([]byte(cur.CurrentValue), &m); err != nil || m["host"] != "db" || m["port"] != 3306.0 || m["password"] == "old" {
			t.Fatalf("rotated JSON: %v", err)
		}
	})
	t.Run("Generic binary", func(t *testing.T) {
		_, cur := rotate("generic-bin")
		if _, err := base64.StdEncoding.DecodeString(cur.CurrentValue); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Rds SingleUser", func(t *testing.T) {
		old, cur := rotate(rdsName)
		o, c := decodeObj(t, old.CurrentValue), decodeObj(t, cur.CurrentValue)
		if c["AccountName"] != o["AccountName"] || c["AccountPassword"] == o["AccountPassword"] {
			t.Fatal("SingleUser must keep the account and change the password")
		}
	})
	t.Run("Rds DoubleUsers swaps accounts", func(t *testing.T) {
		_, cur := rotate("rds-double")
		if a := decodeObj(t, cur.CurrentValue)["AccountName"]; a != "app_clone" {
			t.Fatalf("first rotation: account %q", a)
		}
		if a := decodeObj(t, cur.PreviousValue)["AccountName"]; a != "app" {
			t.Fatalf("previous account %q", a)
		}
		_, cur = rotate("rds-double")
		if a := decodeObj(t, cur.CurrentValue)["AccountName"]; a != "app" {
			t.Fatalf("second rotation: account %q", a)
		}
		if a := decodeObj(t, cur.PreviousValue)["AccountName"]; a != "app_clone" {
			t.Fatalf("previous account %q", a)
		}
	})
	// PolarDB and Redis secrets hold the same value as Rds and rotate as Rds does.
	for _, typ := range []string{"PolarDB", "Redis"} {
		t.Run(typ+" SingleUser", func(t *testing.T) {
			name := strings.ToLower(typ) + "-single"
			if err := srv.AddSecret(SecretSpec{Name: name, Type: typ, Data: rdsValue}); err != nil {
				t.Fatal(err)
			}
			old, cur := rotate(name)
			o, c := decodeObj(t, old.CurrentValue), decodeObj(t, cur.CurrentValue)
			if cur.Type != typ || c["AccountName"] != o["AccountName"] || c["AccountPassword"] == o["AccountPassword"] {
				t.Fatalf("%s SingleUser must keep the account and change the password", typ)
			}
		})
		t.Run(typ+" DoubleUsers swaps accounts", func(t *testing.T) {
			name := strings.ToLower(typ) + "-double"
			if err := srv.AddSecret(SecretSpec{Name: name, Type: typ, Data: rdsValue,
				ExtendedConfig: map[string]any{"SecretSubType": "DoubleUsers"}}); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"app_clone", "app", "app_clone"} {
				old, cur := rotate(name)
				if a := decodeObj(t, cur.CurrentValue)["AccountName"]; a != want {
					t.Fatalf("current account %q, want %q", a, want)
				}
				if decodeObj(t, cur.PreviousValue)["AccountName"] != decodeObj(t, old.CurrentValue)["AccountName"] {
					t.Fatal("the replaced account is not ACSPrevious")
				}
			}
		})
	}
	t.Run("ECS password", func(t *testing.T) {
		_, cur := rotate("acs/ecs/pw")
		if m := decodeObj(t, cur.CurrentValue); m["UserName"] != "root" || m["Password"] == "old" {
			t.Fatal("ECS password not rotated")
		}
	})
	t.Run("ECS SSH key", func(t *testing.T) {
		_, cur := rotate("acs/ecs/ssh")
		m := decodeObj(t, cur.CurrentValue)
		if !strings.HasPrefix(m["PublicKey"], "ssh-ed25519 ") || !strings.Contains(m["PrivateKey"], "BEGIN PRIVATE KEY") ||
			m["PublicKey"] == "ssh-ed25519 AAAA x" {
			t.Fatal("ECS key pair not rotated")
		}
	})
	t.Run("unknown secret", func(t *testing.T) {
		if _, err := srv.RotateSecret("nope"); err == nil || !strings.Contains(err.Error(), "Forbidden.ResourceNotFound") {
			t.Fatalf("err %v", err)
		}
	})
}

func TestRotateRAMCredentials(t *testing.T) {
	const name = "acs/ram/user/app"
	oldAK, oldSK := "LTAIramOld000000001", "ram-old-secret"
	srv := newTestServer(t, WithRAMKeyRevokeDelay(time.Hour),
		WithSecret(SecretSpec{Name: name, Type: "RAMCredentials",
			Data:           `{"AccessKeyId":"` + oldAK + `","AccessKeySecret":"` + oldSK + `","GenerateTimestamp":"2024-01-01T00:00:00Z"}`,
			ExtendedConfig: map[string]any{"SecretSubType": "RamUserAccessKey", "UserName": "app"}}))
	// The secret's own key is accepted.
	if _, code := coreFetch(t, coreClient(t, srv, false, oldAK, oldSK, "", ""), name); code != "" {
		t.Fatal(code)
	}
	// Rotate through the API with the RAM key itself.
	c := teaClient(t, srv, false, "", staticCred(t, oldAK, oldSK, ""), "")
	if _, err := c.RotateSecret(&kms3.RotateSecretRequest{SecretName: tea.String(name), VersionId: tea.String("ram-2")}); err != nil {
		t.Fatal(err)
	}
	st, _ := srv.Secret(name)
	nk := decodeObj(t, st.CurrentValue)
	if nk["AccessKeyId"] == oldAK || nk["AccessKeySecret"] == "" || nk["GenerateTimestamp"] == "" {
		t.Fatal("RAM key not rotated")
	}
	// New key accepted at once, old key still accepted during the revoke delay.
	for _, k := range [][2]string{{nk["AccessKeyId"], nk["AccessKeySecret"]}, {oldAK, oldSK}} {
		if _, code := coreFetch(t, coreClient(t, srv, false, k[0], k[1], "", ""), name); code != "" {
			t.Fatalf("key %s: %s", k[0], code)
		}
	}
	srv.Advance(time.Hour)
	if _, code := coreFetch(t, coreClient(t, srv, false, oldAK, oldSK, "", ""), name); code != "InvalidAccessKeyId.NotFound" {
		t.Fatalf("old key after the delay: %q", code)
	}
	if _, code := coreFetch(t, coreClient(t, srv, false, nk["AccessKeyId"], nk["AccessKeySecret"], "", ""), name); code != "" {
		t.Fatal(code)
	}
}

func TestRotateRAMRevokesAtOnceByDefault(t *testing.T) {
	const name = "acs/ram/user/now"
	srv := newTestServer(t, WithSecret(SecretSpec{Name: name, Type: "RAMCredentials",
		Data: `{"AccessKeyId":"LTAIramNow","AccessKeySecret":"s"}`}))
	if _, err := srv.RotateSecret(name); err != nil {
		t.Fatal(err)
	}
	if _, code := coreFetch(t, coreClient(t, srv, false, "LTAIramNow", "s", "", ""), name); code != "InvalidAccessKeyId.NotFound" {
		t.Fatalf("code %q", code)
	}
}

func TestOnRotateHookPhases(t *testing.T) {
	srv := newTestServer(t)
	var events []RotationEvent
	srv.OnRotate(func(ev RotationEvent) {
		st, _ := srv.Secret(ev.SecretName) // hooks may read the server
		switch ev.Phase {
		case "before":
			if st.PendingVersionID != ev.NewVersionID || st.CurrentVersionID != ev.OldVersionID || st.PendingValue != ev.NewValue {
				t.Errorf("before: %v", st)
			}
		case "after":
			if st.CurrentVersionID != ev.NewVersionID || st.PreviousVersionID != ev.OldVersionID {
				t.Errorf("after: %v", st)
			}
		}
		events = append(events, ev)
	})
	id, err := srv.RotateSecret(rdsName)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Phase != "before" || events[1].Phase != "after" || events[0].NewVersionID != id ||
		events[0].OldValue != rdsValue || events[0].SecretType != "Rds" {
		t.Fatalf("events %v", events)
	}
	if strings.Contains(events[0].String()+events[0].GoString(), "p@ss") {
		t.Fatal("RotationEvent.String leaks the value")
	}
}

func TestSecretSpecErrors(t *testing.T) {
	cases := []struct {
		spec  SecretSpec
		field string
	}{
		{SecretSpec{Type: "Generic", Data: "x"}, "Name"},
		{SecretSpec{Name: "a", Type: "Nope"}, "Type"},
		{SecretSpec{Name: "a", Type: "Rds", Data: "not json"}, "Data"},
		{SecretSpec{Name: "a", Type: "Rds", Data: `{"AccountName":"x"}`}, "Data"},
		{SecretSpec{Name: "a", Type: "Rds", Data: rdsValue, ExtendedConfig: map[string]any{"SecretSubType": "Triple"}}, "ExtendedConfig.SecretSubType"},
		{SecretSpec{Name: "a", DataType: "binary", Data: "%%%"}, "DataType"},
		{SecretSpec{Name: "a", Data: "x", AutomaticRotation: true}, "RotationInterval"},
		{SecretSpec{Name: "a", Type: "RAMCredentials", Data: `{"AccessKeyId":"x"}`}, "Data"},
		{SecretSpec{Name: "a", Type: "PolarDB", Data: `{"AccountName":"x"}`}, "Data"},
		{SecretSpec{Name: "a", Type: "Redis", Data: "not json"}, "Data"},
		{SecretSpec{Name: "a", Type: "Redis", Data: rdsValue, ExtendedConfig: map[string]any{"SecretSubType": "Triple"}}, "ExtendedConfig.SecretSubType"},
		{SecretSpec{Name: "a", Type: "Polardb", Data: rdsValue}, "Type"}, // the service spells it PolarDB
	}
	srv := newTestServer(t)
	for _, c := range cases {
		err := srv.AddSecret(c.spec)
		var se *SpecError
		if !errors.As(err, &se) || se.Field != c.field {
			t.Errorf("%+v: err %v, want field %s", c.spec.Name, err, c.field)
		}
		if err != nil && strings.Contains(err.Error(), "not json") {
			t.Errorf("error leaks the value: %v", err)
		}
	}
}

// TestStoreRace hammers the store from 100 goroutines: reads, rotations, puts, hooks and counters.
func TestStoreRace(t *testing.T) {
	srv := newTestServer(t)
	var hookCalls sync.Map
	srv.OnRotate(func(ev RotationEvent) { hookCalls.Store(ev.NewVersionID+ev.Phase, true) })
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 5 {
			case 0:
				if _, err := srv.RotateSecret(rdsName); err != nil {
					t.Error(err)
				}
			case 1:
				if err := srv.PutSecretValue(genericName, "v", "put-"+string(rune('a'+i%26))+time.Now().String()); err != nil {
					t.Error(err)
				}
			case 2:
				if _, aerr := srv.getSecretValue(rdsName, "", "", true); aerr != nil {
					t.Error(aerr)
				}
			case 3:
				srv.Secret(rdsName)
				srv.Calls("", "")
			case 4:
				if _, code := coreFetch(t, coreClient(t, srv, false, testAK, testSK, "", ""), rdsName); code != "" {
					t.Error(code)
				}
			}
		}()
	}
	wg.Wait()
	st, _ := srv.Secret(rdsName)
	if st.Rotations != 20 {
		t.Fatalf("rotations %d, want 20", st.Rotations)
	}
	n := 0
	hookCalls.Range(func(_, _ any) bool { n++; return true })
	if n != 40 {
		t.Fatalf("hook calls %d, want 40", n)
	}
	if len(st.Versions) > 10 {
		t.Fatalf("%d versions kept", len(st.Versions))
	}
}

// TestOnRotatePendingFails: a failing pending hook aborts the rotation (the stages stay, the pending version is
// gone, the plain hooks do not run) and its text reaches the caller; a passing one lets the rotation through.
func TestOnRotatePendingFails(t *testing.T) {
	srv := newTestServer(t)
	before, _ := srv.Secret(rdsName)
	fail := true
	var plain []string
	srv.OnRotatePending(func(ev RotationEvent) error {
		st, _ := srv.Secret(ev.SecretName)
		if ev.Phase != "before" || st.PendingVersionID != ev.NewVersionID || st.CurrentVersionID != ev.OldVersionID {
			t.Errorf("pending hook saw %v in %v", ev, st)
		}
		if fail {
			return errors.New("database account app: server unreachable")
		}
		return nil
	})
	srv.OnRotate(func(ev RotationEvent) { plain = append(plain, ev.Phase) })
	_, err := srv.RotateSecret(rdsName)
	if err == nil || !strings.Contains(err.Error(), "Rejected.Unexpected") || !strings.Contains(err.Error(), "server unreachable") {
		t.Fatalf("err %v", err)
	}
	st, _ := srv.Secret(rdsName)
	if st.CurrentVersionID != before.CurrentVersionID || st.PendingVersionID != "" || st.PreviousVersionID != "" ||
		len(st.Versions) != 1 || st.Rotations != 0 || len(plain) != 0 {
		t.Fatalf("after a failed rotation: %v, plain hooks %v", st, plain)
	}
	// Once the hook passes, the rotation goes through.
	fail = false
	id, err := srv.RotateSecret(rdsName)
	if err != nil {
		t.Fatal(err)
	}
	st, _ = srv.Secret(rdsName)
	if st.CurrentVersionID != id || st.PreviousVersionID != before.CurrentVersionID || len(plain) != 2 {
		t.Fatalf("after a rotation: %v, plain hooks %v", st, plain)
	}
}
