package dbrole

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// scramIterations is PostgreSQL's default scram_iterations.
const scramIterations = 4096

// pgPasswordLiteral is what follows PASSWORD in CREATE/ALTER ROLE: a
// SCRAM-SHA-256 verifier computed here when scramSafe(password), else the
// password itself (the server hashes it). secret is that literal's content,
// for scrubbing.
func pgPasswordLiteral(password string) (lit, secret string, err error) {
	if !scramSafe(password) {
		return pgLiteral(password), password, nil
	}
	v, err := scramVerifier(password)
	if err != nil {
		return "", "", err
	}
	return pgLiteral(v), v, nil
}

// scramVerifier is the SCRAM-SHA-256 secret PostgreSQL stores for password
// (RFC 5802, RFC 7677), in the form ALTER ROLE ... PASSWORD accepts:
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>. Sent instead of
// the password, it keeps the clear password out of the statement, hence out
// of the server's log (log_statement, errors) and pg_stat_activity. The
// caller checks scramSafe(password) first.
func scramVerifier(password string) (string, error) {
	salt, err := scramSalt()
	if err != nil {
		return "", fmt.Errorf("dbrole: postgres: salt: %w", err)
	}
	return scramVerifierSalt(password, salt, scramIterations)
}

// scramSalt draws a verifier's salt; tests fix it.
var scramSalt = func() ([]byte, error) {
	salt := make([]byte, 16)
	_, err := rand.Read(salt)
	return salt, err
}

func scramVerifierSalt(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("dbrole: postgres: SCRAM key derivation: %w", err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	server := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(server)), nil
}

// scramSafe reports whether password is one that PostgreSQL's SASLprep
// (pg_saslprep: NFKC, mapping, prohibited code points) and pgx's
// (precis.OpaqueString, NFC) both leave unchanged: then a verifier computed
// from its bytes is the one the server would compute, and every client logs
// in with it. Pure ASCII always is. For any other, the two normalizations
// may differ (NFKC maps 'ﬁ' to "fi", NFC does not); such a password is sent
// for the server to hash, as before.
func scramSafe(password string) bool {
	ascii := true
	for i := 0; i < len(password); i++ {
		if password[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return true
	}
	if !utf8.ValidString(password) || norm.NFKC.String(password) != password {
		return false
	}
	for _, r := range password {
		if unicode.Is(saslprepUnassigned, r) || unicode.Is(saslprepMappedToNothing, r) {
			return false
		}
	}
	n, err := precis.OpaqueString.String(password)
	return err == nil && n == password
}

// saslprepMappedToNothing is RFC 3454 table B.1.
var saslprepMappedToNothing = &unicode.RangeTable{R16: []unicode.Range16{
	{0x00AD, 0x00AD, 1}, {0x034F, 0x034F, 1}, {0x1806, 0x1806, 1}, {0x180B, 0x180D, 1},
	{0x200B, 0x200D, 1}, {0x2060, 0x2060, 1}, {0xFE00, 0xFE0F, 1}, {0xFEFF, 0xFEFF, 1},
}}
