package dkms

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/alibabacloud-go/tea/tea"
	dutil "github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi-util"
	"github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi-util/protobuf/api"
	"google.golang.org/protobuf/proto"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

// Wire constants of the instance API (as the SDK's sdk/client.go sends them).
const (
	apiVersion      = "dkms-gcs-0.2"
	signatureMethod = "RSA_PKCS1_SHA_256"
	protobufType    = "application/x-protobuf"
)

// userAgent is the SDK's, so the service sees the same client.
var userAgent = tea.StringValue(dutil.GetUserAgent(nil))

// fetch asks the endpoint: one signed POST, bounded by the source's timeout
// and ctx, on the endpoint's own client.
func (s *Source) fetch(ctx context.Context, ep *endpoint, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	body, err := proto.Marshal(&api.GetSecretValueRequest{SecretName: name, VersionStage: ref.Stage,
		VersionId: ref.VersionID, FetchExtendedConfig: s.extended})
	if err != nil {
		e := ep.failure(name)
		e.Kind, e.Message = secretsource.KindConfig, "cannot encode the request"
		return nil, e
	}
	req, err := ep.request(rctx, "GetSecretValue", body)
	if err != nil {
		e := ep.failure(name)
		e.Kind, e.Message = secretsource.KindConfig, "cannot sign the request with the client key: "+wire.Scrub(sdkText(err))
		return nil, e
	}
	resp, err := ep.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx, name, ep)
		}
		return nil, mapError(err, name, ep)
	}
	defer resp.Body.Close()
	data, err := wire.ReadBody(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx, name, ep)
		}
		return nil, mapError(err, name, ep)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, errorAnswer(resp.StatusCode, data, name, ep)
	}
	var r api.GetSecretValueResponse
	if err := proto.Unmarshal(data, &r); err != nil {
		e := ep.failure(name)
		e.Kind, e.Message = secretsource.KindInvalidAnswer, fmt.Sprintf("the dedicated KMS answered HTTP %d with a body that is not a GetSecretValue answer (%d bytes, not shown)",
			resp.StatusCode, len(data))
		return nil, e
	}
	sec, warnings, err := wire.Response{
		SecretName: r.SecretName, SecretType: r.SecretType, SecretDataType: r.SecretDataType, SecretData: r.SecretData,
		VersionID: r.VersionId, VersionStages: r.VersionStages, CreateTime: r.CreateTime,
		AutomaticRotation: r.AutomaticRotation, RotationInterval: r.RotationInterval,
		NextRotationDate: r.NextRotationDate, LastRotationDate: r.LastRotationDate, ExtendedConfig: r.ExtendedConfig,
		Origin: secretsource.Origin{Source: "dkms", Region: ep.region, Endpoint: ep.host, RequestID: wire.Token(r.RequestId)},
	}.Secret(name, ref)
	if err != nil {
		var e *secretsource.Error
		if errors.As(err, &e) {
			e.Source, e.Region, e.Endpoint, e.RequestID = "dkms", ep.region, ep.host, wire.Token(r.RequestId)
		}
		return nil, err
	}
	for _, w := range warnings {
		s.logger.LogAttrs(ctx, slog.LevelWarn, "dkms: unexpected field in GetSecretValue answer",
			slog.String("secret", name), slog.String("endpoint", ep.host), slog.String("detail", w))
	}
	return sec, nil
}

// request builds the signed POST the SDK would send: the same headers, the
// SDK's string to sign and its RSA signer.
func (ep *endpoint) request(ctx context.Context, apiName string, body []byte) (*http.Request, error) {
	sum := sha256.Sum256(body)
	headers := map[string]*string{
		"accept":                tea.String(protobufType),
		"host":                  tea.String(ep.host),
		"date":                  tea.String(time.Now().UTC().Format(http.TimeFormat)),
		"user-agent":            tea.String(userAgent),
		"x-kms-apiversion":      tea.String(apiVersion),
		"x-kms-apiname":         tea.String(apiName),
		"x-kms-signaturemethod": tea.String(signatureMethod),
		"x-kms-acccesskeyid":    ep.cred.GetAccessKeyId(), // sic, as the SDK spells it
		"content-type":          tea.String(protobufType),
		"content-length":        tea.String(strconv.Itoa(len(body))),
		"content-sha256":        tea.String(strings.ToUpper(hex.EncodeToString(sum[:]))),
	}
	toSign, err := dutil.GetStringToSign(tea.String(http.MethodPost), tea.String("/"), headers, nil)
	if err != nil {
		return nil, err
	}
	sig, err := ep.cred.GetSignature(toSign)
	if err != nil {
		return nil, err
	}
	headers["authorization"] = sig
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+ep.host+"/", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range headers {
		switch k {
		case "host", "content-length":
		default:
			req.Header[k] = []string{tea.StringValue(v)} // lower-case keys, as the SDK sends them
		}
	}
	return req, nil
}

// failure is the *secretsource.Error of a request to ep for the secret name,
// for the caller to fill in.
func (ep *endpoint) failure(name string) *secretsource.Error {
	return &secretsource.Error{Secret: name, Source: "dkms", Region: ep.region, Endpoint: ep.host}
}

// errorAnswer maps an error answer (4xx/5xx). Only the service's protobuf
// error document is read: its code, message (scrubbed, bounded) and request
// id. Any other body is counted, never shown.
func errorAnswer(status int, body []byte, name string, ep *endpoint) *secretsource.Error {
	e := ep.failure(name)
	// Protobuf carries no schema: another message (a GetSecretValue answer
	// sent with an error status) decodes as an Error with its fields shifted
	// (the secret data as ErrorMessage), except that its other fields, and a
	// string where StatusCode is an integer, are left unknown. A body with
	// unknown fields is therefore not an error document.
	var ae api.Error
	if err := proto.Unmarshal(body, &ae); err != nil || len(ae.ProtoReflect().GetUnknown()) > 0 {
		e.Kind = wire.KindOfAnswer("", status)
		e.Message = fmt.Sprintf("HTTP %d with a body that is not the service's error document (%d bytes, not shown)", status, len(body))
		return e
	}
	e.Code, e.RequestID = wire.Token(ae.ErrorCode), wire.Token(ae.RequestId)
	e.Kind = wire.KindOfAnswer(e.Code, status)
	e.Message = wire.CleanMessage(ae.ErrorMessage)
	if e.Message == "" {
		e.Message = "HTTP " + strconv.Itoa(status)
	}
	return e
}

func ctxError(ctx context.Context, name string, ep *endpoint) *secretsource.Error {
	e := ep.failure(name)
	e.Err = ctx.Err()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		e.Kind, e.Message = secretsource.KindTimeout, "deadline exceeded before the dedicated KMS answered"
	} else {
		e.Kind, e.Message = secretsource.KindUnknown, "cancelled before the dedicated KMS answered"
	}
	return e
}

// mapError classifies a failed exchange: a refused redirect or oversized
// body, else a transport failure (wire.TransportError: a timeout, a TLS
// failure or another network error), whose cause is kept scrubbed.
func mapError(err error, name string, ep *endpoint) *secretsource.Error {
	e := ep.failure(name)
	if msg, ok := wire.Describe(err); ok {
		e.Kind, e.Message = secretsource.KindInvalidAnswer, "dedicated KMS answer refused: "+msg
		return e
	}
	return wire.TransportError(e, err, "dedicated KMS", "set caFilePath to the instance CA")
}
