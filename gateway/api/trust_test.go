package api

import (
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/trust"
	"github.com/edgegate/edgegate/certs/trustsync"
	"github.com/edgegate/edgegate/gateway/admin"
)

// trustEnv is an API whose Trust is the real trust store and sync service
// (vault sync off) on its own database, with a settable count of the
// sessions a version would lock out.
type trustEnv struct {
	*env
	sessions atomic.Int64
}

func newTrustEnv(t *testing.T) *trustEnv {
	t.Helper()
	te := &trustEnv{}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "trust.db"), 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc := trustsync.New("dev-1", slog.New(slog.DiscardHandler))
	te.env = newEnv(t, "", func(o *Options) {
		st, err := trust.Open(trust.Options{
			DB: db, Now: o.Now, Publisher: svc,
			SessionsUsing: func([]*x509.Certificate) int { return int(te.sessions.Load()) },
		})
		if err != nil {
			t.Fatal(err)
		}
		svc.SetStore(st)
		o.Trust = svc
	}).completeSetup()
	return te
}

func (te *trustEnv) call(t *testing.T, r req, want int) *httptest.ResponseRecorder {
	t.Helper()
	if r.user == "" {
		r = r.asAdmin()
	}
	w := te.do(te.handler, r)
	if w.Code != want {
		t.Fatalf("%s %s = %d %s; want %d", r.method, r.path, w.Code, w.Body.String(), want)
	}
	return w
}

type overviewBody struct {
	Applied trust.Version  `json:"applied"`
	Staged  *stagedVersion `json:"staged"`
	Counts  map[string]int `json:"counts"`
}

func TestTrustRoutes(t *testing.T) {
	t.Parallel()
	te := newTrustEnv(t)
	caPEM := testCACert(t)

	if got := decodeBody[overviewBody](t, te.call(t, req{method: "GET", path: "/api/v1/trust"}, 200)); got.Applied.Number != 0 || got.Staged != nil {
		t.Fatalf("fresh overview: %+v", got)
	}

	// Upload: staged with its diff, nothing applied yet.
	w := te.call(t, req{method: "POST", path: "/api/v1/trust/trust", body: jsonBody(t, uploadRequest{Name: "sensors", PEM: caPEM})}, 201)
	staged := decodeBody[stagedVersion](t, w)
	if len(staged.Diff.Added) != 1 || staged.Diff.Added[0].Name != "sensors" || staged.State != trust.StateStaged {
		t.Fatalf("staged upload: %+v", staged)
	}
	if got := decodeBody[[]trust.Entry](t, te.call(t, req{method: "GET", path: "/api/v1/trust/trust"}, 200)); len(got) != 0 {
		t.Fatalf("an upload applied before apply: %+v", got)
	}
	n := itoa(staged.Number)
	te.call(t, req{method: "POST", path: "/api/v1/trust/versions/" + n + "/apply"}, 200)
	list := decodeBody[[]trust.Entry](t, te.call(t, req{method: "GET", path: "/api/v1/trust/trust"}, 200))
	if len(list) != 1 {
		t.Fatalf("applied trust list: %+v", list)
	}
	entry := decodeBody[trustEntry](t, te.call(t, req{method: "GET", path: "/api/v1/trust/trust/" + list[0].ID}, 200))
	if entry.PEM != caPEM || entry.Source.Kind != trust.SourceUpload {
		t.Fatalf("entry: source %+v, pem %q", entry.Source, entry.PEM)
	}

	// Deleting a CA that connected clients use needs a confirmation.
	w = te.call(t, req{method: "DELETE", path: "/api/v1/trust/trust/" + list[0].ID}, 200)
	del := itoa(decodeBody[stagedVersion](t, w).Number)
	te.sessions.Store(3)
	w = te.call(t, req{method: "POST", path: "/api/v1/trust/versions/" + del + "/apply"}, 409)
	if e := decodeError(t, w); e.Code != "confirmation_required" || e.Confirmation == nil || e.Confirmation.Sessions != 3 {
		t.Fatalf("apply without confirmation: %+v", e)
	}
	te.call(t, req{method: "POST", path: "/api/v1/trust/versions/" + del + "/apply", body: `{"confirm": true}`}, 200)
	if got := decodeBody[overviewBody](t, te.call(t, req{method: "GET", path: "/api/v1/trust"}, 200)); got.Counts["trust"] != 0 {
		t.Fatalf("after the confirmed delete: %+v", got.Counts)
	}

	// Rollback restores it (nothing to confirm: it removes no CA).
	te.call(t, req{method: "POST", path: "/api/v1/trust/versions/rollback"}, 200)
	if got := decodeBody[overviewBody](t, te.call(t, req{method: "GET", path: "/api/v1/trust"}, 200)); got.Counts["trust"] != 1 {
		t.Fatalf("after rollback: %+v", got.Counts)
	}
	versions := decodeBody[[]trust.Version](t, te.call(t, req{method: "GET", path: "/api/v1/trust/versions"}, 200))
	if len(versions) < 3 || versions[0].Origin != trust.OriginRollback {
		t.Fatalf("history: %+v", versions)
	}
	d := decodeBody[trust.Diff](t, te.call(t, req{method: "GET", path: "/api/v1/trust/versions/" + del + "/diff?from=" + n}, 200))
	if len(d.Removed) != 1 {
		t.Fatalf("diff %s→%s: %+v", n, del, d)
	}

	// A staged version can be discarded; then there is none to discard.
	te.call(t, req{method: "POST", path: "/api/v1/trust/issuer", body: jsonBody(t, uploadRequest{Name: "x", PEM: caPEM})}, 201)
	te.call(t, req{method: "DELETE", path: "/api/v1/trust/versions/staged"}, 204)
	te.call(t, req{method: "DELETE", path: "/api/v1/trust/versions/staged"}, 409)

	w = te.call(t, req{method: "GET", path: "/metrics"}, 200)
	if !strings.Contains(w.Body.String(), "edgegate_trust_entries{list=\"trust\"} 1") {
		t.Fatalf("metrics without the trust list:\n%s", w.Body.String())
	}
}

