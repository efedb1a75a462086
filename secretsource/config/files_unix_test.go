//go:build unix

package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNonRegularFilesRefused: every file a setting names is opened without
// blocking and refused unless regular, so a FIFO (no writer) named as a
// password, client key, CA or properties file fails LoadSettings at once
// with the key and the path instead of hanging it; an oversized password
// file is refused too.
func TestNonRegularFilesRefused(t *testing.T) {
	fx := newFixtures(t)
	fifo := filepath.Join(t.TempDir(), "pw.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := writeFile(t, t.TempDir(), "big", strings.Repeat("x", maxPasswordFile+1))
	region := `[{"regionId":"cn-hangzhou"}]`
	dkms := func(extra string) map[string]string {
		return map[string]string{"cache_client_dkms_config_info": `[{"regionId":"cn-hangzhou","endpoint":"kst-1.cryptoservice.kms.aliyuncs.com",` + extra + `}]`,
			"DKMS_PW": fx.clientKeyPassword}
	}
	tests := []struct {
		name string
		env  map[string]string
		opts []Option
		want string
	}{
		{"dkms password file", dkms(`"clientKeyFile":"` + fx.clientKey + `","passwordFromFilePath":"` + fifo + `"`), nil,
			`cache_client_dkms_config_info[0].passwordFromFilePath (environment variable): file "` + fifo + `" is a FIFO, not a regular file`},
		{"dkms client key file", dkms(`"clientKeyFile":"` + fifo + `","passwordFromEnvVariable":"DKMS_PW"`), nil,
			`cache_client_dkms_config_info[0].clientKeyFile (environment variable): client key file "` + fifo + `" is a FIFO, not a regular file`},
		{"dkms CA file", dkms(`"clientKeyFile":"` + fx.clientKey + `","passwordFromEnvVariable":"DKMS_PW","caFilePath":"` + fifo + `"`), nil,
			`caFilePath (environment variable): CA file "` + fifo + `" is a FIFO`},
		{"client_key password file", map[string]string{"credentials_type": "client_key", "client_key_private_key_path": fx.clientKey,
			"client_key_password_from_file_path": fifo, "cache_client_region_id": region}, nil,
			`client_key_password_from_file_path (environment variable): file "` + fifo + `" is a FIFO`},
		{"password file too large", map[string]string{"credentials_type": "client_key", "client_key_private_key_path": fx.clientKey,
			"client_key_password_from_file_path": big, "cache_client_region_id": region}, nil, "is larger than 64 KiB"},
		{"password file is a device", map[string]string{"credentials_type": "client_key", "client_key_private_key_path": fx.clientKey,
			"client_key_password_from_file_path": os.DevNull, "cache_client_region_id": region}, nil, "is a device, not a regular file"},
		{"properties file", map[string]string{"cache_client_region_id": region}, []Option{WithPropertiesFile(fifo)}, "is a FIFO, not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := LoadSettings(context.Background(), append([]Option{envOf(tt.env)}, tt.opts...)...)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute): // a watchdog, not a timing assertion: the bug blocks forever
				// Release every open(2) blocked on the FIFO until LoadSettings
				// returns, so that the test ends and leaks nothing.
				for {
					if w, oerr := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); oerr == nil {
						w.Close()
					}
					select {
					case <-done:
						t.Fatal("LoadSettings blocked on a FIFO")
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}
