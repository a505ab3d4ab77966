package vault

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The bodies in testdata/ are the sample responses of the Vault API docs
// (testdata/SOURCES.md says which); the client's parsers must read them.

func readTestdata(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// api-docs/secret/kv/kv-v2 "List Secrets".
func TestContractList(t *testing.T) {
	var resp listResponse
	readTestdata(t, "kv2_list.json", &resp)
	keys, err := parseList(resp)
	if err != nil || !slices.Equal(keys, []string{"foo", "foo/"}) {
		t.Errorf("parseList = %v, %v", keys, err)
	}
}

// api-docs/secret/kv/kv-v2 "Read Secret Metadata".
func TestContractMetadata(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var resp metadataResponse
	readTestdata(t, "kv2_metadata.json", &resp)
	if v, err := parseMetadata(resp, now); err != nil || v != 3 {
		t.Errorf("parseMetadata = %d, %v; want 3", v, err)
	}
	readTestdata(t, "kv2_metadata_deleted.json", &resp)
	if v, err := parseMetadata(resp, now); err != nil || v != 0 {
		t.Errorf("parseMetadata of a soft-deleted current version = %d, %v; want 0", v, err)
	}
	// A deletion_time still to come (delete_version_after) is not a deletion yet.
	if v, err := parseMetadata(resp, time.Date(2018, 3, 23, 9, 0, 0, 0, time.UTC)); err != nil || v != 2 {
		t.Errorf("parseMetadata before the deletion time = %d, %v; want 2", v, err)
	}
}

// api-docs/secret/kv/kv-v2 "Read Secret Version".
func TestContractRead(t *testing.T) {
	var resp readResponse
	readTestdata(t, "kv2_read.json", &resp)
	s, err := parseRead(resp, Ref{List: TrustList, Name: "my-secret", Version: 2}, "foo")
	if err != nil || string(s.Data) != "bar" || s.Version != 2 {
		t.Errorf("parseRead = %+v, %v", s, err)
	}
	if _, err := parseRead(resp, Ref{List: TrustList, Name: "my-secret", Version: 1}, "foo"); !errors.Is(err, ErrBadResponse) {
		t.Errorf("parseRead of another version than asked: %v, want ErrBadResponse", err)
	}
	if _, err := parseRead(resp, Ref{List: TrustList, Name: "my-secret"}, "certificate"); !errors.Is(err, ErrBadResponse) {
		t.Errorf("parseRead of a missing field: %v, want ErrBadResponse", err)
	}
}

// api-docs/secret/kv/kv-v2 "Create/Update Secret".
func TestContractWrite(t *testing.T) {
	var resp writeResponse
	readTestdata(t, "kv2_write.json", &resp)
	if v, err := parseWrite(resp); err != nil || v != 1 {
		t.Errorf("parseWrite = %d, %v", v, err)
	}
}

// api-docs/auth/approle "Login with AppRole" and api-docs/auth/cert "Login
// with TLS certificate method".
func TestContractLogin(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for file, want := range map[string]token{
		"approle_login.json": {value: "5b1a0318-679c-9c45-e5c6-d1b9a9035d49", refreshAt: now.Add(15 * time.Minute)},
		"cert_login.json":    {value: "cf95f87d-f95b-47ff-b1f5-ba7bff850425", refreshAt: now.Add(45 * time.Minute)},
	} {
		var resp loginResponse
		readTestdata(t, file, &resp)
		if tok, err := parseLogin(resp, now); err != nil || tok != want {
			t.Errorf("%s: parseLogin = %+v, %v; want %+v", file, tok, err, want)
		}
	}
}

// The documented error format, {"errors": [...]}.
func TestContractErrors(t *testing.T) {
	for file, want := range map[string][]string{
		"error_permission_denied.json": {"permission denied"},
		"error_sealed.json":            {"Vault is sealed"},
		"error_not_found.json":         {},
	} {
		data, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		if got := errorMessages(data); !slices.Equal(got, want) {
			t.Errorf("%s: errorMessages = %q, want %q", file, got, want)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	s := NewSyncer(SyncerOptions{Interval: 5 * time.Minute, MaxBackoff: 30 * time.Minute, Jitter: 0.1})
	fail := errors.New("down")
	for _, tc := range []struct {
		err      error
		failures int
		want     time.Duration
	}{
		{nil, 0, 5 * time.Minute},
		{fail, 1, 30 * time.Second},
		{fail, 2, time.Minute},
		{fail, 3, 2 * time.Minute},
		{fail, 6, 16 * time.Minute},
		{fail, 7, 30 * time.Minute},
		{fail, 1000, 30 * time.Minute},
	} {
		for _, r := range []float64{0, 0.5, 0.999999} {
			got := s.delay(tc.err, tc.failures, r)
			lo, hi := time.Duration(float64(tc.want)*0.9), time.Duration(float64(tc.want)*1.1)
			if got < lo || got > hi {
				t.Errorf("delay(%v, %d, %v) = %v, want within [%v, %v]", tc.err, tc.failures, r, got, lo, hi)
			}
		}
		if got := s.delay(tc.err, tc.failures, 0.5); got != tc.want {
			t.Errorf("delay(%v, %d) without jitter = %v, want %v", tc.err, tc.failures, got, tc.want)
		}
	}
	// A short interval still backs off at least 5s.
	short := NewSyncer(SyncerOptions{Interval: 10 * time.Second})
	if got := short.delay(fail, 1, 0.5); got != 5*time.Second {
		t.Errorf("first back-off with a 10s interval = %v, want 5s", got)
	}
}

// FuzzParseResponses feeds any body to every response parser: none may
// panic, and a body they accept must give a usable value.
func FuzzParseResponses(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"data":{"keys":null,"current_version":-1,"data":{"certificate":7}}}`))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		var l listResponse
		if json.Unmarshal(body, &l) == nil {
			if keys, err := parseList(l); err == nil && len(keys) > maxListKeys {
				t.Errorf("parseList accepted %d keys", len(keys))
			}
		}
		var m metadataResponse
		if json.Unmarshal(body, &m) == nil {
			if v, err := parseMetadata(m, now); err == nil && v < 0 {
				t.Errorf("parseMetadata = %d", v)
			}
		}
		var r readResponse
		if json.Unmarshal(body, &r) == nil {
			if s, err := parseRead(r, Ref{List: TrustList, Name: "x"}, DefaultField); err == nil && s.Data == nil {
				t.Error("parseRead accepted a secret with nil data")
			}
			_, _ = parseStatus(r, "gw")
		}
		var w writeResponse
		if json.Unmarshal(body, &w) == nil {
			if v, err := parseWrite(w); err == nil && v <= 0 {
				t.Errorf("parseWrite = %d", v)
			}
		}
		var lg loginResponse
		if json.Unmarshal(body, &lg) == nil {
			if tok, err := parseLogin(lg, now); err == nil && tok.value == "" {
				t.Error("parseLogin accepted an empty token")
			}
		}
		_ = errorMessages(body)
	})
}