func TestTrustRouteErrors(t *testing.T) {
	t.Parallel()
	te := newTrustEnv(t)
	for _, tc := range []struct {
		name   string
		r      req
		status int
		code   string
	}{
		{"not a certificate", req{method: "POST", path: "/api/v1/trust/trust", body: jsonBody(t, uploadRequest{Name: "x", PEM: "hello"})}, 422, "invalid_certificate"},
		{"raw PEM body", req{method: "POST", path: "/api/v1/trust/trust?name=raw", body: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", contentType: "application/x-pem-file"}, 422, "invalid_certificate"},
		{"unknown list", req{method: "GET", path: "/api/v1/trust/roots"}, 404, "list_not_found"},
		{"unknown entry", req{method: "GET", path: "/api/v1/trust/trust/0123456789abcdef"}, 404, "not_found"},
		{"bad version", req{method: "POST", path: "/api/v1/trust/versions/abc/apply"}, 400, "bad_version"},
		{"nothing staged", req{method: "POST", path: "/api/v1/trust/versions/42/apply"}, 409, "conflict"},
		{"no such version", req{method: "GET", path: "/api/v1/trust/versions/42"}, 404, "not_found"},
		{"sync with the vault off", req{method: "POST", path: "/api/v1/trust/sync"}, 409, "vault_off"},
		{"fleet with the vault off", req{method: "GET", path: "/api/v1/trust/fleet"}, 409, "vault_off"},
		{"broker-scoped key", te.asKey(req{method: "GET", path: "/api/v1/trust"}, admin.ScopeBroker), 403, "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := te.call(t, tc.r, tc.status)
			if got := decodeError(t, w); got.Code != tc.code {
				t.Fatalf("code %q (%s), want %q", got.Code, got.Message, tc.code)
			}
		})
	}
	// The sync status answers with the vault off, saying so.
	st := decodeBody[trustsync.Status](t, te.call(t, req{method: "GET", path: "/api/v1/trust/sync"}, http.StatusOK))
	if st.Enabled || st.DeviceID != "dev-1" {
		t.Fatalf("sync status: %+v", st)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
