package wire

import (
	"net/url"
	"strings"
)

// RPCStringToSign is the string to sign of Alibaba Cloud's RPC signature
// (version 1.0, HMAC-SHA1; as buildRpcStringToSign in the core SDK's
// sdk/auth/rpc_signature_composer.go builds it): METHOD&%2F& followed by the
// percent-encoded, sorted query and form parameters (Signature excluded), with
// '+' as %20, '*' as %2A and '~' kept. The KMS client key signer and the STS
// AssumeRole provider sign it.
func RPCStringToSign(method string, params url.Values) string {
	s := params.Encode()
	s = strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~").Replace(s)
	return method + "&%2F&" + url.QueryEscape(s)
}
