package wire

import (
	"strings"
	"testing"
)

func TestCheckEndpoint(t *testing.T) {
	for _, ok := range []string{"kms.cn-hangzhou.aliyuncs.com", "kms-vpc.cn-hangzhou.aliyuncs.com:443", "127.0.0.1:8443",
		"[::1]:8443", "::1", "kst-hzz62e0b8c2f1bb2xxxxx.cryptoservice.kms.aliyuncs.com", "localhost", "my_host.internal:9"} {
		if p, good := CheckEndpoint(ok); !good {
			t.Errorf("%q refused: %s", ok, p)
		}
	}
	const secret = "s3cr3t-pw"
	for _, bad := range []string{"", "https://kms.example.com", "app:" + secret + "@kms.example.com", "kms.example.com/path",
		"kms.example.com?token=" + secret, "kms.example.com:0", "kms.example.com:99999", "kms.example.com:http",
		"kms..example.com", "kms example.com", "kms.example.com:443:1", strings.Repeat("a", 64) + ".example.com"} {
		p, good := CheckEndpoint(bad)
		if good || p == "" {
			t.Errorf("%q accepted", bad)
		}
		if strings.Contains(p, secret) || (bad != "" && strings.Contains(p, bad)) {
			t.Errorf("the problem quotes the value: %s", p)
		}
	}
}
