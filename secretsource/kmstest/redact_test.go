package kmstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRedactedPrinting prints every type that carries a secret value in every form (fmt verbs on the value and
// the pointer, slog text and JSON, json.Marshal, nested in a struct) and greps for the values.
func TestRedactedPrinting(t *testing.T) {
	const (
		specData = "SPEC-DATA-S3cr3t"
		curVal   = "CURRENT-VAL-S3cr3t"
		prevVal  = "PREVIOUS-VAL-S3cr3t"
		pendVal  = "PENDING-VAL-S3cr3t"
		oldVal   = "OLD-VAL-S3cr3t"
		newVal   = "NEW-VAL-S3cr3t"
		ckPass   = "CLIENT-KEY-PASS-S3cr3t"
	)
	secrets := []string{specData, curVal, prevVal, pendVal, oldVal, newVal, ckPass}
	spec := SecretSpec{Name: "db", Type: "Rds", Data: specData, RotationInterval: time.Hour}
	vs := VersionState{VersionID: "v1", Value: curVal, Stages: []string{"ACSCurrent"}}
	st := SecretState{Name: "db", Type: "Rds", CurrentVersionID: "v1", CurrentValue: curVal,
		PreviousVersionID: "v0", PreviousValue: prevVal, PendingVersionID: "v2", PendingValue: pendVal,
		Versions: []VersionState{vs, {VersionID: "v0", Value: prevVal}}}
	ev := RotationEvent{SecretName: "db", OldVersionID: "v0", NewVersionID: "v1", OldValue: oldVal, NewValue: newVal, Phase: "after"}
	ck := ClientKey{KeyID: "KAAP.x", File: "/f.json", PasswordFile: "/p.txt", Password: ckPass}

	cases := map[string]any{"SecretSpec": spec, "VersionState": vs, "SecretState": st, "RotationEvent": ev, "ClientKey": ck}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			ptr := pointerTo(v)
			nested := struct {
				V any
				P any
			}{v, ptr}
			for _, x := range []any{v, ptr, nested, []any{v}, map[string]any{"k": v}} {
				for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
					fmt.Fprintf(&out, verb+"\n", x)
				}
				fmt.Fprintln(&out, x)
				b, err := json.Marshal(x)
				if err != nil {
					t.Fatalf("json.Marshal(%T): %v", x, err)
				}
				out.Write(b)
				slog.New(slog.NewTextHandler(&out, nil)).Info("m", "v", x)
				slog.New(slog.NewJSONHandler(&out, nil)).Info("m", "v", x)
			}
			// Printing must still say something useful: the name or id is there.
			if !strings.Contains(out.String(), "redacted") {
				t.Errorf("no redaction marker in the output:\n%s", out.String())
			}
			for _, s := range secrets {
				if strings.Contains(out.String(), s) || strings.Contains(out.String(), fmt.Sprintf("%x", s)) {
					t.Fatalf("%s printed the value %q:\n%s", name, s, out.String())
				}
			}
		})
	}
	// The fields stay usable.
	if spec.Data != specData || ev.NewValue != newVal || st.CurrentValue != curVal || ck.Password != ckPass {
		t.Fatal("fields changed")
	}
}

func pointerTo(v any) any {
	switch x := v.(type) {
	case SecretSpec:
		return &x
	case VersionState:
		return &x
	case SecretState:
		return &x
	case RotationEvent:
		return &x
	case ClientKey:
		return &x
	}
	panic(fmt.Sprintf("pointerTo %T", v))
}
