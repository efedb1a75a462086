package kms

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseAnswer: whatever the body around it, a value in a GetSecretValue
// answer never shows in what parsing it reports (only an error code, itself
// bounded to a short token, is quoted).
func FuzzParseAnswer(f *testing.F) {
	f.Add(`{"SecretName":"db","VersionId":"v1",`, `}`, "hunter2!hunter2")
	f.Add(`{"SecretName":"db",`, `,"VersionStages":{"VersionStage":"ACSCurrent"}}`, "s3cr3t=value")
	f.Add(``, ``, "plain#password")
	f.Add(`{"Code":"X",`, `,"x":`, "truncated@secret")
	f.Fuzz(func(t *testing.T, prefix, suffix, secret string) {
		// A secret holding a character no report template or code token has,
		// so that finding it means it came from the body.
		if len(secret) < 8 || !strings.ContainsAny(secret, "!#$%*+=@^~|<>?") || strings.Contains(prefix+suffix, secret) {
			return
		}
		quoted, _ := json.Marshal(secret)
		body := []byte(prefix + `"SecretData":` + string(quoted) + suffix)
		for _, status := range []int{200, 400, 503} {
			var texts []string
			if status == 200 {
				a, e := parseAnswer(status, body)
				if e != nil {
					texts = append(texts, e.invalid, e.code, e.requestID)
				} else if a == nil {
					t.Fatal("neither an answer nor an error")
				}
			} else {
				e := parseErrorAnswer(status, body)
				texts = append(texts, e.code, e.requestID)
			}
			for _, s := range texts {
				if strings.Contains(s, secret) && !strings.Contains(`"`+prefix+suffix, s) {
					t.Fatalf("status %d: %q shows the secret %q", status, s, secret)
				}
			}
		}
	})
}
