package kmstest

// The version rules of GetSecretValue by secret type, through the unmodified core SDK
// (alibaba-cloud-sdk-go services/kms) and the unmodified DKMS SDK (alibabacloud-dkms-gcs-go-sdk). KMS
// serves only ACSCurrent and ACSPrevious of managed secrets (Rds, PolarDB, Redis, RAMCredentials, ECS) and
// ignores a VersionId given alone; Generic secrets can be read at any stage or version id.

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/alibabacloud-go/tea/tea"
	sdkerr "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/kms"
)

// typeCase is one secret type with the value of its n-th version.
type typeCase struct {
	typ     string
	managed bool
	value   func(n int) string
	ext     map[string]any
}

func dbValue(n int) string { return fmt.Sprintf(`{"AccountName":"app","AccountPassword":"pw-%d"}`, n) }

func typeCases() []typeCase {
	return []typeCase{
		{typ: "Rds", managed: true, value: dbValue},
		{typ: "PolarDB", managed: true, value: dbValue, ext: map[string]any{"SecretSubType": "SingleUser", "DBClusterId": "pc-test"}},
		{typ: "Redis", managed: true, value: dbValue, ext: map[string]any{"SecretSubType": "DoubleUsers"}},
		{typ: "RAMCredentials", managed: true, value: func(n int) string {
			return fmt.Sprintf(`{"AccessKeyId":"LTAIram%d","AccessKeySecret":"ram-secret-%d"}`, n, n)
		}},
		{typ: "ECS", managed: true, value: func(n int) string { return fmt.Sprintf(`{"UserName":"root","Password":"pw-%d"}`, n) }},
		{typ: "Generic", value: func(n int) string { return fmt.Sprintf("generic value %d", n) }},
	}
}

// answer is what a gateway returned for one GetSecretValue.
type answer struct {
	value, versionID      string
	code, message, detail string
	status                int
}

type gateway struct {
	name string
	get  func(t *testing.T, secret, stage, versionID string) answer
}

// gateways are the two official SDK clients, each signing with its own credentials.
func gateways(t *testing.T, srv *Server) []gateway {
	t.Helper()
	core := coreClient(t, srv, false, testAK, testSK, "", "")
	dk := dkmsClient(t, srv.DKMSAddr(), newClientKey(t, srv), string(srv.CACertPEM()))
	return []gateway{
		{name: "core-sdk", get: func(t *testing.T, secret, stage, versionID string) answer {
			t.Helper()
			req := kms.CreateGetSecretValueRequest()
			req.SecretName, req.VersionStage, req.VersionId = secret, stage, versionID
			resp, err := core.GetSecretValue(req)
			if err != nil {
				var se *sdkerr.ServerError
				if !errors.As(err, &se) {
					t.Fatalf("core SDK: want a ServerError, got %T: %v", err, err)
				}
				return answer{code: se.ErrorCode(), message: se.Message(), status: se.HttpStatus(), detail: err.Error()}
			}
			return answer{value: resp.SecretData, versionID: resp.VersionId}
		}},
		{name: "dkms-sdk", get: func(t *testing.T, secret, stage, versionID string) answer {
			t.Helper()
			resp, err := dkmsGet(dk, secret, stage, versionID, false)
			if err != nil {
				code, status := sdkCode(t, err)
				var se *tea.SDKError
				errors.As(err, &se)
				return answer{code: code, message: tea.StringValue(se.Message), status: status, detail: err.Error()}
			}
			return answer{value: tea.StringValue(resp.SecretData), versionID: tea.StringValue(resp.VersionId)}
		}},
	}
}

