package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegate/edgegate/certs/trust"
	"github.com/edgegate/edgegate/certs/trustsync"
	"github.com/edgegate/edgegate/certs/vault"
	"github.com/edgegate/edgegate/gateway/api"
	"github.com/edgegate/edgegate/gateway/store"
)

// testTrust is the daemon's trust service for the tests: the real trust
// store on the data directory's database, with the vault side (status,
// sync, secrets, fleet) played from memory.
type testTrust struct {
	*trust.Store

	mu      sync.Mutex
	status  trustsync.Status
	secrets []trust.Remote
	fleet   []vault.DeviceStatus
	syncErr error
}

func (f *testTrust) Status() trustsync.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *testTrust) SyncNow(context.Context) (vault.SyncResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.syncErr != nil {
		f.status.Errors++
		f.status.LastError = f.syncErr.Error()
		return vault.SyncResult{}, f.syncErr
	}
	if _, _, err := f.StageSync(f.secrets, "sync"); err != nil {
		return vault.SyncResult{}, err
	}
	res := vault.SyncResult{Listed: len(f.secrets), Fetched: len(f.secrets), Duration: 1500 * time.Millisecond}
	f.status.Syncs++
	f.status.LastSuccess = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.status.LastResult = res
	return res, nil
}

func (f *testTrust) VaultSecrets(context.Context) ([]vault.Ref, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var refs []vault.Ref
	for _, s := range f.secrets {
		refs = append(refs, vault.Ref{List: string(s.List), Name: s.Name, Version: s.Version})
	}
	return refs, nil
}

func (f *testTrust) AddFromVault(_ context.Context, list trust.ListName, name, by string) (trust.Version, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.secrets {
		if s.List == list && s.Name == name {
			return f.StageAdd(list, s, by)
		}
	}
	return trust.Version{}, fmt.Errorf("secret %q: %w", name, vault.ErrNotFound)
}

func (f *testTrust) Fleet(context.Context) ([]vault.DeviceStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fleet, nil
}

// recordedRequest is a request the stand-in daemon received.
type recordedRequest struct {
	method, uri, contentType string
	body                     []byte
}

// trustEnv is a stand-in daemon for the trust commands: the real API
// (LocalHandler) over testTrust, served on <data>/edgegate.sock, keeping
// the requests it receives.
type trustEnv struct {
	dataDir  string
	trust    *testTrust
	sessions atomic.Int64 // what SessionsUsing answers

	mu       sync.Mutex
	requests []recordedRequest
}

