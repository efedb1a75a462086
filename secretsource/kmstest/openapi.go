package kmstest

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
)

const kmsAPIVersion = "2016-01-20"

// openAPIHandler is the shared gateway (KMS OpenAPI, RPC style, JSON answers).
func (s *Server) openAPIHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			s.writeError(w, &apiError{Status: http.StatusBadRequest, Code: "InvalidParameter", Message: "cannot read body"})
			return
		}
		params := requestParams(r, body)
		action := params.Get("Action")
		if a := r.Header.Get("x-acs-action"); a != "" {
			action = a
		}
		if !s.admit(w, action, params.Get("SecretName")) {
			return
		}
		v, aerr := s.verify(r, body)
		if aerr != nil {
			s.writeError(w, aerr)
			return
		}
		p := v.params
		if p.Get("Version") != kmsAPIVersion {
			s.writeError(w, &apiError{Status: http.StatusBadRequest, Code: "InvalidVersion",
				Message: "Specified parameter Version is not valid."})
			return
		}
		var resp any
		switch action {
		case "GetSecretValue":
			resp, aerr = s.apiGetSecretValue(p)
		case "PutSecretValue":
			resp, aerr = s.apiPutSecretValue(p)
		case "RotateSecret":
			resp, aerr = s.apiRotateSecret(p)
		case "DescribeSecret":
			resp, aerr = s.apiDescribeSecret(p)
		case "ListSecrets":
			resp, aerr = s.apiListSecrets(p)
		default:
			aerr = &apiError{Status: http.StatusNotFound, Code: "InvalidAction.NotFound",
				Message: "Specified api is not found, please check your url and method."}
		}
		if aerr != nil {
			s.writeError(w, aerr)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

func fmtInterval(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

func missing(name string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "MissingParameter",
		Message: "The parameter " + name + " needed but no provided."}
}

func (s *Server) apiGetSecretValue(p map[string][]string) (any, *apiError) {
	get := func(k string) string {
		if v := p[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	name := get("SecretName")
	if name == "" {
		return nil, missing("SecretName")
	}
	sv, aerr := s.getSecretValue(name, get("VersionStage"), get("VersionId"), get("FetchExtendedConfig") == "true")
	if aerr != nil {
		return nil, aerr
	}
	resp := map[string]any{
		"RequestId":      newRequestID(),
		"SecretName":     sv.Name,
		"SecretType":     sv.Type,
		"SecretDataType": sv.DataType,
		"SecretData":     sv.Data,
		"VersionId":      sv.VersionID,
		"CreateTime":     fmtTime(sv.CreateTime),
		"VersionStages":  map[string]any{"VersionStage": sv.Stages},
	}
	// The service returns AutomaticRotation only for managed (Rds, PolarDB, Redis, RAM, ECS) secrets.
	if sv.Type != typeGeneric || sv.AutomaticRotation {
		resp["AutomaticRotation"] = "Disabled"
	}
	if sv.AutomaticRotation {
		resp["AutomaticRotation"] = "Enabled"
		resp["RotationInterval"] = fmtInterval(sv.RotationInterval)
		resp["NextRotationDate"] = fmtTime(sv.NextRotationDate)
	}
	if !sv.LastRotationDate.IsZero() {
		resp["LastRotationDate"] = fmtTime(sv.LastRotationDate)
	}
	if sv.ExtendedConfig != "" {
		resp["ExtendedConfig"] = sv.ExtendedConfig
	}
	return resp, nil
}

func first(p map[string][]string, k string) string {
	if v := p[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (s *Server) apiPutSecretValue(p map[string][]string) (any, *apiError) {
	name := first(p, "SecretName")
	if name == "" {
		return nil, missing("SecretName")
	}
	versionID := first(p, "VersionId")
	if versionID == "" {
		return nil, missing("VersionId")
	}
	data := first(p, "SecretData")
	if data == "" {
		return nil, missing("SecretData")
	}
	var stages []string
	if st := first(p, "VersionStages"); st != "" {
		if err := json.Unmarshal([]byte(st), &stages); err != nil {
			return nil, &apiError{Status: http.StatusBadRequest, Code: "InvalidParameter",
				Message: "The parameter VersionStages must be a JSON array of strings."}
		}
	}
	dataType := first(p, "SecretDataType")
	if dataType != "" && dataType != "text" && dataType != "binary" {
		return nil, &apiError{Status: http.StatusBadRequest, Code: "InvalidParameter",
			Message: "The parameter SecretDataType must be text or binary."}
	}
	if aerr := s.putSecretValue(name, data, dataType, versionID, stages); aerr != nil {
		return nil, aerr
	}
	if len(stages) == 0 {
		stages = []string{stageCurrent}
	}
	return map[string]any{
		"RequestId":     newRequestID(),
		"SecretName":    name,
		"VersionId":     versionID,
		"VersionStages": map[string]any{"VersionStage": stages},
	}, nil
}

func secretARN(name string) string {
	return "acs:kms:cn-hangzhou:1234567890123456:secret/" + name
}

func (s *Server) apiRotateSecret(p map[string][]string) (any, *apiError) {
	name := first(p, "SecretName")
	if name == "" {
		return nil, missing("SecretName")
	}
	id, aerr := s.rotate(name, first(p, "VersionId"))
	if aerr != nil {
		return nil, aerr
	}
	return map[string]any{"RequestId": newRequestID(), "SecretName": name, "Arn": secretARN(name), "VersionId": id}, nil
}

func (s *Server) apiDescribeSecret(p map[string][]string) (any, *apiError) {
	name := first(p, "SecretName")
	if name == "" {
		return nil, missing("SecretName")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.secrets[name]
	if e == nil {
		return nil, errNotFound(name)
	}
	resp := map[string]any{
		"RequestId":       newRequestID(),
		"SecretName":      e.name,
		"Arn":             secretARN(e.name),
		"Description":     "",
		"SecretType":      e.typ,
		"CreateTime":      fmtTime(e.createTime),
		"UpdateTime":      fmtTime(e.updateTime),
		"EncryptionKeyId": "",
		"Tags":            map[string]any{"Tag": []any{}},
	}
	if a := e.automaticRotationString(); a != "" {
		resp["AutomaticRotation"] = a
	}
	if e.autoRotation {
		resp["RotationInterval"] = fmtInterval(e.interval)
		resp["NextRotationDate"] = fmtTime(e.nextRotation())
	}
	if !e.lastRotation.IsZero() {
		resp["LastRotationDate"] = fmtTime(e.lastRotation)
	}
	if e.extJSON != "" {
		resp["ExtendedConfig"] = e.extJSON
	}
	return resp, nil
}

func (s *Server) apiListSecrets(p map[string][]string) (any, *apiError) {
	page, size := 1, 10
	if v := first(p, "PageNumber"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, &apiError{Status: http.StatusBadRequest, Code: "InvalidParameter",
				Message: "The parameter PageNumber must be a positive integer."}
		}
		page = n
	}
	if v := first(p, "PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return nil, &apiError{Status: http.StatusBadRequest, Code: "InvalidParameter",
				Message: "The parameter PageSize must be an integer from 1 to 100."}
		}
		size = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := s.secretNamesLocked()
	list := []any{}
	for i := (page - 1) * size; i < len(names) && i < page*size; i++ {
		e := s.secrets[names[i]]
		list = append(list, map[string]any{
			"SecretName": e.name, "SecretType": e.typ, "CreateTime": fmtTime(e.createTime),
			"UpdateTime": fmtTime(e.updateTime), "PlannedDeleteTime": "", "Tags": map[string]any{"Tag": []any{}},
		})
	}
	return map[string]any{
		"RequestId":  newRequestID(),
		"PageNumber": page,
		"PageSize":   size,
		"TotalCount": len(names),
		"SecretList": map[string]any{"Secret": list},
	}, nil
}
