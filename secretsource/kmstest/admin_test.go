package kmstest

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// adminDo calls the admin endpoint and returns the status and body.
func adminDo(t *testing.T, c *http.Client, method, u, body string, hdr ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func plainClient(t *testing.T) *http.Client {
	tr := &http.Transport{Proxy: nil}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func TestAdminEndpoint(t *testing.T) {
	srv := newTestServer(t, WithSecret(SecretSpec{Name: "acs/ram/user/app", Type: "RAMCredentials",
		Data: `{"AccessKeyId":"LTAIramAdmin","AccessKeySecret":"ram-admin-secret"}`}))
	c := plainClient(t)
	admin := srv.AdminURL()
	if !strings.HasPrefix(admin, srv.MetadataURL()+"/_kmstest/") {
		t.Fatalf("AdminURL %q", admin)
	}
	core := coreClient(t, srv, false, testAK, testSK, "", "")
	noValue := func(t *testing.T, body string) {
		t.Helper()
		for _, v := range []string{"p@ss", "AccountPassword", "plain value", "ram-admin-secret", testSK} {
			if strings.Contains(body, v) {
				t.Fatalf("admin answer holds a value or key secret: %s", body)
			}
		}
		if st, ok := srv.Secret(rdsName); ok && strings.Contains(body, st.CurrentValue) {
			t.Fatalf("admin answer holds the current value: %s", body)
		}
	}

	t.Run("help", func(t *testing.T) {
		code, body := adminDo(t, c, "GET", admin, "")
		if code != 200 || !strings.Contains(body, "POST   rotate?secret=NAME") {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("rotate", func(t *testing.T) {
		code, body := adminDo(t, c, "POST", admin+"rotate?secret="+url.QueryEscape(rdsName), "")
		var out struct{ Secret, VersionID string }
		if code != 200 || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("%d %s", code, body)
		}
		noValue(t, body)
		st, _ := srv.Secret(rdsName)
		if out.Secret != rdsName || out.VersionID != st.CurrentVersionID || st.Rotations != 1 {
			t.Fatalf("answer %+v, state %v", out, st)
		}
		if v, code := coreFetch(t, core, rdsName); code != "" || v != st.CurrentValue {
			t.Fatalf("after admin rotate the SDK reads code %q", code)
		}
		// The RAM secret's name has slashes.
		if code, body := adminDo(t, c, "POST", admin+"rotate?secret=acs/ram/user/app", ""); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("rotate errors", func(t *testing.T) {
		if code, body := adminDo(t, c, "POST", admin+"rotate?secret=nope", ""); code != 404 || !strings.Contains(body, "Forbidden.ResourceNotFound") {
			t.Fatalf("%d %s", code, body)
		}
		if code, _ := adminDo(t, c, "POST", admin+"rotate", ""); code != 400 {
			t.Fatalf("no secret: %d", code)
		}
		if code, _ := adminDo(t, c, "GET", admin+"rotate?secret="+genericName, ""); code != 405 {
			t.Fatalf("GET rotate: %d", code)
		}
	})
	t.Run("faults and calls", func(t *testing.T) {
		if code, body := adminDo(t, c, "DELETE", admin+"calls", ""); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		code, body := adminDo(t, c, "POST", admin+"faults",
			`{"action":"GetSecretValue","secret":"`+genericName+`","code":"Rejected.Throttling","times":1}`)
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		if _, code := coreFetch(t, core, genericName); code != "Rejected.Throttling" {
			t.Fatalf("first call: %q", code)
		}
		if _, code := coreFetch(t, core, genericName); code != "" {
			t.Fatalf("second call: %q", code)
		}
		code, body = adminDo(t, c, "GET", admin+"calls?action=GetSecretValue&secret="+genericName, "")
		var out struct {
			Action, Secret string
			Calls          int
		}
		if code != 200 || json.Unmarshal([]byte(body), &out) != nil || out.Calls != 2 || out.Action != "GetSecretValue" {
			t.Fatalf("%d %s", code, body)
		}
		// A fault until cleared, with latency as a duration string.
		if code, body := adminDo(t, c, "POST", admin+"faults", `{"action":"*","code":"ServiceUnavailableTemporary","latency":"1ms"}`); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		if _, code := coreFetch(t, core, genericName); code != "ServiceUnavailableTemporary" {
			t.Fatalf("with fault: %q", code)
		}
		if code, _ := adminDo(t, c, "DELETE", admin+"faults", ""); code != 200 {
			t.Fatal(code)
		}
		if _, code := coreFetch(t, core, genericName); code != "" {
			t.Fatalf("after DELETE faults: %q", code)
		}
		if _, body := adminDo(t, c, "GET", admin+"calls", ""); !strings.Contains(body, `"calls":4`) {
			t.Fatalf("all calls: %s", body)
		}
	})
	t.Run("bad faults", func(t *testing.T) {
		for _, b := range []string{`{"acton":"x","code":"y"}`, `{"code":"x","latency":"soon"}`, `{"action":"x"}`,
			`{"code":"x","times":-1}`, `{"code":"x","httpStatus":200}`, `not json`} {
			if code, body := adminDo(t, c, "POST", admin+"faults", b); code != 400 || !strings.Contains(body, `"error"`) {
				t.Errorf("%s: %d %s", b, code, body)
			}
		}
		if code, _ := adminDo(t, c, "PUT", admin+"faults", "{}"); code != 405 {
			t.Errorf("PUT faults: %d", code)
		}
	})
	t.Run("secret view", func(t *testing.T) {
		code, body := adminDo(t, c, "GET", admin+"secrets/"+url.PathEscape(rdsName), "")
		var out adminSecret
		if code != 200 || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("%d %s", code, body)
		}
		noValue(t, body)
		st, _ := srv.Secret(rdsName)
		if out.CurrentVersionID != st.CurrentVersionID || out.PreviousVersionID != st.PreviousVersionID || len(out.Versions) != 2 || out.Rotations != 1 {
			t.Fatalf("view %+v, state %v", out, st)
		}
		if code, _ := adminDo(t, c, "GET", admin+"secrets/acs/ram/user/app", ""); code != 200 {
			t.Fatalf("slash name: %d", code)
		}
		if code, _ := adminDo(t, c, "GET", admin+"secrets/nope", ""); code != 404 {
			t.Fatalf("missing: %d", code)
		}
	})
	t.Run("add version", func(t *testing.T) {
		const chosen = `{"AccountName":"app","AccountPassword":"chosen-by-the-test-9f3"}`
		body, _ := json.Marshal(map[string]any{"versionId": "v-admin-1", "value": chosen})
		code, answer := adminDo(t, c, "POST", admin+"versions?secret="+url.QueryEscape(rdsName), string(body))
		var out struct{ Secret, VersionID string }
		if code != 200 || json.Unmarshal([]byte(answer), &out) != nil || out.VersionID != "v-admin-1" {
			t.Fatalf("%d %s", code, answer)
		}
		noValue(t, answer)
		if strings.Contains(answer, "chosen-by-the-test") {
			t.Fatalf("the answer holds the value: %s", answer)
		}
		before, _ := srv.Secret(rdsName)
		if v, code := coreFetch(t, core, rdsName); code != "" || v != chosen {
			t.Fatalf("after POST versions the SDK reads %q, code %q", v, code)
		}
		if before.CurrentVersionID != "v-admin-1" || before.PreviousVersionID == "" {
			t.Fatalf("stages after POST versions: %+v", before)
		}
		// Refusals name what is wrong and never quote the body (it holds a value).
		for _, b := range []string{`{"versionId":"v2","value":"chosen-by-the-test-x","color":1}`, `{"value":"chosen-by-the-test-x"}`,
			`{"versionId":"v2"}`, `{"versionId":"v2","value":"chosen-by-the-test-x"`, `{"versionId":"v-admin-1","value":"chosen-by-the-test-x"}`} {
			code, answer := adminDo(t, c, "POST", admin+"versions?secret="+url.QueryEscape(rdsName), b)
			if code < 400 || code > 499 || !strings.Contains(answer, `"error"`) || strings.Contains(answer, "chosen-by-the-test") {
				t.Errorf("%s: %d %s", b, code, answer)
			}
		}
		if code, _ := adminDo(t, c, "POST", admin+"versions", string(body)); code != 400 {
			t.Errorf("no secret: %d", code)
		}
		if code, _ := adminDo(t, c, "GET", admin+"versions?secret="+url.QueryEscape(rdsName), ""); code != 405 {
			t.Errorf("GET versions: %d", code)
		}
		if code, _ := adminDo(t, c, "POST", admin+"versions?secret=nope", string(body)); code != 404 {
			t.Errorf("unknown secret: %d", code)
		}
	})
	t.Run("advance and revoke", func(t *testing.T) {
		tmp := srv.issueTemp(time.Minute)
		if code, body := adminDo(t, c, "POST", admin+"advance?by=2m", ""); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		if _, code := coreFetch(t, coreClient(t, srv, false, tmp.AccessKeyID, tmp.AccessKeySecret, tmp.SecurityToken, ""), genericName); code != "InvalidSecurityToken.Expired" {
			t.Fatalf("token after advance: %q", code)
		}
		if code, _ := adminDo(t, c, "POST", admin+"advance?by=-1h", ""); code != 400 {
			t.Fatalf("negative advance: %d", code)
		}
		if code, _ := adminDo(t, c, "POST", admin+"revoke-access-key?id="+testAK, ""); code != 200 {
			t.Fatal(code)
		}
		if _, code := coreFetch(t, core, genericName); code != "InvalidAccessKeyId.NotFound" {
			t.Fatalf("revoked key: %q", code)
		}
		srv.AddAccessKey(testAK, testSK)
		ck, err := srv.NewClientKey()
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := adminDo(t, c, "POST", admin+"revoke-client-key?id="+ck.KeyID, ""); code != 200 {
			t.Fatal(code)
		}
		if _, ok := srv.clientKeyPublic(ck.KeyID); ok {
			t.Fatal("client key still registered")
		}
		if code, _ := adminDo(t, c, "POST", admin+"revoke-client-key", ""); code != 400 {
			t.Fatal("revoke without id accepted")
		}
	})
	t.Run("unknown operation", func(t *testing.T) {
		if code, _ := adminDo(t, c, "GET", admin+"nope", ""); code != 404 {
			t.Fatal(code)
		}
	})
	t.Run("browser and rebinding refused", func(t *testing.T) {
		if code, body := adminDo(t, c, "POST", admin+"rotate?secret="+genericName, "", "Origin", "http://evil.example"); code != 403 {
			t.Fatalf("Origin: %d %s", code, body)
		}
		if code, body := adminDo(t, c, "POST", admin+"rotate?secret="+genericName, "", "Host", "evil.example"); code != 403 {
			t.Fatalf("Host: %d %s", code, body)
		}
		if code, _ := adminDo(t, c, "GET", admin, "", "Host", "localhost"); code != 200 {
			t.Fatalf("Host localhost: %d", code)
		}
		if st, _ := srv.Secret(genericName); st.Rotations != 0 {
			t.Fatal("a refused request rotated")
		}
	})
}

// TestAdminNotReachableElsewhere: the gateways treat /_kmstest/ as any other (unsigned) request, and the proxy
// does not serve the admin endpoint.
func TestAdminNotReachableElsewhere(t *testing.T) {
	srv := newTestServer(t)
	c := plainClient(t)
	tlsTr := &http.Transport{TLSClientConfig: srv.TLSClientConfig()}
	t.Cleanup(tlsTr.CloseIdleConnections)
	tc := &http.Client{Transport: tlsTr, Timeout: 30 * time.Second}
	path := "/_kmstest/rotate?secret=" + genericName
	for name, u := range map[string]string{
		"kms":       "http://" + srv.KMSAddr() + path,
		"kms-tls":   "https://" + srv.KMSTLSAddr() + path,
		"dkms":      "https://" + srv.DKMSAddr() + path,
		"sts":       "https://" + srv.STSAddr() + path,
		"proxy":     srv.ProxyURL() + path,
		"calls-kms": "http://" + srv.KMSAddr() + "/_kmstest/calls",
	} {
		cl := c
		if strings.HasPrefix(u, "https") {
			cl = tc
		}
		code, body := adminDo(t, cl, "POST", u, "")
		if code == 200 || strings.Contains(body, "versionId") || strings.Contains(body, `"calls"`) {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	// Through the proxy in absolute form, as the metadata host or as the metadata listener itself.
	proxyURL, _ := url.Parse(srv.ProxyURL())
	ptr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
	t.Cleanup(ptr.CloseIdleConnections)
	pc := &http.Client{Transport: ptr, Timeout: 30 * time.Second}
	for _, u := range []string{"http://100.100.100.200" + path, srv.MetadataURL() + path} {
		code, body := adminDo(t, pc, "POST", u, "")
		if code == 200 {
			t.Errorf("through the proxy %s: %d %s", u, code, body)
		}
	}
	// A CONNECT tunnel to the metadata listener is refused.
	conn, err := net.Dial("tcp", proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	meta := strings.TrimPrefix(srv.MetadataURL(), "http://")
	if _, err := io.WriteString(conn, "CONNECT "+meta+" HTTP/1.1\r\nHost: "+meta+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("CONNECT to the metadata listener: %d", resp.StatusCode)
	}
	if st, _ := srv.Secret(genericName); st.Rotations != 0 {
		t.Fatal("rotated through a gateway or the proxy")
	}
}