// versionFixture adds one secret per type with three versions: v1 ACSPrevious, v2 ACSCurrent, v3 ACSPending
// (also labelled MyStage), as a rotation that has not finished leaves them.
func versionFixture(t *testing.T) (*Server, map[string]string) {
	t.Helper()
	srv := Start(t, WithAccessKey(testAK, testSK))
	v1 := map[string]string{} // type -> id of v1 (made by the emulator)
	for _, tc := range typeCases() {
		name := "versions-" + tc.typ
		if err := srv.AddSecret(SecretSpec{Name: name, Type: tc.typ, Data: tc.value(1), ExtendedConfig: tc.ext}); err != nil {
			t.Fatal(err)
		}
		st, _ := srv.Secret(name)
		v1[tc.typ] = st.CurrentVersionID
		// Managed secrets get their versions from rotation only (PutSecretValue refuses them, as KMS does):
		// the test control AddVersion stores them as a rotation would.
		if err := srv.AddVersion(name, tc.value(2), "v2"); err != nil {
			t.Fatal(err)
		}
		if err := srv.AddVersion(name, tc.value(3), "v3", "ACSPending", "MyStage"); err != nil {
			t.Fatal(err)
		}
	}
	return srv, v1
}

// versionCase is one GetSecretValue request and the version each kind of secret answers with: 1, 2 or 3, or
// 0 for Forbidden.ResourceNotFound. A versionID "@v1" stands for the id of the secret's first version.
type versionCase struct {
	name             string
	stage, versionID string
	managed, generic int
}

func runVersionCases(t *testing.T, cases []versionCase) {
	t.Helper()
	srv, v1 := versionFixture(t)
	for _, gw := range gateways(t, srv) {
		for _, tc := range typeCases() {
			for _, vc := range cases {
				t.Run(gw.name+"/"+tc.typ+"/"+vc.name, func(t *testing.T) {
					secret := "versions-" + tc.typ
					versionID := vc.versionID
					if versionID == "@v1" {
						versionID = v1[tc.typ]
					}
					want := vc.generic
					if tc.managed {
						want = vc.managed
					}
					got := gw.get(t, secret, vc.stage, versionID)
					if want == 0 {
						checkNotFound(t, got, secret)
						return
					}
					wantID := map[int]string{1: v1[tc.typ], 2: "v2", 3: "v3"}[want]
					if got.code != "" || got.value != tc.value(want) || got.versionID != wantID {
						t.Fatalf("stage %q version id %q: got version %q (value matches version %d: %v), error %q; want version %q",
							vc.stage, versionID, got.versionID, want, got.value == tc.value(want), got.code, wantID)
					}
				})
			}
		}
	}
}

// checkNotFound asserts KMS's answer for a version that cannot be read: Forbidden.ResourceNotFound, HTTP 404,
// and the message shape the emulator uses for every missing resource.
func checkNotFound(t *testing.T, got answer, secret string) {
	t.Helper()
	if got.code != "Forbidden.ResourceNotFound" || got.status != http.StatusNotFound {
		t.Fatalf("want Forbidden.ResourceNotFound (404), got code %q status %d value read: %v", got.code, got.status, got.value != "")
	}
	if want := "The resource you requested is not found: secret " + secret + " has no version "; !strings.HasPrefix(got.message, want) {
		t.Fatalf("message %q does not start with %q", got.message, want)
	}
	if strings.Contains(got.detail, "pw-") || strings.Contains(got.detail, "generic value") {
		t.Fatalf("the error holds a secret value: %s", got.detail)
	}
}

// Rule 1: a managed secret has only ACSCurrent and ACSPrevious; ACSPending and custom stages are not found.
func TestManagedSecretServesOnlyCurrentAndPrevious(t *testing.T) {
	runVersionCases(t, []versionCase{
		{name: "default", managed: 2, generic: 2},
		{name: "ACSCurrent", stage: "ACSCurrent", managed: 2, generic: 2},
		{name: "ACSPrevious", stage: "ACSPrevious", managed: 1, generic: 1},
		{name: "ACSPending", stage: "ACSPending", managed: 0, generic: 3},
		{name: "custom stage", stage: "MyStage", managed: 0, generic: 3},
		{name: "unknown stage", stage: "NoSuchStage", managed: 0, generic: 0},
	})
}

