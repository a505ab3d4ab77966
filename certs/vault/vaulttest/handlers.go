package vaulttest

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// secret is a KV v2 key: its versions and metadata.
type secret struct {
	current  int
	versions map[int]*version
	created  time.Time
	updated  time.Time
}

type version struct {
	data      map[string]json.RawMessage
	created   time.Time
	deleted   time.Time // zero: not deleted
	destroyed bool
}

const permissionDenied = "permission denied"

// policyDenied is how Vault words a policy refusal.
const policyDenied = "1 error occurred:\n\t* permission denied\n\n"

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counts.Requests++
	fail, delay := s.fail, s.delay
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		writeErrors(w, http.StatusNotFound)
		return
	}
	method := r.Method
	if method == http.MethodGet && r.URL.Query().Get("list") == "true" {
		method = "LIST"
	}
	if method == http.MethodPut {
		method = http.MethodPost // Vault treats PUT and POST alike
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(method, path)
	if fail != nil {
		if status, body, failed := fail(r); failed {
			if status == http.StatusForbidden {
				s.counts.Forbidden++
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
			return
		}
	}
	if r.Header.Get("X-Vault-Namespace") != s.o.Namespace {
		s.deny(w, permissionDenied)
		return
	}
	switch {
	case method == http.MethodPost && path == "auth/"+s.o.AppRoleMount+"/login":
		s.appRoleLogin(w, r)
		return
	case method == http.MethodPost && path == "auth/"+s.o.CertMount+"/login":
		s.certLogin(w, r)
		return
	}
	tok, ok := s.tokenLocked(r.Header.Get("X-Vault-Token"))
	if !ok {
		s.deny(w, permissionDenied)
		return
	}
	if method == http.MethodGet && path == "auth/token/lookup-self" {
		s.lookupSelf(w, r.Header.Get("X-Vault-Token"), tok)
		return
	}
	kvPath, ok := strings.CutPrefix(path, s.o.Mount+"/")
	if !ok {
		writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", path))
		return
	}
	endpoint, key, _ := strings.Cut(kvPath, "/")
	key = strings.TrimSuffix(key, "/")
	writing := method == http.MethodPost || method == http.MethodDelete
	if writing && tok.readOnly {
		s.deny(w, policyDenied)
		return
	}
	switch {
	case endpoint == "data" && method == http.MethodGet:
		s.readData(w, r, key)
	case endpoint == "data" && method == http.MethodPost:
		s.writeData(w, r, key)
	case endpoint == "data" && method == http.MethodDelete:
		s.deleteLatest(w, key)
	case endpoint == "metadata" && method == "LIST":
		s.list(w, key)
	case endpoint == "metadata" && method == http.MethodGet:
		s.readMetadata(w, key)
	case endpoint == "metadata" && method == http.MethodDelete:
		delete(s.kv, key)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeErrors(w, http.StatusMethodNotAllowed, "unsupported operation")
	}
}

func (s *Server) count(method, path string) {
	c := &s.counts
	switch {
	case strings.HasPrefix(path, "auth/"+s.o.AppRoleMount+"/login"):
		c.AppRoleLogins++
	case strings.HasPrefix(path, "auth/"+s.o.CertMount+"/login"):
		c.CertLogins++
	case path == "auth/token/lookup-self":
		c.TokenLookups++
	case strings.HasPrefix(path, s.o.Mount+"/data/"):
		switch method {
		case http.MethodGet:
			c.DataReads++
		case http.MethodPost:
			c.DataWrites++
		case http.MethodDelete:
			c.DataDeletes++
		}
	case strings.HasPrefix(path, s.o.Mount+"/metadata/"):
		switch method {
		case "LIST":
			c.Lists++
		case http.MethodGet:
			c.MetadataReads++
		case http.MethodDelete:
			c.MetadataDeletes++
		}
	}
}

func (s *Server) deny(w http.ResponseWriter, message string) {
	s.counts.Forbidden++
	writeErrors(w, http.StatusForbidden, message)
}

// tokenLocked returns a live token's info.
func (s *Server) tokenLocked(tok string) (*tokenInfo, bool) {
	ti, ok := s.tokens[tok]
	if !ok || tok == "" {
		return nil, false
	}
	if !ti.expires.IsZero() && !s.o.Now().Before(ti.expires) {
		delete(s.tokens, tok)
		return nil, false
	}
	return ti, true
}

// envelope is Vault's response wrapper around data or auth.
func envelope(data, auth any) map[string]any {
	return map[string]any{
		"request_id":     "00000000-0000-0000-0000-000000000000",
		"lease_id":       "",
		"renewable":      false,
		"lease_duration": 0,
		"data":           data,
		"wrap_info":      nil,
		"warnings":       nil,
		"auth":           auth,
	}
}

func (s *Server) issue(w http.ResponseWriter, readOnly bool, method string) {
	tok := "hvs." + randomHex(s.t, 12)
	s.tokens[tok] = s.newTokenLocked(readOnly, s.o.TokenTTL)
	policy := "edgegate-rw"
	if readOnly {
		policy = "edgegate-ro"
	}
	writeJSON(w, http.StatusOK, envelope(nil, map[string]any{
		"client_token":   tok,
		"accessor":       randomHex(s.t, 12),
		"policies":       []string{"default", policy},
		"token_policies": []string{"default", policy},
		"metadata":       map[string]string{"method": method},
		"lease_duration": int64(s.o.TokenTTL / time.Second),
		"renewable":      true,
		"entity_id":      "",
		"token_type":     "service",
		"orphan":         true,
	}))
}

func (s *Server) appRoleLogin(w http.ResponseWriter, r *http.Request) {
	var body struct {
		RoleID   string `json:"role_id"`
		SecretID string `json:"secret_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeErrors(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
		return
	}
	if body.RoleID == "" {
		writeErrors(w, http.StatusBadRequest, "missing role_id")
		return
	}
	role, ok := s.roles[body.RoleID]
	if !ok || body.SecretID != role.secretID {
		writeErrors(w, http.StatusBadRequest, "invalid role or secret ID")
		return
	}
	s.issue(w, role.readOnly, "approle")
}

func (s *Server) certLogin(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		writeErrors(w, http.StatusBadRequest, "client certificate must be supplied")
		return
	}
	certs := r.TLS.PeerCertificates
	intermediates := x509.NewCertPool()
	for _, c := range certs[1:] {
		intermediates.AddCert(c)
	}
	if s.o.ClientCAs == nil {
		writeErrors(w, http.StatusBadRequest, "invalid certificate or no client certificate supplied")
		return
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         s.o.ClientCAs,
		Intermediates: intermediates,
		CurrentTime:   s.o.Now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		writeErrors(w, http.StatusBadRequest, "invalid certificate or no client certificate supplied")
		return
	}
	s.issue(w, s.o.ReadOnly, "cert")
}

func (s *Server) lookupSelf(w http.ResponseWriter, tok string, ti *tokenInfo) {
	ttl := int64(0)
	if !ti.expires.IsZero() {
		ttl = int64(ti.expires.Sub(s.o.Now()) / time.Second)
	}
	policies := []string{"root"}
	if tok != s.root {
		policies = []string{"default", map[bool]string{true: "edgegate-ro", false: "edgegate-rw"}[ti.readOnly]}
	}
	writeJSON(w, http.StatusOK, envelope(map[string]any{
		"accessor":      "",
		"creation_time": ti.created.Unix(),
		"creation_ttl":  int64(ti.ttl / time.Second),
		"display_name":  "token",
		"expire_time":   nil,
		"id":            tok,
		"policies":      policies,
		"renewable":     ti.ttl > 0,
		"ttl":           ttl,
		"type":          "service",
	}, nil))
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (v *version) metadata(n int) map[string]any {
	return map[string]any{
		"created_time":    timeString(v.created),
		"custom_metadata": nil,
		"deletion_time":   timeString(v.deleted),
		"destroyed":       v.destroyed,
		"version":         n,
	}
}

func (s *Server) readData(w http.ResponseWriter, r *http.Request, key string) {
	sec, ok := s.kv[key]
	if !ok {
		writeErrors(w, http.StatusNotFound)
		return
	}
	n := sec.current
	if q := r.URL.Query().Get("version"); q != "" && q != "0" {
		var err error
		if n, err = strconv.Atoi(q); err != nil || n < 0 {
			writeErrors(w, http.StatusBadRequest, "invalid version")
			return
		}
	}
	v, ok := sec.versions[n]
	if !ok {
		writeErrors(w, http.StatusNotFound)
		return
	}
	if !v.deleted.IsZero() || v.destroyed {
		// Vault answers a deleted version with 404 and its metadata.
		writeJSON(w, http.StatusNotFound, envelope(map[string]any{"data": nil, "metadata": v.metadata(n)}, nil))
		return
	}
	writeJSON(w, http.StatusOK, envelope(map[string]any{"data": v.data, "metadata": v.metadata(n)}, nil))
}

func (s *Server) writeData(w http.ResponseWriter, r *http.Request, key string) {
	var body struct {
		Data    map[string]json.RawMessage `json:"data"`
		Options struct {
			CAS *int `json:"cas"`
		} `json:"options"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeErrors(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
		return
	}
	if body.Data == nil {
		writeErrors(w, http.StatusBadRequest, "no data provided")
		return
	}
	n, err := s.put(key, body.Data, body.Options.CAS)
	if err != nil {
		writeErrors(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, envelope(s.kv[key].versions[n].metadata(n), nil))
}

// put stores a new version; cas, if not nil, must be the current version.
func (s *Server) put(key string, data map[string]json.RawMessage, cas *int) (int, error) {
	now := s.o.Now()
	sec, ok := s.kv[key]
	if !ok {
		sec = &secret{versions: map[int]*version{}, created: now}
	}
	if cas != nil && *cas != sec.current {
		return 0, fmt.Errorf("check-and-set parameter did not match the current version")
	}
	sec.current++
	sec.updated = now
	sec.versions[sec.current] = &version{data: data, created: now}
	s.kv[key] = sec
	return sec.current, nil
}

func (s *Server) deleteLatest(w http.ResponseWriter, key string) {
	if sec, ok := s.kv[key]; ok {
		if v := sec.versions[sec.current]; v != nil && v.deleted.IsZero() {
			v.deleted = s.o.Now()
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) readMetadata(w http.ResponseWriter, key string) {
	sec, ok := s.kv[key]
	if !ok {
		writeErrors(w, http.StatusNotFound)
		return
	}
	versions := map[string]any{}
	oldest := sec.current
	for n, v := range sec.versions {
		md := v.metadata(n)
		delete(md, "version")
		delete(md, "custom_metadata")
		versions[strconv.Itoa(n)] = md
		oldest = min(oldest, n)
	}
	writeJSON(w, http.StatusOK, envelope(map[string]any{
		"cas_required":         false,
		"created_time":         timeString(sec.created),
		"current_version":      sec.current,
		"custom_metadata":      nil,
		"delete_version_after": "0s",
		"max_versions":         0,
		"oldest_version":       oldest,
		"updated_time":         timeString(sec.updated),
		"versions":             versions,
	}, nil))
}

// list answers the keys directly under folder, sub-folders ending in "/";
// like Vault, an empty folder is a 404.
func (s *Server) list(w http.ResponseWriter, folder string) {
	prefix := ""
	if folder != "" {
		prefix = folder + "/"
	}
	keys := map[string]bool{}
	for key := range s.kv {
		rest, ok := strings.CutPrefix(key, prefix)
		if !ok || rest == "" {
			continue
		}
		if first, _, nested := strings.Cut(rest, "/"); nested {
			keys[first+"/"] = true
		} else {
			keys[rest] = true
		}
	}
	if len(keys) == 0 {
		writeErrors(w, http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, envelope(map[string]any{"keys": slices.Sorted(maps.Keys(keys))}, nil))
}

// Put writes fields as a new version of the secret at path (below the
// mount, e.g. "edgegate/trust/root-a") and returns the version.
func (s *Server) Put(path string, fields map[string]string) int {
	data := make(map[string]json.RawMessage, len(fields))
	for k, v := range fields {
		data[k], _ = json.Marshal(v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.put(strings.Trim(path, "/"), data, nil)
	if err != nil {
		s.t.Fatalf("vaulttest: put %s: %v", path, err)
	}
	return n
}

// Get returns the fields of the current version of the secret at path and
// that version; nil and 0 if there is none (or it is deleted). Values that
// are not strings are returned as their JSON.
func (s *Server) Get(path string) (map[string]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.kv[strings.Trim(path, "/")]
	if !ok {
		return nil, 0
	}
	v := sec.versions[sec.current]
	if v == nil || !v.deleted.IsZero() || v.destroyed {
		return nil, 0
	}
	out := make(map[string]string, len(v.data))
	for k, raw := range v.data {
		var str string
		if json.Unmarshal(raw, &str) == nil {
			out[k] = str
		} else {
			out[k] = string(raw)
		}
	}
	return out, sec.current
}

// Delete removes the secret at path with all its versions and metadata, as
// `vault kv metadata delete` does.
func (s *Server) Delete(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.kv, strings.Trim(path, "/"))
}

// SoftDelete deletes the current version of the secret at path, as
// `vault kv delete` does: its metadata stays, reads of it get 404.
func (s *Server) SoftDelete(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sec, ok := s.kv[strings.Trim(path, "/")]; ok {
		if v := sec.versions[sec.current]; v != nil {
			v.deleted = s.o.Now()
		}
	}
}
