package config

import (
	"strings"
	"testing"
)

func FuzzParseProperties(f *testing.F) {
	f.Add("credentials_type=ak\ncredentials_access_secret=abc==\n# c\n")
	f.Add("\ufeffa:b\r\n! x\n  # y\nk = v = w\n")
	f.Add("no separator\n")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := parseProperties(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error without a line number: %v", err)
			}
			return
		}
		for k, v := range m {
			if k == "" || k != strings.TrimSpace(k) || v != strings.TrimSpace(v) || strings.ContainsAny(k, "\n=") {
				t.Fatalf("bad pair %q=%q", k, v)
			}
		}
		// Each simple line key=value comes back whole, '=' included.
		for _, line := range strings.Split(in, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(line, "\ufeff"))
			k, v, ok := strings.Cut(line, "=")
			if !ok || strings.ContainsAny(k, ":#!") || strings.HasPrefix(line, "#") || strings.TrimSpace(k) == "" || strings.Contains(line, "\r") {
				continue
			}
			if _, present := m[strings.TrimSpace(k)]; !present {
				t.Fatalf("line %q lost", line)
			}
			_ = v
		}
	})
}

func FuzzParseRegions(f *testing.F) {
	f.Add(`[{"regionId":"cn-hangzhou","endpoint":"kms.cn-hangzhou.aliyuncs.com","vpc":false}]`)
	f.Add(`[{"RegionId":"a","VPC":"true"},{"regionId":"b"}]`)
	f.Add(`cn-hangzhou, cn-shanghai`)
	f.Add(`[{"regionId":"a","vpc":"maybe"}]`)
	f.Fuzz(func(t *testing.T, in string) {
		regions, err := parseRegions(in)
		if err != nil {
			if strings.Contains(in, "hunter2") && strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error quotes the input: %v", err)
			}
			return
		}
		if len(regions) == 0 {
			t.Fatal("no error and no region")
		}
		for _, r := range regions {
			if !validRegionID(r.ID) || strings.Contains(r.Endpoint, "://") {
				t.Fatalf("accepted a bad region %+v", r)
			}
		}
	})
}

func FuzzParseDKMS(f *testing.F) {
	f.Add(`[{"regionId":"cn-hangzhou","endpoint":"kst-1.cryptoservice.kms.aliyuncs.com","clientKeyFile":"/k.json","passwordFromEnvVariable":"PW","ignoreSslCerts":false,"caFilePath":"/ca.pem"}]`)
	f.Add(`[{"regionId":"a","endpoint":"e","clientKeyFile":"k","passwordFromEnvVariable":"X","passwordFromFilePath":"Y"}]`)
	f.Add(`[{"regionId":"a","endpoint":"e","clientKeyFile":"k","password":"hunter2"}]`)
	f.Fuzz(func(t *testing.T, in string) {
		entries, err := parseDKMS(in)
		if err != nil {
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error quotes a value: %v", err)
			}
			return
		}
		for _, e := range entries {
			if e.regionID == "" || e.endpoint == "" || e.clientKey == "" {
				t.Fatalf("accepted an entry without regionId/endpoint/clientKeyFile: %+v", e)
			}
			if (e.passwordEnv != "" && e.passwordFile != "") || (e.caFile != "" && e.caCert != "") {
				t.Fatalf("accepted ambiguous entry %+v", e)
			}
		}
	})
}
