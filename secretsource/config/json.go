package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
	"github.com/kmsdb/kmsdb/secretsource/kms"
)

// jsonArray parses a JSON array of objects, reporting a syntax error by its
// byte offset only (a JSON error quotes the offending character).
func jsonArray(value string) ([]map[string]json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(value))
	var arr []map[string]json.RawMessage
	if err := dec.Decode(&arr); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("invalid JSON at byte %d: expected a JSON array of objects", se.Offset)
		case errors.As(err, &te):
			return nil, fmt.Errorf("expected a JSON array of objects, found a JSON %s", te.Value)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil, errors.New("truncated JSON: expected a JSON array of objects")
		}
		return nil, errors.New("expected a JSON array of objects")
	}
	if dec.More() {
		return nil, errors.New("unexpected text after the JSON array")
	}
	if arr == nil {
		return nil, errors.New("expected a JSON array of objects, found null")
	}
	if len(arr) == 0 {
		return nil, errors.New("empty array: expected at least one entry")
	}
	return arr, nil
}

// jsonEntry reads the fields of one array element with case-insensitive keys
// (Go's encoding/json, which Alibaba's client uses, matches them so too).
type jsonEntry struct {
	index  int
	fields map[string]json.RawMessage // canonical key -> raw
}

func newJSONEntry(index int, raw map[string]json.RawMessage, known []string, rejected map[string]string) (*jsonEntry, error) {
	e := &jsonEntry{index: index, fields: map[string]json.RawMessage{}}
	for k, v := range raw {
		if why, ok := rejected[strings.ToLower(k)]; ok {
			return nil, fmt.Errorf("entry %d: %q: %s", index, k, why)
		}
		i := slices.IndexFunc(known, func(c string) bool { return strings.EqualFold(c, k) })
		if i < 0 {
			return nil, fmt.Errorf("entry %d: unknown field %q (known: %s)", index, k, strings.Join(known, ", "))
		}
		if _, dup := e.fields[known[i]]; dup {
			return nil, fmt.Errorf("entry %d: field %q given twice", index, known[i])
		}
		if string(bytes.TrimSpace(v)) != "null" {
			e.fields[known[i]] = v
		}
	}
	return e, nil
}

func (e *jsonEntry) str(key string) (string, error) {
	raw, ok := e.fields[key]
	if !ok {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("entry %d: %q: expected a JSON string", e.index, key)
	}
	return strings.TrimSpace(s), nil
}

// boolean accepts true/false as JSON booleans or strings, like Alibaba's ParseBool.
func (e *jsonEntry) boolean(key string) (bool, error) {
	raw, ok := e.fields[key]
	if !ok {
		return false, nil
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			return true, nil
		case "false", "":
			return false, nil
		}
	}
	return false, fmt.Errorf("entry %d: %q: expected true or false", e.index, key)
}

// checkHost validates an endpoint: host or host:port, no scheme, no path.
func checkHost(index int, key, host string) error {
	if host == "" {
		return nil
	}
	if problem, ok := wire.CheckEndpoint(host); !ok {
		return fmt.Errorf("entry %d: %q: expected host or host:port: %s", index, key, problem)
	}
	return nil
}

// regionKeys are the fields of a cache_client_region_id entry, as Alibaba's
// V2 clients read them; caFilePath is a PEM file whose CA certificates verify
// this region's endpoint, added to the roots (see the package doc, TLS).
var regionKeys = []string{"regionId", "endpoint", "vpc", "caFilePath"}

// parseRegions parses cache_client_region_id: a JSON array
// [{"regionId":"cn-hangzhou","endpoint":"…","vpc":false,"caFilePath":"…"}] as Alibaba's client
// reads it (regionId required here: Alibaba's accepts a missing one and
// fails at the first request), or, as a kmsdb convenience, a comma-separated
// list of region ids.
func parseRegions(value string) ([]kms.Region, error) {
	value = strings.TrimSpace(value)
	if !strings.HasPrefix(value, "[") && !strings.HasPrefix(value, "{") {
		var out []kms.Region
		for i, id := range strings.Split(value, ",") {
			id = strings.TrimSpace(id)
			if !validRegionID(id) {
				return nil, fmt.Errorf("entry %d: expected a region id such as cn-hangzhou, or a JSON array [{\"regionId\":…}]", i)
			}
			out = append(out, kms.Region{ID: id})
		}
		return out, nil
	}
	arr, err := jsonArray(value)
	if err != nil {
		return nil, err
	}
	out := make([]kms.Region, 0, len(arr))
	for i, raw := range arr {
		e, err := newJSONEntry(i, raw, regionKeys, nil)
		if err != nil {
			return nil, err
		}
		var r kms.Region
		if r.ID, err = e.str("regionId"); err != nil {
			return nil, err
		}
		if r.ID == "" {
			return nil, fmt.Errorf("entry %d: \"regionId\" is required, e.g. {\"regionId\":\"cn-hangzhou\"}", i)
		}
		if !validRegionID(r.ID) {
			return nil, fmt.Errorf("entry %d: \"regionId\": expected letters, digits, '-' and '_' only", i)
		}
		if r.Endpoint, err = e.str("endpoint"); err != nil {
			return nil, err
		}
		if err := checkHost(i, "endpoint", r.Endpoint); err != nil {
			return nil, err
		}
		if r.VPC, err = e.boolean("vpc"); err != nil {
			return nil, err
		}
		if r.CAFile, err = e.str("caFilePath"); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func validRegionID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}
