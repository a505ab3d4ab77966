package vaulttest_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/certs/vault/vaulttest"
)

// The fake answers with (at least) the keys of the documented sample
// responses in ../testdata, so a client tested against it reads a real vault.
func TestResponsesHaveDocumentedShape(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{})
	srv.Put("p/foo", map[string]string{"foo": "bar"})
	srv.Put("p/foo", map[string]string{"foo": "baz"})
	srv.Put("p/foo/bar", map[string]string{"x": "y"})
	roleID, secretID := srv.AppRole()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CAPool()}}}
	t.Cleanup(client.CloseIdleConnections)

	for _, tc := range []struct {
		method, path, body, doc string
		status                  int
	}{
		{"LIST", "/v1/secret/metadata/p", "", "kv2_list.json", 200},
		{"GET", "/v1/secret/metadata/p/?list=true", "", "kv2_list.json", 200},
		{"GET", "/v1/secret/metadata/p/foo", "", "kv2_metadata.json", 200},
		{"GET", "/v1/secret/data/p/foo?version=2", "", "kv2_read.json", 200},
		{"POST", "/v1/secret/data/p/new", `{"data":{"a":"b"},"options":{"cas":0}}`, "kv2_write.json", 200},
		{"POST", "/v1/auth/approle/login", `{"role_id":"` + roleID + `","secret_id":"` + secretID + `"}`, "approle_login.json", 200},
		{"GET", "/v1/secret/metadata/nothing?list=true", "", "error_not_found.json", 404},
		{"GET", "/v1/secret/data/p/foo?version=9", "", "error_not_found.json", 404},
		{"POST", "/v1/secret/data/p/foo", `{"data":{"a":"b"},"options":{"cas":1}}`, "", 400}, // cas mismatch
		{"GET", "/v1/secret/data/p/foo", "", "error_permission_denied.json", 403},            // no token
	} {
		req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL()+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.status != 403 {
			req.Header.Set("X-Vault-Token", srv.RootToken())
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d: %s", tc.method, tc.path, resp.StatusCode, tc.status, got)
			continue
		}
		if tc.doc == "" {
			continue
		}
		want, err := os.ReadFile(filepath.Join("..", "testdata", tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		if missing := missingKeys(t, want, got, ""); len(missing) > 0 {
			t.Errorf("%s %s: answer lacks documented keys %v:\n%s", tc.method, tc.path, missing, got)
		}
	}
}

// missingKeys lists the object keys of want, recursively, absent from got;
// maps keyed by content (a secret's fields, version numbers, custom or auth
// metadata) are compared as present, not key by key.
func missingKeys(t *testing.T, want, got []byte, at string) []string {
	t.Helper()
	var w, g map[string]json.RawMessage
	if json.Unmarshal(want, &w) != nil {
		return nil // not an object: nothing to compare
	}
	if err := json.Unmarshal(got, &g); err != nil {
		return []string{at + " (not an object)"}
	}
	var missing []string
	for k, wv := range w {
		path := strings.TrimPrefix(at+"."+k, ".")
		gv, ok := g[k]
		switch {
		case !ok:
			missing = append(missing, path)
		case contentKeyed[path]:
		default:
			missing = append(missing, missingKeys(t, wv, gv, path)...)
		}
	}
	return missing
}

var contentKeyed = map[string]bool{
	"data.data": true, "data.versions": true, "data.custom_metadata": true,
	"data.metadata.custom_metadata": true, "auth.metadata": true,
}

func TestStopStartSameAddress(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CAPool()}}}
	t.Cleanup(client.CloseIdleConnections)
	get := func() error {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL()+"/v1/auth/token/lookup-self", nil)
		req.Header.Set("X-Vault-Token", srv.RootToken())
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	url := srv.URL()
	if err := get(); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := get(); err == nil {
		t.Fatal("request to a stopped vault succeeded")
	}
	srv.Start()
	if srv.URL() != url {
		t.Fatalf("restarted at %s, was %s", srv.URL(), url)
	}
	if err := get(); err != nil {
		t.Fatalf("request after Start: %v", err)
	}
	if n := srv.Counts().TokenLookups; n != 2 {
		t.Errorf("%d lookups counted, want 2", n)
	}
}
