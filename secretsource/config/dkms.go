package config

// Dedicated KMS (DKMS): WithDKMS and cache_client_dkms_config_info, parsed,
// resolved (passwords, CA files) and turned into a source.

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/kmsdb/kmsdb/secretsource/dkms"
)

// newDKMS builds the source of the i-th configured dedicated KMS instance.
func newDKMS(s *Settings, i int, logger *slog.Logger) (*dkms.Source, error) {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = s.DKMSTimeout
	}
	src, err := dkms.New(dkms.Config{Endpoint: s.DKMS[i], Timeout: timeout, FetchExtendedConfig: s.FetchExtendedConfig, Logger: logger})
	if err != nil {
		return nil, withOrigin(err, KeyDKMSConfig, s.DKMSOrigin)
	}
	return src, nil
}

// loadDKMS resolves the dedicated KMS instances: WithDKMS's, else those of
// cache_client_dkms_config_info with their passwords and CA files resolved.
func loadDKMS(s *Settings, r *resolver) error {
	if len(r.o.dkms) > 0 {
		return checkDKMSOptions(s, r.o.dkms)
	}
	value, origin := r.get(KeyDKMSConfig)
	if value == "" {
		return nil
	}
	entries, err := parseDKMS(value)
	if err != nil {
		return keyError(KeyDKMSConfig, origin, err.Error())
	}
	for _, d := range entries {
		e, err := resolveDKMS(r, origin, d, s)
		if err != nil {
			return err
		}
		s.DKMS = append(s.DKMS, e)
		s.DKMSTimeout = max(s.DKMSTimeout, d.timeout)
	}
	s.DKMSOrigin = origin
	return nil
}

// checkDKMSOptions checks the instances given with WithDKMS.
func checkDKMSOptions(s *Settings, eps []dkms.Endpoint) error {
	for i, e := range eps {
		if e.RegionID == "" || e.Endpoint == "" || e.ClientKeyFile == "" {
			return keyError("WithDKMS", originCode, fmt.Sprintf("instance %d: RegionID, Endpoint and ClientKeyFile are required", i))
		}
		if e.Password == "" {
			return keyError("WithDKMS", originCode, fmt.Sprintf("instance %d: Password is required", i))
		}
		if err := checkClientKey("WithDKMS ClientKeyFile", "", e.ClientKeyFile); err != nil {
			return err
		}
		if e.CAFile != "" && !e.IgnoreSSLCerts {
			if err := checkCAFile("WithDKMS CAFile", "", e.CAFile); err != nil {
				return err
			}
		}
		if e.IgnoreSSLCerts {
			s.warnLoggedBySource(fmt.Sprintf("WithDKMS instance %d: IgnoreSSLCerts is true: the instance's certificate is NOT verified", i))
		}
	}
	s.DKMS, s.DKMSOrigin = slices.Clone(eps), originCode
	return nil
}

// resolveDKMS checks an entry's files and resolves its password and CA.
func resolveDKMS(r *resolver, origin string, d dkmsEntry, s *Settings) (dkms.Endpoint, error) {
	e := dkms.Endpoint{RegionID: d.regionID, Endpoint: d.endpoint, ClientKeyFile: d.clientKey, IgnoreSSLCerts: d.ignoreSSL}
	if err := checkClientKey(d.key("clientKeyFile"), origin, d.clientKey); err != nil {
		return e, err
	}
	pw, err := dkmsPassword(r, origin, d)
	if err != nil {
		return e, err
	}
	e.Password = pw
	ca := d.caFile
	caKey := d.key("caFilePath")
	if d.caCert != "" {
		caKey = d.key("caCert")
		if strings.Contains(d.caCert, "-----BEGIN CERTIFICATE-----") {
			return e, keyError(caKey, origin, "an inline PEM certificate is not supported: put it in a file and set caFilePath")
		}
		ca = d.caCert
	}
	switch {
	case d.ignoreSSL:
		msg := fmt.Sprintf("%s: ignoreSslCerts is true: the instance's certificate is NOT verified", d.key("ignoreSslCerts"))
		if ca != "" {
			msg += " (the CA file is ignored)"
		}
		s.warnLoggedBySource(msg)
	case ca != "":
		if err := checkCAFile(caKey, origin, ca); err != nil {
			return e, err
		}
		e.CAFile = ca
	}
	return e, nil
}

// dkmsPassword resolves an entry's client key password: from the file or the
// environment variable the entry names, else as Alibaba's client falls back.
func dkmsPassword(r *resolver, origin string, d dkmsEntry) (string, error) {
	switch {
	case d.passwordFile != "":
		return readPasswordFile(d.key("passwordFromFilePath"), origin, d.passwordFile)
	case d.passwordEnv != "":
		v, ok := r.o.lookupEnv(d.passwordEnv)
		if !ok || v == "" {
			return "", keyError(d.key("passwordFromEnvVariable"), origin,
				fmt.Sprintf("names the environment variable %s, which is unset or empty", d.passwordEnv))
		}
		return v, nil
	case d.passwordFilePathEnv != "":
		path, ok := r.o.lookupEnv(d.passwordFilePathEnv)
		if !ok || path == "" {
			return "", keyError(d.key("passwordFromFilePathName"), origin,
				fmt.Sprintf("names the environment variable %s, which is unset or empty", d.passwordFilePathEnv))
		}
		return readPasswordFile(d.key("passwordFromFilePathName"), origin, path)
	default:
		// Alibaba's fallbacks: the client_key_password env var, then (file only)
		// the client key password of the properties file.
		if v, ok := r.o.lookupEnv(EnvClientKeyPassword); ok && v != "" {
			return v, nil
		}
		if pw, err := clientKeyPassword(r); err == nil {
			return pw, nil
		}
		return "", keyError(d.key("passwordFromEnvVariable"), origin,
			"no password for the client key: set passwordFromEnvVariable (the name of an environment variable holding it) or passwordFromFilePath")
	}
}

