package kmstest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	kms3 "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
)

// TestPutSecretValueRefusesManagedSecrets: as KMS ("this operation supports
// only generic secrets"), PutSecretValue through the SDK and the Go method
// refuse Rds, PolarDB, Redis, RAMCredentials and ECS secrets and leave their
// versions alone; Generic secrets take it; the test control AddVersion
// stores a version of any type.
func TestPutSecretValueRefusesManagedSecrets(t *testing.T) {
	srv := Start(t, WithAccessKey(testAK, testSK))
	c := teaClient(t, srv, false, "", staticCred(t, testAK, testSK, ""), "")
	for _, tc := range typeCases() {
		t.Run(tc.typ, func(t *testing.T) {
			name := "put-" + tc.typ
			if err := srv.AddSecret(SecretSpec{Name: name, Type: tc.typ, Data: tc.value(1), ExtendedConfig: tc.ext}); err != nil {
				t.Fatal(err)
			}
			before, _ := srv.Secret(name)
			_, err := c.PutSecretValue(&kms3.PutSecretValueRequest{SecretName: tea.String(name),
				SecretData: tea.String(tc.value(2)), VersionId: tea.String("v-put")})
			goErr := srv.PutSecretValue(name, tc.value(3), "v-put-go")
			after, _ := srv.Secret(name)
			if !tc.managed {
				if err != nil || goErr != nil || after.CurrentVersionID != "v-put-go" || after.PreviousVersionID != "v-put" {
					t.Fatalf("a Generic secret: %v, %v, versions %+v", err, goErr, after)
				}
				return
			}
			var se *tea.SDKError
			if !errors.As(err, &se) || tea.StringValue(se.Code) != "UnsupportedOperation" || tea.IntValue(se.StatusCode) != 400 {
				t.Fatalf("PutSecretValue through the SDK: want 400 UnsupportedOperation, got %v", err)
			}
			if goErr == nil || !strings.Contains(goErr.Error(), "UnsupportedOperation") {
				t.Fatalf("the Go method: want UnsupportedOperation, got %v", goErr)
			}
			if len(after.Versions) != len(before.Versions) || after.CurrentVersionID != before.CurrentVersionID {
				t.Fatalf("a refused put changed the versions: %+v -> %+v", before, after)
			}
			if err := srv.AddVersion(name, tc.value(4), "v-admin"); err != nil {
				t.Fatal(err)
			}
			st, _ := srv.Secret(name)
			if st.CurrentVersionID != "v-admin" || st.CurrentValue != tc.value(4) || st.PreviousVersionID != before.CurrentVersionID ||
				!slices.ContainsFunc(st.Versions, func(v VersionState) bool { return v.VersionID == "v-admin" }) {
				t.Fatalf("AddVersion: %+v", st)
			}
		})
	}
}
