package config

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestDKMSSettings(t *testing.T) {
	fx := newFixtures(t)
	entry := `[{"regionId":"cn-hangzhou","endpoint":"kst-1.cryptoservice.kms.aliyuncs.com","clientKeyFile":"` + fx.clientKey +
		`","passwordFromEnvVariable":"DKMS_PW","caFilePath":"` + fx.ca + `"},` +
		`{"RegionId":"cn-shanghai","Endpoint":"kst-2:8443","ClientKeyFile":"` + fx.clientKey + `","PasswordFromFilePath":"` + fx.passwordFile +
		`","ignoreSslCerts":"true","caFilePath":"` + fx.ca + `","readTimeout":3000,"connectTimeout":1000}]`
	s, err := LoadSettings(context.Background(), WithoutPropertiesFile(), envOf(map[string]string{
		"cache_client_dkms_config_info": entry, "DKMS_PW": "pw-from-env",
		"cache_client_region_id": `[{"regionId":"cn-hangzhou"}]`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.DKMS) != 2 || len(s.Regions) != 1 {
		t.Fatalf("got %d dkms %d regions", len(s.DKMS), len(s.Regions))
	}
	a, b := s.DKMS[0], s.DKMS[1]
	if a.Password != "pw-from-env" || a.CAFile != fx.ca || a.IgnoreSSLCerts || a.Endpoint != "kst-1.cryptoservice.kms.aliyuncs.com" {
		t.Errorf("entry 0: %v", a)
	}
	if b.Password != fx.clientKeyPassword || b.CAFile != "" || !b.IgnoreSSLCerts || b.RegionID != "cn-shanghai" {
		t.Errorf("entry 1: %v", b)
	}
	if s.DKMSTimeout != 4*time.Second {
		t.Errorf("DKMSTimeout %v", s.DKMSTimeout)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "NOT verified") {
		t.Errorf("warnings %q", s.Warnings)
	}
	for _, out := range []string{a.String(), s.String()} {
		if strings.Contains(out, "pw-from-env") {
			t.Errorf("printed the password: %s", out)
		}
	}
}
