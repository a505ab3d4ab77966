package gateway

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadCredentials(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "dns.env")
	if err := os.WriteFile(good, []byte("# Cloudflare\nCLOUDFLARE_DNS_API_TOKEN = s3cret=with=equals\n\nCLOUDFLARE_TTL=300\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readCredentials(good)
	want := map[string]string{"CLOUDFLARE_DNS_API_TOKEN": "s3cret=with=equals", "CLOUDFLARE_TTL": "300"}
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("readCredentials = %v, %v; want %v", got, err, want)
	}

	bad := filepath.Join(dir, "bad.env")
	if err := os.WriteFile(bad, []byte("TOKEN=a\nthe-secret-itself\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = readCredentials(bad)
	if err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "the-secret-itself") {
		t.Fatalf("malformed file: error %v; want line 2 named and the line's text kept out", err)
	}
	if _, err := readCredentials(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file accepted")
	}
}