func startTrustDaemon(t *testing.T) *trustEnv {
	t.Helper()
	e := &trustEnv{dataDir: newDataDir(t)}
	st, err := store.Open(e.dataDir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts, err := trust.Open(trust.Options{
		DB:            st.DB(),
		SessionsUsing: func([]*x509.Certificate) int { return int(e.sessions.Load()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.trust = &testTrust{Store: ts}
	h := api.New(api.Options{Trust: e.trust}).LocalHandler()
	ln, err := net.Listen("unix", filepath.Join(e.dataDir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read request body: %v", err)
		}
		e.mu.Lock()
		e.requests = append(e.requests, recordedRequest{r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), body})
		e.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	}))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return e
}

// lastRequest returns the last request received for method and a path
// beginning with prefix.
func (e *trustEnv) lastRequest(t *testing.T, method, prefix string) recordedRequest {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.requests) - 1; i >= 0; i-- {
		if r := e.requests[i]; r.method == method && strings.HasPrefix(r.uri, prefix) {
			return r
		}
	}
	t.Fatalf("no %s %s… request among %d", method, prefix, len(e.requests))
	return recordedRequest{}
}

func runTrustCmd(t *testing.T, dataDir string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(t.Context(), "trust", dataDir, args, strings.NewReader(""), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// testCert makes a self-signed certificate (a CA unless leaf) and returns
// its DER.
func testCert(t *testing.T, cn string, leaf bool) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  !leaf,
	}
	if leaf {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pemOf(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func appliedEntry(t *testing.T, e *trustEnv, name string) trust.Entry {
	t.Helper()
	v, err := e.trust.Applied()
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range v.Entries {
		if en.Name == name {
			return en
		}
	}
	t.Fatalf("no applied entry %q in version %d", name, v.Number)
	return trust.Entry{}
}

func TestTrustUsageAndDaemonDown(t *testing.T) {
	t.Parallel()
	dataDir := newDataDir(t)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: edgegate trust"},
		{[]string{"help"}, 0, "usage: edgegate trust"},
		{[]string{"bogus"}, 2, `unknown verb "bogus"`},
		{[]string{"list", "trust", "issuer"}, 2, "at most one LIST"},
		{[]string{"list", "roots"}, 2, `LIST is "trust" or "issuer", not "roots"`},
		{[]string{"list", "--json"}, 2, "flag provided but not defined"},
		{[]string{"show", "trust"}, 2, "takes a LIST and an ID"},
		{[]string{"show", "versions", "3"}, 2, `not "versions"`},
		{[]string{"upload", "trust"}, 2, "takes a LIST and a FILE"},
		{[]string{"upload", "trust", "f", "--name"}, 2, "flag needs an argument"},
		{[]string{"delete", "trust", "a", "b"}, 2, "takes a LIST and an ID"},
		{[]string{"add", "trust"}, 2, "takes a LIST and the NAME"},
		{[]string{"staged", "x"}, 2, "takes no arguments"},
		{[]string{"apply", "1", "2"}, 2, "at most one VERSION"},
		{[]string{"apply", "latest"}, 2, `"latest" is not a version number`},
		{[]string{"apply", "0"}, 2, "not a version number"},
		{[]string{"rollback", "3"}, 2, "takes no arguments"},
		{[]string{"sync", "--now=maybe"}, 2, "invalid boolean"},
		{[]string{"fleet", "x"}, 2, "takes no arguments"},
		{[]string{"upload", "trust", filepath.Join(dataDir, "missing.pem")}, 1, "no such file"},
		{[]string{"list"}, 1, "edgegate is not running"},
		{[]string{"show", "trust", "abc"}, 1, "edgegate is not running"},
		{[]string{"upload", "trust", writeFile(t, "ca.pem", pemOf(testCert(t, "x", false)))}, 1, "edgegate is not running"},
		{[]string{"delete", "issuer", "abc"}, 1, "edgegate is not running"},
		{[]string{"add", "trust", "root"}, 1, "edgegate is not running"},
		{[]string{"staged"}, 1, "edgegate is not running"},
		{[]string{"apply"}, 1, "edgegate is not running"},
		{[]string{"apply", "3", "--yes"}, 1, "edgegate is not running"},
		{[]string{"discard"}, 1, "edgegate is not running"},
		{[]string{"versions"}, 1, "edgegate is not running"},
		{[]string{"rollback"}, 1, "edgegate is not running"},
		{[]string{"sync", "--now"}, 1, "edgegate is not running"},
		{[]string{"vault"}, 1, "edgegate is not running"},
		{[]string{"fleet"}, 1, "edgegate is not running"},
	} {
		r := runTrustCmd(t, dataDir, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("trust %q: exit %d, stderr %q; want exit %d with %q", tt.args, r.code, r.stderr, tt.code, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, store.FileName)); !os.IsNotExist(err) {
		t.Fatalf("the trust commands touched the database: %v", err)
	}
}

func TestTrustUploadApplyList(t *testing.T) {
	t.Parallel()
	e := startTrustDaemon(t)

	mustRun(t, runTrustCmd(t, e.dataDir, "staged"), 0, "No version is staged")
	mustRun(t, runTrustCmd(t, e.dataDir, "apply"), 1, "no version is staged")

	// A PEM upload: the file's bytes as they are, the name in the query.
	rootA := testCert(t, "Root A", false)
	pemFile := writeFile(t, "root-a.pem", pemOf(rootA))
	r := runTrustCmd(t, e.dataDir, "upload", "trust", pemFile, "--name", "root a")
	mustRun(t, r, 0, "Version 1 is staged (upload by local")
	idA := entryID(rootA)
	for _, want := range []string{"Changes against the applied version 0:", "+  trust  root a  " + idA, `edgegate trust apply`} {
		mustRun(t, r, 0, want)
	}
	req := e.lastRequest(t, "POST", "/api/v1/trust/trust")
	if req.uri != "/api/v1/trust/trust?name=root+a" || req.contentType != "application/x-pem-file" || !bytes.Equal(req.body, pemOf(rootA)) {
		t.Fatalf("upload request %s %q, body %q", req.uri, req.contentType, req.body)
	}
	mustRun(t, runTrustCmd(t, e.dataDir, "staged"), 0, "+  trust  root a  "+idA)

	r = runTrustCmd(t, e.dataDir, "apply")
	mustRun(t, r, 0, "Applied version 1: 1 trust anchor(s), 0 issuer(s).")
	if req := e.lastRequest(t, "POST", "/api/v1/trust/versions/"); req.uri != "/api/v1/trust/versions/1/apply" || len(req.body) != 0 {
		t.Fatalf("apply request %s with body %q; want version 1, no body", req.uri, req.body)
	}

	// A DER upload, and a leaf certificate the store rejects.
	rootB := testCert(t, "Root B", false)
	mustRun(t, runTrustCmd(t, e.dataDir, "upload", "trust", writeFile(t, "root-b.der", rootB)), 0, "+  trust  Root B")
	req = e.lastRequest(t, "POST", "/api/v1/trust/trust")
	if req.uri != "/api/v1/trust/trust" || req.contentType != "application/pkix-cert" || !bytes.Equal(req.body, rootB) {
		t.Fatalf("DER upload request %s %q, %d bytes", req.uri, req.contentType, len(req.body))
	}
	r = runTrustCmd(t, e.dataDir, "upload", "trust", writeFile(t, "leaf.pem", pemOf(testCert(t, "leaf", true))), "--name", "leaf")
	mustRun(t, r, 0, "Rejected, not part of the version:")
	mustRun(t, r, 0, "!  trust  leaf")
	mustRun(t, runTrustCmd(t, e.dataDir, "staged"), 0, "!  trust  leaf")
	mustRun(t, runTrustCmd(t, e.dataDir, "apply", "3"), 0, "Applied version 3: 2 trust anchor(s)")
	mustRun(t, runTrustCmd(t, e.dataDir, "apply", "3"), 1, "no staged version")

	r = runTrustCmd(t, e.dataDir, "list")
	if head := strings.Fields(strings.SplitN(r.stdout, "\n", 2)[0]); r.code != 0 || strings.Join(head, " ") != "LIST NAME SOURCE NOT-AFTER ID" {
		t.Fatalf("list: exit %d, header %q\n%s%s", r.code, head, r.stdout, r.stderr)
	}
	a := appliedEntry(t, e, "root a")
	if row := tableRow(t, r.stdout, "trust"); strings.Join(row, " ") != "trust Root B upload "+
		appliedEntry(t, e, "Root B").NotAfter.UTC().Format(time.DateOnly)+" "+entryID(rootB) {
		t.Fatalf("first row %q\n%s", row, r.stdout)
	}
	if !strings.Contains(r.stdout, "trust  root a  upload  "+a.NotAfter.UTC().Format(time.DateOnly)+"  "+idA+"\n") {
		t.Fatalf("no row for root a:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "leaf") || strings.Contains(r.stdout, "staged") {
		t.Fatalf("list shows a rejected entry or a staged version:\n%s", r.stdout)
	}
	if r := runTrustCmd(t, e.dataDir, "list", "issuer"); r.code != 0 || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("list issuer: exit %d\n%s", r.code, r.stdout)
	}

	r = runTrustCmd(t, e.dataDir, "show", "trust", idA)
	for _, want := range []string{"Name:", "root a", `uploaded as "root a"`, "CN=Root A", "CA (unlimited path length), self-signed",
		"SHA-256:", a.Fingerprint, "by local", "\n-----BEGIN CERTIFICATE-----\n"} {
		mustRun(t, r, 0, want)
	}
	mustRun(t, runTrustCmd(t, e.dataDir, "show", "trust", a.Fingerprint), 0, "CN=Root A")
	mustRun(t, runTrustCmd(t, e.dataDir, "show", "issuer", idA), 1, "not found")

	r = runTrustCmd(t, e.dataDir, "versions")
	mustRun(t, r, 0, "NUMBER")
	if row := tableRow(t, r.stdout, "3"); row[1] != "applied" || row[2] != "upload" || row[3] != "local" ||
		strings.Join(row[5:], " ") != "trust=2 issuer=0 rejected=1" {
		t.Fatalf("version 3 row %q\n%s", row, r.stdout)
	}
	if row := tableRow(t, r.stdout, "1"); row[1] != "superseded" {
		t.Fatalf("version 1 row %q", row)
	}

	// Discard drops a staged delete.
	mustRun(t, runTrustCmd(t, e.dataDir, "delete", "trust", idA), 0, "-  trust  root a")
	mustRun(t, runTrustCmd(t, e.dataDir, "discard"), 0, "Discarded the staged version.")
	mustRun(t, runTrustCmd(t, e.dataDir, "staged"), 0, "No version is staged; version 3 is applied.")
	mustRun(t, runTrustCmd(t, e.dataDir, "discard"), 1, "no staged version")
}

// entryID is the trust entry ID of a certificate: the start of its SHA-256.
func entryID(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])[:16]
}

func TestTrustApplyConfirmation(t *testing.T) {
	t.Parallel()
	e := startTrustDaemon(t)
	rootA, rootB := testCert(t, "Root A", false), testCert(t, "Root B", false)
	mustRun(t, runTrustCmd(t, e.dataDir, "upload", "trust", writeFile(t, "a.pem", pemOf(rootA)), "--name", "root-a"), 0, "Version 1")
	mustRun(t, runTrustCmd(t, e.dataDir, "upload", "trust", writeFile(t, "b.pem", pemOf(rootB)), "--name", "root-b"), 0, "Version 2")
	mustRun(t, runTrustCmd(t, e.dataDir, "apply"), 0, "Applied version 2")

	// Removing a CA that connected clients use needs --yes.
	e.sessions.Store(3)
	mustRun(t, runTrustCmd(t, e.dataDir, "delete", "trust", entryID(rootA)), 0, "Version 3 is staged")
	r := runTrustCmd(t, e.dataDir, "apply")
	for _, want := range []string{"edgegate trust: not applied: it removes CAs that 3 connected client session(s) use (root-a)",
		`run "edgegate trust apply 3 --yes" to go ahead anyway`} {
		mustRun(t, r, 1, want)
	}
	if strings.Contains(r.stderr, "empties") || strings.Contains(r.stderr, `{"confirm"`) {
		t.Fatalf("apply explains in the API's words or names a wrong reason:\n%s", r.stderr)
	}
	if v, _ := e.trust.Applied(); v.Number != 2 {
		t.Fatalf("version %d applied after a refused apply; want 2", v.Number)
	}
	r = runTrustCmd(t, e.dataDir, "apply", "--yes")
	mustRun(t, r, 0, "Applied version 3: 1 trust anchor(s)")
	if req := e.lastRequest(t, "POST", "/api/v1/trust/versions/3/apply"); string(req.body) != `{"confirm":true}` || req.contentType != "application/json" {
		t.Fatalf("apply --yes sent %q (%s)", req.body, req.contentType)
	}

	// Rolling back restores root-a and removes nothing.
	mustRun(t, runTrustCmd(t, e.dataDir, "rollback"), 0, "Rolled back: applied version 4: 2 trust anchor(s)")
	if req := e.lastRequest(t, "POST", "/api/v1/trust/versions/rollback"); len(req.body) != 0 {
		t.Fatalf("rollback without --yes sent %q", req.body)
	}

	// Emptying the trust list needs --yes too, with no session in use.
	e.sessions.Store(0)
	mustRun(t, runTrustCmd(t, e.dataDir, "delete", "trust", entryID(rootA)), 0, "Version 5")
	mustRun(t, runTrustCmd(t, e.dataDir, "apply", "5", "--yes"), 0, "Applied version 5")
	mustRun(t, runTrustCmd(t, e.dataDir, "delete", "trust", entryID(rootB)), 0, "Version 6")
	r = runTrustCmd(t, e.dataDir, "apply", "6")
	mustRun(t, r, 1, "it empties the trust list")
	if strings.Contains(r.stderr, "session") {
		t.Fatalf("apply names sessions that do not exist:\n%s", r.stderr)
	}
	mustRun(t, runTrustCmd(t, e.dataDir, "discard"), 0, "Discarded")

	// So does a rollback that removes a CA in use.
	mustRun(t, runTrustCmd(t, e.dataDir, "upload", "trust", writeFile(t, "a.pem", pemOf(rootA)), "--name", "root-a"), 0, "Version 7")
	mustRun(t, runTrustCmd(t, e.dataDir, "apply"), 0, "Applied version 7: 2 trust anchor(s)")
	e.sessions.Store(1)
	r = runTrustCmd(t, e.dataDir, "rollback")
	mustRun(t, r, 1, "it removes CAs that 1 connected client session(s) use (root-a)")
	mustRun(t, r, 1, `run "edgegate trust rollback --yes"`)
	mustRun(t, runTrustCmd(t, e.dataDir, "rollback", "--yes"), 0, "Rolled back")
	if req := e.lastRequest(t, "POST", "/api/v1/trust/versions/rollback"); string(req.body) != `{"confirm":true}` {
		t.Fatalf("rollback --yes sent %q", req.body)
	}
}

func TestTrustVault(t *testing.T) {
	t.Parallel()
	e := startTrustDaemon(t)
	fleetCA := testCert(t, "Fleet CA", false)
	e.trust.status = trustsync.Status{Enabled: true, Address: "https://vault.example:8200", Path: "secret/edgegate",
		Method: "approle", DeviceID: "gw-1"}
	e.trust.secrets = []trust.Remote{{List: trust.TrustList, Name: "fleet-ca", Version: 4, Data: pemOf(fleetCA)}}
	e.trust.fleet = []vault.DeviceStatus{
		{DeviceID: "gw-1", Hostname: "hall-a", AppliedVersion: 7, SyncedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		{DeviceID: "gw-2", AppliedVersion: 5, SyncedAt: time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC), LastError: "vault sealed"},
	}

	r := runTrustCmd(t, e.dataDir, "sync")
	for _, want := range []string{"Vault sync:", "on", "https://vault.example:8200", "secret/edgegate", "approle", "gw-1",
		"Last success:  -", "0 succeeded, 0 failed"} {
		mustRun(t, r, 0, want)
	}
	if strings.Contains(r.stdout, "staged") {
		t.Fatalf("sync shows a staged version before any:\n%s", r.stdout)
	}

	r = runTrustCmd(t, e.dataDir, "sync", "--now")
	for _, want := range []string{"Synced: 1 secret(s) listed, 1 fetched in 1.5s.", "2026-03-01 12:00:00 UTC", "1 succeeded, 0 failed",
		`Version 1 is staged, not applied: see "edgegate trust staged"`} {
		mustRun(t, r, 0, want)
	}
	e.lastRequest(t, "POST", "/api/v1/trust/sync")
	mustRun(t, runTrustCmd(t, e.dataDir, "apply"), 0, "Applied version 1: 1 trust anchor(s)")
	mustRun(t, runTrustCmd(t, e.dataDir, "list"), 0, "trust  fleet-ca  vault")
	mustRun(t, runTrustCmd(t, e.dataDir, "show", "trust", entryID(fleetCA)), 0, `vault secret "fleet-ca", version 4`)

	e.trust.mu.Lock()
	e.trust.syncErr = fmt.Errorf("list secrets: %w", vault.ErrUnavailable)
	e.trust.mu.Unlock()
	mustRun(t, runTrustCmd(t, e.dataDir, "sync", "--now"), 1, "edgegate trust: sync: ")

	r = runTrustCmd(t, e.dataDir, "vault")
	if row := tableRow(t, r.stdout, "trust"); r.code != 0 || strings.Join(row, " ") != "trust fleet-ca 4" {
		t.Fatalf("vault: exit %d\n%s", r.code, r.stdout)
	}
	r = runTrustCmd(t, e.dataDir, "fleet")
	mustRun(t, r, 0, "DEVICE")
	if row := tableRow(t, r.stdout, "gw-1"); strings.Join(row, " ") != "gw-1 hall-a 7 2026-03-01T12:00:00Z -" {
		t.Fatalf("gw-1 row %q", row)
	}
	if row := tableRow(t, r.stdout, "gw-2"); strings.Join(row, " ") != "gw-2 - 5 2026-02-01T08:00:00Z vault sealed" {
		t.Fatalf("gw-2 row %q", row)
	}

	// Deleting a synced entry leaves the vault alone; add brings it back.
	r = runTrustCmd(t, e.dataDir, "delete", "trust", entryID(fleetCA))
	for _, want := range []string{"-  trust  fleet-ca", `"fleet-ca" stays in the vault`, `until "edgegate trust add trust fleet-ca"`,
		"Vault secrets deleted here, left out of syncs:"} {
		mustRun(t, r, 0, want)
	}
	r = runTrustCmd(t, e.dataDir, "add", "trust", "fleet-ca")
	mustRun(t, r, 0, "Version 3 is staged (add by local")
	if req := e.lastRequest(t, "POST", "/api/v1/trust/trust/from-vault"); string(req.body) != `{"name":"fleet-ca"}` {
		t.Fatalf("add sent %q", req.body)
	}
	mustRun(t, runTrustCmd(t, e.dataDir, "add", "trust", "nope"), 1, "nope")
}
