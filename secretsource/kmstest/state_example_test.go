package kmstest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"

	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// A restart with the same state directory keeps the CA and the rotated secret.
func ExampleWithStateDir() {
	dir, err := os.MkdirTemp("", "kmstest-state-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	seed := kmstest.WithSecret(kmstest.SecretSpec{Name: "app-config", Data: "v1"})

	first, err := kmstest.NewServer(kmstest.WithStateDir(dir), seed)
	if err != nil {
		fmt.Println(err)
		return
	}
	newVersion, _ := first.RotateSecret("app-config")
	ca := first.CACertPEM()
	first.Close()

	second, err := kmstest.NewServer(kmstest.WithStateDir(dir), seed)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer second.Close()
	st, _ := second.Secret("app-config")
	fmt.Println(bytes.Equal(ca, second.CACertPEM()), st.CurrentVersionID == newVersion, st.PreviousValue)
	// Output: true true v1
}

// Programs in other languages drive the emulator over HTTP, e.g. with curl.
func ExampleServer_AdminURL() {
	srv, err := kmstest.NewServer(kmstest.WithSecret(kmstest.SecretSpec{Name: "app-config", Data: "v1"}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	// curl -X POST "$ADMIN/rotate?secret=app-config"
	resp, err := client.Post(srv.AdminURL()+"rotate?secret=app-config", "", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	var rotated struct{ Secret, VersionID string }
	_ = json.NewDecoder(resp.Body).Decode(&rotated)
	resp.Body.Close()
	st, _ := srv.Secret("app-config")
	fmt.Println(resp.StatusCode, rotated.Secret, rotated.VersionID == st.CurrentVersionID)

	// curl "$ADMIN/calls?action=GetSecretValue"
	resp, err = client.Get(srv.AdminURL() + "calls?action=GetSecretValue")
	if err != nil {
		fmt.Println(err)
		return
	}
	var calls struct{ Calls int }
	_ = json.NewDecoder(resp.Body).Decode(&calls)
	resp.Body.Close()
	fmt.Println(calls.Calls)
	// Output:
	// 200 app-config true
	// 0
}
