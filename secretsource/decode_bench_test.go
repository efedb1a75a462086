package secretsource_test

import (
	"encoding/json"
	"testing"

	"github.com/kmsdb/kmsdb/secretsource"
)

// BenchmarkDecodeDBAccount decodes a database secret with DecodeDBAccount
// and, side by side, with json.Unmarshal of the same value into a struct of
// its fields (what a caller would write by hand, with none of the decoder's
// rules): the decoder must be no slower and allocate no more.
//
//	go test -run '^$' -bench DecodeDBAccount -benchmem ./secretsource/
func BenchmarkDecodeDBAccount(b *testing.B) {
	type rdsValue struct{ AccountName, AccountPassword string }
	type genericValue struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Host     string `json:"host"`
		Port     int    `json:"port"`
		DBName   string `json:"dbname"`
		Engine   string `json:"engine"`
	}
	for _, tt := range []struct {
		name      string
		value     string
		unmarshal func([]byte) error
	}{
		{"rds", `{"AccountName":"app","AccountPassword":"bench-password-not-printed"}`,
			func(v []byte) error { var x rdsValue; return json.Unmarshal(v, &x) }},
		{"generic", `{"username":"app","password":"bench-password-not-printed","host":"db.internal","port":5432,"dbname":"shop","engine":"postgres"}`,
			func(v []byte) error { var x genericValue; return json.Unmarshal(v, &x) }},
	} {
		sec := secretWith("Rds", tt.value, "")
		b.Run(tt.name+"/DecodeDBAccount", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := secretsource.DecodeDBAccount(sec); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tt.name+"/json.Unmarshal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				// The value as the decoder gets it: a copy from the secret.
				if err := tt.unmarshal(sec.Bytes()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
