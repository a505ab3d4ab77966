package cli

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/certs/bundle"
	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/certs/keyseal"
	"github.com/edgegate/edgegate/certs/tlsconf"
	"github.com/edgegate/edgegate/gateway/api"
	"github.com/edgegate/edgegate/gateway/store"
)

// certEnv is a stand-in daemon for the certificate commands: the real API
// (LocalHandler) with the real certificate manager and local CA on the
// data directory's database, served on <data>/edgegate.sock.
type certEnv struct {
	dataDir string
	certs   *certs.Manager
	ca      *ca.Authority
}

func startCertDaemon(t *testing.T) *certEnv {
	t.Helper()
	dataDir := newDataDir(t)
	st, err := store.Open(dataDir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, err := keyseal.New(bytes.Repeat([]byte{7}, keyseal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	local, err := ca.Open(st.DB(), ca.Options{DeviceName: "cli-test", Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	m, err := certs.Open(certs.Options{
		DB: st.DB(), Sealer: sealer, CA: local, TLS: tlsconf.NewManager(), ServerNames: []string{"localhost"},
		ServerValidity: ca.ServerValidity,
	})
	if err != nil {
		t.Fatal(err)
	}
	serveAPI(t, dataDir, api.New(api.Options{Certificates: m, Authority: local}))
	return &certEnv{dataDir: dataDir, certs: m, ca: local}
}

func runCertCmd(t *testing.T, dataDir, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Cert(t.Context(), "cert", dataDir, args, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func runCACmd(t *testing.T, dataDir string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Cert(t.Context(), "ca", dataDir, args, strings.NewReader(""), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// tableRow returns the fields of the line of a table whose first column is id.
func tableRow(t *testing.T, table, id string) []string {
	t.Helper()
	for line := range strings.SplitSeq(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == id {
			return f
		}
	}
	t.Fatalf("no row %q in\n%s", id, table)
	return nil
}

func fileMode(t *testing.T, name string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestCertIssueListShow(t *testing.T) {
	t.Parallel()
	e := startCertDaemon(t)

	mustRun(t, runCertCmd(t, e.dataDir, "", "issue", "web", "--server", "--host", "gw.local", "--host", "192.0.2.1",
		"--subject", "CN=gw.local,O=Acme", "--auto-renew"), 0, `issued certificate "web" for CN=gw.local,O=Acme`)
	mustRun(t, runCertCmd(t, e.dataDir, "", "issue", "sensor-1", "--client", "--subject", "CN=sensor-1",
		"--key-type", "rsa-2048", "--validity", "20d"), 0, `issued certificate "sensor-1"`)
	mustRun(t, runCertCmd(t, e.dataDir, "", "issue", "web", "--server", "--host", "x"), 1, `"web" is taken`)
	mustRun(t, runCertCmd(t, e.dataDir, "", "issue", "bad", "--server", "--host", "a b"), 1, "a b")
	mustRun(t, runCertCmd(t, e.dataDir, "", "issue", "k", "--client", "--subject", "CN=k", "--key-type", "dsa"), 1, "unknown key type")
	web, err := e.certs.Get("web")
	if err != nil || !web.AutoRenew || web.KeyType != "ecdsa-p256" || strings.Join(web.SANs, " ") != "gw.local 192.0.2.1" {
		t.Fatalf("web: %+v, %v", web, err)
	}
	// NotBefore is backdated a little for clock skew.
	if s, _ := e.certs.Get("sensor-1"); s.KeyType != "rsa-2048" || time.Until(time.UnixMilli(s.To)).Round(time.Hour) != 20*24*time.Hour {
		t.Fatalf("sensor-1: key %s, valid until %v", s.KeyType, time.UnixMilli(s.To))
	}

	r := runCertCmd(t, e.dataDir, "", "list")
	mustRun(t, r, 0, "ID")
	if head := strings.Fields(strings.SplitN(r.stdout, "\n", 2)[0]); strings.Join(head, " ") != "ID SUBJECT EXPIRES STATUS USAGE" {
		t.Fatalf("header %q", head)
	}
	row := tableRow(t, r.stdout, "web")
	if row[1] != "CN=gw.local,O=Acme" || row[2] != time.UnixMilli(web.To).UTC().Format(time.DateOnly) || row[3] != "valid" || row[4] != "-" {
		t.Fatalf("web row %q", row)
	}
	if row := tableRow(t, r.stdout, "sensor-1"); row[3] != "expiring" {
		t.Fatalf("sensor-1 row %q; want expiring (20 days left)", row)
	}
	if row := tableRow(t, r.stdout, certs.ServerCertificateID); row[4] != "server" {
		t.Fatalf("serving certificate row %q; want usage server", row)
	}

	r = runCertCmd(t, e.dataDir, "", "list", "--json")
	var list []certs.Certificate
	if err := json.Unmarshal([]byte(r.stdout), &list); r.code != 0 || err != nil || len(list) != 3 {
		t.Fatalf("list --json: exit %d, %v, %d entries:\n%s", r.code, err, len(list), r.stdout)
	}

	r = runCertCmd(t, e.dataDir, "", "show", "web")
	for _, want := range []string{"ID:", "web", "Subject:", "CN=gw.local,O=Acme", "SANs:", "gw.local, 192.0.2.1",
		"ecdsa-p256, private key held by the gateway", web.SHA256, "Status:", "valid", "Auto-renew:", "yes", "Source:", "local"} {
		mustRun(t, r, 0, want)
	}
	mustRun(t, runCertCmd(t, e.dataDir, "", "show", "sensor-1"), 0, "expiring in 19 days")
	r = runCertCmd(t, e.dataDir, "", "show", "--json", "web")
	var one certs.Certificate
	if err := json.Unmarshal([]byte(r.stdout), &one); r.code != 0 || err != nil || one.SHA256 != web.SHA256 {
		t.Fatalf("show --json: exit %d, %v:\n%s", r.code, err, r.stdout)
	}
	mustRun(t, runCertCmd(t, e.dataDir, "", "show", "nope"), 1, "nope")
}

func TestCertExportImport(t *testing.T) {
	t.Parallel()
	e := startCertDaemon(t)
	dir := t.TempDir()
	mustRun(t, runCertCmd(t, e.dataDir, "", "issue", "s1", "--client", "--subject", "CN=s1"), 0, "issued")
	s1, err := e.certs.Get("s1")
	if err != nil {
		t.Fatal(err)
	}

	// PEM to standard output: chain, then key.
	r := runCertCmd(t, e.dataDir, "", "export", "s1")
	mustRun(t, r, 0, "-----BEGIN PRIVATE KEY-----")
	if !strings.HasPrefix(r.stdout, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("export to stdout:\n%s", r.stdout)
	}

	// PEM to one file, mode 0600, never replaced without --force.
	both := filepath.Join(dir, "s1.pem")
	mustRun(t, runCertCmd(t, e.dataDir, "", "export", "s1", "--out", both), 0, "exported \"s1\" with its private key to "+both)
	if m := fileMode(t, both); m != 0o600 {
		t.Fatalf("%s has mode %v; want 0600", both, m)
	}
	if bd, err := os.ReadFile(both); err != nil || !bytes.Contains(bd, []byte("PRIVATE KEY")) {
		t.Fatalf("%s: %v", both, err)
	}
	mustRun(t, runCertCmd(t, e.dataDir, "", "export", "s1", "--out", both), 1, "exists; give --force")
	// --force replaces a file readable by others with a 0600 one.
	if err := os.Chmod(both, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, runCertCmd(t, e.dataDir, "", "export", "s1", "--out", both, "--force"), 0, "exported")
	if m := fileMode(t, both); m != 0o600 {
		t.Fatalf("%s has mode %v after --force; want 0600", both, m)
	}

	// Chain and key apart: the key file 0600.
	chain, key := filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem")
	mustRun(t, runCertCmd(t, e.dataDir, "", "export", "s1", "--out", chain, "--key-out", key), 0, "private key to "+key)
	if m := fileMode(t, key); m != 0o600 {
		t.Fatalf("%s has mode %v; want 0600", key, m)
	}
	if m := fileMode(t, chain); m != 0o644 && m != 0o600 {
		t.Fatalf("%s has mode %v", chain, m)
	}
	if c, _ := os.ReadFile(chain); bytes.Contains(c, []byte("PRIVATE KEY")) {
		t.Fatal("the chain file holds the key")
	}

	// Import them back under new ids: one file, two files.
	mustRun(t, runCertCmd(t, e.dataDir, "", "import", both, "--id", "copy1"), 0, `imported certificate "copy1" for CN=s1 with its private key`)
	mustRun(t, runCertCmd(t, e.dataDir, "", "import", chain, key, "--id", "copy2", "--name", "Copy"), 0, `imported certificate "copy2"`)
	mustRun(t, runCertCmd(t, e.dataDir, "", "import", chain, "--id", "trust"), 0, "without a private key")
	for _, id := range []string{"copy1", "copy2"} {
		if c, err := e.certs.Get(id); err != nil || c.SHA256 != s1.SHA256 || !c.HasKey {
			t.Fatalf("%s: %+v, %v", id, c, err)
		}
	}
	if c, _ := e.certs.Get("copy2"); c.Name != "Copy" {
		t.Fatalf("copy2 name %q", c.Name)
	}

	// An encrypted key: the password comes from stdin's first line.
	keyPEM, _ := os.ReadFile(key)
	block, _ := pem.Decode(keyPEM)
	//nolint:staticcheck // SA1019: legacy PEM encryption is what old tools write; the import reads it.
	enc, err := x509.EncryptPEMBlock(rand.Reader, block.Type, block.Bytes, []byte("key-pw"), x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	encKey := filepath.Join(dir, "enc.key")
	if err := os.WriteFile(encKey, pem.EncodeToMemory(enc), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, runCertCmd(t, e.dataDir, "", "import", chain, encKey, "--id", "enc"), 1, "no password on stdin")
	mustRun(t, runCertCmd(t, e.dataDir, "wrong\n", "import", chain, encKey, "--id", "enc"), 1, "wrong or missing password")
	mustRun(t, runCertCmd(t, e.dataDir, "key-pw\n", "import", chain, encKey, "--id", "enc"), 0, `imported certificate "enc"`)

	// PKCS#12 with a generated password, printed once, and imported back.
	p12 := filepath.Join(dir, "s1.p12")
	r = runCertCmd(t, e.dataDir, "", "export", "s1", "--out", p12)
	mustRun(t, r, 0, "(PKCS#12)")
	if m := fileMode(t, p12); m != 0o600 {
		t.Fatalf("%s has mode %v; want 0600", p12, m)
	}
	_, generated, ok := strings.Cut(r.stdout, "PKCS#12 password (shown once, stored nowhere): ")
	generated = strings.TrimSpace(generated)
	if !ok || generated == "" {
		t.Fatalf("no generated password in %q", r.stdout)
	}
	der, _ := os.ReadFile(p12)
	if _, err := bundle.ParsePKCS12(der, generated); err != nil {
		t.Fatalf("the p12 does not open with the printed password: %v", err)
	}
	mustRun(t, runCertCmd(t, e.dataDir, "nope\n", "import", p12, "--id", "p1"), 1, "password")
	mustRun(t, runCertCmd(t, e.dataDir, generated+"\n", "import", p12, "--id", "p1"), 0, `imported certificate "p1"`)

	// A chosen password, from stdin, in the legacy encoding.
	legacy := filepath.Join(dir, "legacy.pfx")
	r = runCertCmd(t, e.dataDir, "my-p12-pw\n", "export", "s1", "--out", legacy, "--password-stdin", "--legacy")
	mustRun(t, r, 0, "(PKCS#12)")
	if strings.Contains(r.stdout+r.stderr, "my-p12-pw") || strings.Contains(r.stdout, "shown once") {
		t.Fatalf("a chosen password was printed: %q", r.stdout+r.stderr)
	}
	mustRun(t, runCertCmd(t, e.dataDir, "", "import", legacy, "--id", "p2", "--password", "my-p12-pw"), 0, `imported certificate "p2"`)
	if c, err := e.certs.Get("p2"); err != nil || c.SHA256 != s1.SHA256 || !c.HasKey {
		t.Fatalf("p2: %+v, %v", c, err)
	}

	// A trust-only certificate has no key to export; nothing is written.
	none := filepath.Join(dir, "none.pem")
	mustRun(t, runCertCmd(t, e.dataDir, "", "export", "trust", "--out", none), 1, "no private key")
	if _, err := os.Stat(none); !os.IsNotExist(err) {
		t.Fatalf("a failed export left %s: %v", none, err)
	}
}

func TestCertRenewRevoke(t *testing.T) {
	t.Parallel()
	e := startCertDaemon(t)
	mustRun(t, runCertCmd(t, e.dataDir, "", "issue", "s1", "--client", "--subject", "CN=s1", "--auto-renew"), 0, "issued")
	before, _ := e.certs.Get("s1")

	mustRun(t, runCertCmd(t, e.dataDir, "", "renew", "s1"), 0, `renewed certificate "s1"`)
	if after, _ := e.certs.Get("s1"); after.Serial == before.Serial {
		t.Fatal("renew did not replace the certificate")
	}
	mustRun(t, runCertCmd(t, e.dataDir, "", "renew", "--all"), 0, "no certificate was due for renewal")
	mustRun(t, runCertCmd(t, e.dataDir, "", "renew", "nope"), 1, "nope")

	mustRun(t, runCertCmd(t, e.dataDir, "", "revoke", "s1", "--reason", "bored"), 1, "unknown revocation reason")
	mustRun(t, runCertCmd(t, e.dataDir, "", "revoke", "s1", "--reason", "keyCompromise"), 0, `revoked certificate "s1"`)
	if c, _ := e.certs.Get("s1"); !c.Revoked || c.RevocationReason != "keyCompromise" {
		t.Fatalf("after revoke: %+v", c)
	}
	if row := tableRow(t, runCertCmd(t, e.dataDir, "", "list").stdout, "s1"); row[3] != "revoked" {
		t.Fatalf("s1 row %q", row)
	}
	mustRun(t, runCertCmd(t, e.dataDir, "", "show", "s1"), 0, "revoked (keyCompromise, ")

	mustRun(t, runCertCmd(t, e.dataDir, "", "issue", "s2", "--client", "--subject", "CN=s2"), 0, "issued")
	mustRun(t, runCertCmd(t, e.dataDir, "", "revoke", "s2"), 0, "reason unspecified")
}

func TestCA(t *testing.T) {
	t.Parallel()
	e := startCertDaemon(t)
	oldRoot := e.ca.RootFingerprint()

	r := runCACmd(t, e.dataDir, "show")
	mustRun(t, r, 0, "Root SHA-256:  "+oldRoot)
	mustRun(t, r, 0, "Trust bundle:  1 root")
	if row := tableRow(t, r.stdout, e.ca.Issuer().ID); row[1] != "local" || row[2] != "yes" {
		t.Fatalf("issuer row %q", row)
	}
	r = runCACmd(t, e.dataDir, "show", "--pem")
	if r.code != 0 || r.stdout != string(e.ca.TrustBundlePEM()) {
		t.Fatalf("show --pem: exit %d, %q", r.code, r.stdout)
	}
	r = runCACmd(t, e.dataDir, "show", "--json")
	var v caView
	if err := json.Unmarshal([]byte(r.stdout), &v); r.code != 0 || err != nil || v.RootFingerprint != oldRoot {
		t.Fatalf("show --json: exit %d, %v:\n%s", r.code, err, r.stdout)
	}

	mustRun(t, runCACmd(t, e.dataDir, "rotate", "--key-type", "dsa"), 1, "unknown key type")
	r = runCACmd(t, e.dataDir, "rotate", "--key-type", "ecdsa-p384")
	mustRun(t, r, 0, "root rotation started")
	newRoot := e.ca.RootFingerprint()
	if newRoot == oldRoot || !strings.Contains(r.stdout, newRoot) || e.ca.Root().PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("rotate: root %s → %s, output %q", oldRoot, newRoot, r.stdout)
	}
	mustRun(t, runCACmd(t, e.dataDir, "show"), 0, "2 roots: a root rotation is in progress")
	mustRun(t, runCACmd(t, e.dataDir, "rotate"), 1, "rotation")
	mustRun(t, runCACmd(t, e.dataDir, "rotate", "--finish"), 0, "only root SHA-256 "+newRoot+" is trusted now")
	if n := strings.Count(string(e.ca.TrustBundlePEM()), "BEGIN CERTIFICATE"); n != 1 {
		t.Fatalf("trust bundle after finishing holds %d roots", n)
	}
	mustRun(t, runCACmd(t, e.dataDir, "show"), 0, "Trust bundle:  1 root")
}

func TestCertUsageAndDaemonDown(t *testing.T) {
	t.Parallel()
	dataDir := newDataDir(t)
	existing := filepath.Join(dataDir, "existing.pem")
	if err := os.WriteFile(existing, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: edgegate cert"},
		{[]string{"bogus"}, 2, "unknown verb"},
		{[]string{"help"}, 0, "usage: edgegate cert"},
		{[]string{"list", "x"}, 2, "takes no arguments"},
		{[]string{"list", "--nope"}, 2, "flag provided but not defined"},
		{[]string{"show"}, 2, "exactly one ID"},
		{[]string{"issue", "a", "b", "--server"}, 2, "at most one ID"},
		{[]string{"issue", "a", "--host", "h"}, 2, "--server, --client and/or --ca"},
		{[]string{"issue", "a", "--server"}, 2, "--subject or at least one --host"},
		{[]string{"issue", "a", "--server", "--host", "h", "--validity", "soon"}, 2, "--validity"},
		{[]string{"import"}, 2, "takes a FILE"},
		{[]string{"import", "a", "b", "c"}, 2, "takes a FILE"},
		{[]string{"import", "a", "--password", "x", "--password-stdin"}, 2, "not both"},
		{[]string{"import", filepath.Join(dataDir, "missing.pem")}, 1, "no such file"},
		{[]string{"export"}, 2, "exactly one ID"},
		{[]string{"export", "a", "--format", "der"}, 2, "pem or p12"},
		{[]string{"export", "a", "--format", "p12"}, 2, "needs --out"},
		{[]string{"export", "a", "--password", "x"}, 2, "go with --format p12"},
		{[]string{"export", "a", "--key-out", "k"}, 2, "goes with --out"},
		{[]string{"export", "a", "--out", "k", "--key-out", "./k"}, 2, "same file"},
		{[]string{"export", "a", "--out", "a.p12", "--key-out", "k"}, 2, "goes with --format pem"},
		{[]string{"export", "a", "--out", existing}, 1, "exists; give --force"},
		{[]string{"renew"}, 2, "one ID or --all"},
		{[]string{"renew", "a", "--all"}, 2, "one ID or --all"},
		{[]string{"revoke"}, 2, "exactly one ID"},
		{[]string{"list"}, 1, "edgegate is not running"},
		{[]string{"show", "a"}, 1, "edgegate is not running"},
		{[]string{"issue", "a", "--client", "--subject", "CN=a"}, 1, "edgegate is not running"},
		{[]string{"import", existing, "--id", "a"}, 1, "edgegate is not running"},
		{[]string{"export", "a"}, 1, "edgegate is not running"},
		{[]string{"renew", "--all"}, 1, "edgegate is not running"},
		{[]string{"revoke", "a"}, 1, "edgegate is not running"},
	} {
		r := runCertCmd(t, dataDir, "", tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("cert %q: exit %d, stderr %q; want exit %d with %q", tt.args, r.code, r.stderr, tt.code, tt.want)
		}
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: edgegate ca"},
		{[]string{"bogus"}, 2, "unknown verb"},
		{[]string{"show", "--pem", "--json"}, 2, "not both"},
		{[]string{"show", "x"}, 2, "takes no arguments"},
		{[]string{"rotate", "--finish", "--key-type", "rsa-2048"}, 2, "not with --finish"},
		{[]string{"--help"}, 0, "usage: edgegate ca"},
		{[]string{"show"}, 1, "edgegate is not running"},
		{[]string{"rotate"}, 1, "edgegate is not running"},
		{[]string{"rotate", "--finish"}, 1, "edgegate is not running"},
	} {
		r := runCACmd(t, dataDir, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("ca %q: exit %d, stderr %q; want exit %d with %q", tt.args, r.code, r.stderr, tt.code, tt.want)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "-----BEGIN CERTIFICATE-----\n" {
		t.Fatalf("an export without --force changed %s", existing)
	}
	if _, err := os.Stat(filepath.Join(dataDir, store.FileName)); !os.IsNotExist(err) {
		t.Fatalf("the certificate commands touched the database: %v", err)
	}
}

func TestCertStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	day := 24 * time.Hour
	for _, tt := range []struct {
		name string
		c    certs.Certificate
		want string
	}{
		{"valid", certs.Certificate{Valid: true, From: ms(-day), To: ms(90 * day)}, "valid"},
		{"just over 30 days", certs.Certificate{Valid: true, To: ms(30*day + time.Minute)}, "valid"},
		{"expiring", certs.Certificate{Valid: true, To: ms(30*day - time.Minute)}, "expiring"},
		{"expired", certs.Certificate{InvalidReason: "expired", To: ms(-time.Second)}, "expired"},
		{"expires now", certs.Certificate{Valid: true, To: ms(0)}, "expired"},
		{"revoked", certs.Certificate{Revoked: true, To: ms(90 * day)}, "revoked"},
		{"revoked and expired", certs.Certificate{Revoked: true, To: ms(-day)}, "revoked"},
		{"broken chain", certs.Certificate{InvalidReason: "chain certificate 2 expired", To: ms(90 * day)}, "invalid"},
	} {
		if got := certStatus(tt.c, now); got != tt.want {
			t.Errorf("%s: certStatus = %q; want %q", tt.name, got, tt.want)
		}
	}
}

func TestParseValidity(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"720h", 720 * time.Hour, true},
		{"90d", 90 * 24 * time.Hour, true},
		{"1h30m", 90 * time.Minute, true},
		{"0d", 0, false},
		{"-1h", 0, false},
		{"d", 0, false},
		{"1.5d", 0, false},
		{"99999999d", 0, false},
		{"soon", 0, false},
	} {
		got, err := parseValidity(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseValidity(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseValidity(f *testing.F) {
	for _, s := range []string{"720h", "90d", "0d", "-1h", "1.5d", "99999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := parseValidity(s); err == nil && d <= 0 {
			t.Fatalf("parseValidity(%q) = %v without an error", s, d)
		}
	})
}
