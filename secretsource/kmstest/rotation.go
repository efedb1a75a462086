package kmstest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"time"
)

const (
	alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	// passwordChars: rotated passwords carry the characters that break naive DSN building.
	passwordChars = alnum + "-_!@#%=+"
)

func randomAlnum(n int, chars string) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(chars)))
	for i := range b {
		k, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		b[i] = chars[k.Int64()]
	}
	return string(b)
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func newPassword() string { return randomAlnum(24, passwordChars) }

// passwordKeys are the fields a rotation of a Generic JSON secret replaces.
var passwordKeys = []string{"AccountPassword", "password", "Password"}

// rotatedValue computes the next value of e from its current (and previous) value.
func rotatedValue(e *secretEntry, cur, prev string, now time.Time) (string, error) {
	obj := map[string]any{}
	parse := func() error {
		if err := json.Unmarshal([]byte(cur), &obj); err != nil {
			return errors.New("the current value of " + e.typ + " secret " + e.name + " is not a JSON object")
		}
		return nil
	}
	encode := func() (string, error) {
		b, err := json.Marshal(obj)
		return string(b), err
	}
	switch e.typ {
	case typeGeneric:
		if e.dataType == "binary" {
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			return base64.StdEncoding.EncodeToString(b), nil
		}
		if json.Unmarshal([]byte(cur), &obj) == nil {
			for _, k := range passwordKeys {
				if _, ok := obj[k]; ok {
					obj[k] = newPassword()
					return encode()
				}
			}
		}
		return randomAlnum(32, passwordChars), nil
	case typeRds, typePolarDB, typeRedis:
		if err := parse(); err != nil {
			return "", err
		}
		if e.subType == "DoubleUsers" {
			name, _ := obj["AccountName"].(string)
			other := ""
			var p map[string]any
			if json.Unmarshal([]byte(prev), &p) == nil {
				other, _ = p["AccountName"].(string)
			}
			if other == "" || other == name {
				if base, ok := strings.CutSuffix(name, "_clone"); ok {
					other = base
				} else {
					other = name + "_clone"
				}
			}
			obj["AccountName"] = other
		}
		obj["AccountPassword"] = newPassword()
		return encode()
	case typeRAM:
		if err := parse(); err != nil {
			return "", err
		}
		obj["AccessKeyId"] = "LTAI" + randomAlnum(20, alnum)
		obj["AccessKeySecret"] = randomAlnum(30, alnum)
		obj["GenerateTimestamp"] = now.UTC().Format(timeLayout)
		return encode()
	case typeECS:
		if err := parse(); err != nil {
			return "", err
		}
		if e.subType == "SSHKey" {
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return "", err
			}
			der, err := x509.MarshalPKCS8PrivateKey(priv)
			if err != nil {
				return "", err
			}
			obj["PublicKey"] = sshEd25519PublicKey(pub)
			obj["PrivateKey"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		} else {
			obj["Password"] = newPassword()
		}
		return encode()
	}
	return "", errors.New("secret type " + e.typ + " cannot be rotated")
}

// sshEd25519PublicKey formats an authorized_keys line.
func sshEd25519PublicKey(pub ed25519.PublicKey) string {
	const alg = "ssh-ed25519"
	var b []byte
	b = binary.BigEndian.AppendUint32(b, uint32(len(alg)))
	b = append(b, alg...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(pub)))
	b = append(b, pub...)
	return alg + " " + base64.StdEncoding.EncodeToString(b) + " kmstest"
}

type ramPair struct{ AccessKeyId, AccessKeySecret string }

func parseRAMPair(data string) (ramPair, bool) {
	var p ramPair
	if json.Unmarshal([]byte(data), &p) != nil || p.AccessKeyId == "" || p.AccessKeySecret == "" {
		return ramPair{}, false
	}
	return p, true
}

// registerRAMKeyLocked makes the AccessKey held by a RAMCredentials value valid for signing.
func (s *Server) registerRAMKeyLocked(data string) {
	if p, ok := parseRAMPair(data); ok {
		s.keys[p.AccessKeyId] = &accessKey{id: p.AccessKeyId, secret: p.AccessKeySecret}
	}
}

// scheduleRAMKeyRevokeLocked revokes the old AccessKey of a rotated RAMCredentials secret after the delay
// (emulator time, checked when the key is used).
func (s *Server) scheduleRAMKeyRevokeLocked(oldData, newData string, now time.Time) {
	op, ok := parseRAMPair(oldData)
	if !ok {
		return
	}
	if np, ok := parseRAMPair(newData); ok && np.AccessKeyId == op.AccessKeyId {
		return
	}
	if k := s.keys[op.AccessKeyId]; k != nil {
		k.revokeAt = now.Add(s.cfg.ramRevokeDelay)
	}
}