// key names a field of the entry in errors and warnings.
func (d dkmsEntry) key(field string) string {
	return fmt.Sprintf("%s[%d].%s", KeyDKMSConfig, d.index, field)
}

// warnLoggedBySource records a warning that a source logs itself when built.
func (s *Settings) warnLoggedBySource(msg string) {
	s.Warnings = append(s.Warnings, msg)
	if s.loggedBySource == nil {
		s.loggedBySource = map[string]bool{}
	}
	s.loggedBySource[msg] = true
}

// dkmsKeys are the fields of a cache_client_dkms_config_info entry: the
// documented ones, the other DkmsConfig fields Alibaba's client decodes
// (passwordFromFilePathName: the name of an env var holding the password
// file's path; caCert: a CA file path or inline PEM; ignoreSSL: the SDK's
// spelling), and timeouts of the SDK config.
var dkmsKeys = []string{"regionId", "endpoint", "clientKeyFile", "passwordFromEnvVariable", "passwordFromFilePath",
	"passwordFromFilePathName", "ignoreSslCerts", "ignoreSSL", "caFilePath", "caCert", "protocol", "readTimeout", "connectTimeout"}

var dkmsRejected = map[string]string{
	"password":         "an inline password is not read (Alibaba's client ignores it too): use passwordFromEnvVariable or passwordFromFilePath",
	"clientkeycontent": "inline client keys are not supported: use clientKeyFile",
	"ca":               "use caFilePath",
}

// dkmsEntry is one parsed cache_client_dkms_config_info element before its
// password and CA are resolved.
type dkmsEntry struct {
	index                         int
	regionID, endpoint, clientKey string
	passwordEnv, passwordFile     string
	passwordFilePathEnv           string
	caFile, caCert                string
	ignoreSSL                     bool
	timeout                       time.Duration // readTimeout + connectTimeout, 0 when not given
}

// parseDKMS parses cache_client_dkms_config_info; files and passwords are
// resolved later (resolveDKMS).
func parseDKMS(value string) ([]dkmsEntry, error) {
	arr, err := jsonArray(strings.TrimSpace(value))
	if err != nil {
		return nil, err
	}
	out := make([]dkmsEntry, 0, len(arr))
	for i, raw := range arr {
		e, err := newJSONEntry(i, raw, dkmsKeys, dkmsRejected)
		if err != nil {
			return nil, err
		}
		d := dkmsEntry{index: i}
		for _, f := range []struct {
			key string
			dst *string
		}{
			{"regionId", &d.regionID}, {"endpoint", &d.endpoint}, {"clientKeyFile", &d.clientKey},
			{"passwordFromEnvVariable", &d.passwordEnv}, {"passwordFromFilePath", &d.passwordFile},
			{"passwordFromFilePathName", &d.passwordFilePathEnv}, {"caFilePath", &d.caFile}, {"caCert", &d.caCert},
		} {
			if *f.dst, err = e.str(f.key); err != nil {
				return nil, err
			}
		}
		for _, k := range []string{"regionId", "endpoint", "clientKeyFile"} {
			if v, _ := e.str(k); v == "" {
				return nil, fmt.Errorf("entry %d: %q is required (regionId, endpoint and clientKeyFile always are)", i, k)
			}
		}
		if !validRegionID(d.regionID) {
			return nil, fmt.Errorf("entry %d: \"regionId\": expected letters, digits, '-' and '_' only", i)
		}
		if err := checkHost(i, "endpoint", d.endpoint); err != nil {
			return nil, err
		}
		a, err := e.boolean("ignoreSslCerts")
		if err != nil {
			return nil, err
		}
		b, err := e.boolean("ignoreSSL")
		if err != nil {
			return nil, err
		}
		d.ignoreSSL = a || b
		if p, err := e.str("protocol"); err != nil {
			return nil, err
		} else if p != "" && !strings.EqualFold(p, "https") {
			return nil, fmt.Errorf("entry %d: \"protocol\": dedicated KMS is reached over https only", i)
		}
		for _, k := range []string{"readTimeout", "connectTimeout"} {
			if raw, ok := e.fields[k]; ok {
				var ms int
				if json.Unmarshal(raw, &ms) != nil || ms <= 0 || ms > 3600_000 {
					return nil, fmt.Errorf("entry %d: %q: expected a positive number of milliseconds", i, k)
				}
				d.timeout += time.Duration(ms) * time.Millisecond
			}
		}
		n := 0
		for _, v := range []string{d.passwordEnv, d.passwordFile, d.passwordFilePathEnv} {
			if v != "" {
				n++
			}
		}
		if n > 1 {
			return nil, fmt.Errorf("entry %d: set only one of \"passwordFromEnvVariable\" and \"passwordFromFilePath\" "+
				"(Alibaba's client silently prefers the file)", i)
		}
		if d.caFile != "" && d.caCert != "" {
			return nil, fmt.Errorf("entry %d: set only one of \"caFilePath\" and \"caCert\"", i)
		}
		out = append(out, d)
	}
	return out, nil
}