// Rule 2: a VersionId given alone is ignored for a managed secret: the ACSCurrent version is returned.
func TestManagedSecretIgnoresVersionIDAlone(t *testing.T) {
	runVersionCases(t, []versionCase{
		{name: "previous id", versionID: "@v1", managed: 2, generic: 1},
		{name: "current id", versionID: "v2", managed: 2, generic: 2},
		{name: "pending id", versionID: "v3", managed: 2, generic: 3},
		{name: "unknown id", versionID: "no-such-version", managed: 2, generic: 0},
	})
}

// Rule 3: VersionStage and VersionId together are checked for existence: the id must carry the stage.
func TestManagedSecretChecksStageWithVersionID(t *testing.T) {
	runVersionCases(t, []versionCase{
		{name: "previous stage and id", stage: "ACSPrevious", versionID: "@v1", managed: 1, generic: 1},
		{name: "current stage and id", stage: "ACSCurrent", versionID: "v2", managed: 2, generic: 2},
		{name: "current stage, previous id", stage: "ACSCurrent", versionID: "@v1", managed: 0, generic: 0},
		{name: "previous stage, current id", stage: "ACSPrevious", versionID: "v2", managed: 0, generic: 0},
		{name: "previous stage, unknown id", stage: "ACSPrevious", versionID: "no-such-version", managed: 0, generic: 0},
		{name: "pending stage and id", stage: "ACSPending", versionID: "v3", managed: 0, generic: 3},
	})
}

// During the "before" rotation hook the new version of a managed secret exists with ACSPending but cannot be
// read, by stage or by id; the gateways serve the old version as ACSCurrent until the stages move.
func TestManagedSecretPendingUnreadableDuringRotation(t *testing.T) {
	srv := Start(t, WithAccessKey(testAK, testSK))
	gws := gateways(t, srv)
	for _, tc := range typeCases() {
		t.Run(tc.typ, func(t *testing.T) {
			name := "rotating-" + tc.typ
			if err := srv.AddSecret(SecretSpec{Name: name, Type: tc.typ, Data: tc.value(1), ExtendedConfig: tc.ext}); err != nil {
				t.Fatal(err)
			}
			checked := 0
			srv.OnRotate(func(ev RotationEvent) {
				if ev.SecretName != name || ev.Phase != "before" {
					return
				}
				if st, _ := srv.Secret(name); st.PendingVersionID != ev.NewVersionID {
					t.Errorf("before: pending version %q, want %q", st.PendingVersionID, ev.NewVersionID)
				}
				for _, gw := range gws {
					if got := gw.get(t, name, "", ""); got.value != ev.OldValue || got.versionID != ev.OldVersionID {
						t.Errorf("%s: current during rotation: version %q, want the old %q", gw.name, got.versionID, ev.OldVersionID)
					}
					pending := gw.get(t, name, "ACSPending", "")
					byID := gw.get(t, name, "", ev.NewVersionID)
					both := gw.get(t, name, "ACSPending", ev.NewVersionID)
					if tc.managed {
						checkNotFound(t, pending, name)
						checkNotFound(t, both, name)
						if byID.versionID != ev.OldVersionID || byID.value != ev.OldValue {
							t.Errorf("%s: new version id alone: got version %q, want ACSCurrent %q", gw.name, byID.versionID, ev.OldVersionID)
						}
					} else {
						for _, got := range []answer{pending, byID, both} {
							if got.value != ev.NewValue || got.versionID != ev.NewVersionID {
								t.Errorf("%s: Generic pending version: got %q (%s), want %q", gw.name, got.versionID, got.code, ev.NewVersionID)
							}
						}
					}
					checked++
				}
			})
			id, err := srv.RotateSecret(name)
			if err != nil {
				t.Fatal(err)
			}
			if checked != len(gws) {
				t.Fatalf("the before hook checked %d gateways, want %d", checked, len(gws))
			}
			for _, gw := range gws {
				if got := gw.get(t, name, "", ""); got.versionID != id {
					t.Errorf("%s: after rotation: version %q, want %q", gw.name, got.versionID, id)
				}
			}
		})
	}
}
