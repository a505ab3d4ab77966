package webui

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/certs/bundle"
	"github.com/edgegate/edgegate/certs/ca"
)

func TestCertificatesNeedALogin(t *testing.T) {
	u, _ := newCertificatesTestUI(t, newCertsFakeStore(t))
	for _, path := range []string{"/certificates", "/certificates/x"} {
		rec := certsGet(t, u, nil, path)
		if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/login") {
			t.Errorf("GET %s without a session: %d to %q, want a redirect to the login page", path, rec.Code, rec.Header().Get("Location"))
		}
	}
	rec := certsPost(t, u, nil, "/certificates/create", url.Values{"common_name": {"x"}})
	if rec.Code != http.StatusSeeOther {
		t.Errorf("POST without a session: status %d, want 303 to the login page", rec.Code)
	}
}

func TestCertificatesListStatuses(t *testing.T) {
	store := newCertsFakeStore(t)
	day := 24 * time.Hour
	store.put("valid", "valid-sensor", certsNow.Add(-day), certsNow.Add(200*day), true, x509.ExtKeyUsageClientAuth)
	store.put("expiring", "expiring-server", certsNow.Add(-day), certsNow.Add(10*day), true, x509.ExtKeyUsageServerAuth)
	store.put("expired", "expired-sensor", certsNow.Add(-90*day), certsNow.Add(-day), true, x509.ExtKeyUsageClientAuth)
	revoked := store.put("revoked", "revoked-sensor", certsNow.Add(-day), certsNow.Add(200*day), true, x509.ExtKeyUsageClientAuth)
	revoked.Revoked, revoked.Valid, revoked.InvalidReason = true, false, "revoked"
	store.m["revoked"] = revoked
	served := store.m["expiring"]
	served.Usage = []certs.Role{certs.RoleServer}
	store.m["expiring"] = served

	u, ss := newCertificatesTestUI(t, store)
	doc := certsDoc(t, certsGet(t, u, ss, "/certificates"), http.StatusOK)
	rows := doc.Find(`[data-testid="certificate-row"]`)
	if rows.Length() != 4 {
		t.Fatalf("%d rows, want 4", rows.Length())
	}
	want := map[string]struct{ status, class, usage string }{
		"valid":    {"valid", "ok", "TLS client"},
		"expiring": {"expiring", "warn", "TLS server, served by the TLS listeners"},
		"expired":  {"expired", "bad", "TLS client"},
		"revoked":  {"revoked", "bad", "TLS client"},
	}
	rows.Each(func(_ int, row *goquery.Selection) {
		id, _ := row.Attr("data-id")
		w, ok := want[id]
		if !ok {
			t.Errorf("unexpected row %q", id)
			return
		}
		badge := row.Find(`[data-testid="certificate-status"]`)
		if got := strings.TrimSpace(badge.Text()); got != w.status {
			t.Errorf("row %s: status %q, want %q", id, got, w.status)
		}
		if !badge.HasClass(w.class) {
			t.Errorf("row %s: badge classes %q, want %q", id, badge.AttrOr("class", ""), w.class)
		}
		if got := strings.TrimSpace(row.Find(`[data-testid="certificate-usage"]`).Text()); got != w.usage {
			t.Errorf("row %s: usage %q, want %q", id, got, w.usage)
		}
		if href := row.Find(`[data-testid="certificate-link"]`).AttrOr("href", ""); href != "/certificates/"+id {
			t.Errorf("row %s links to %q", id, href)
		}
	})
	// Sorted by name.
	if first := rows.First().AttrOr("data-id", ""); first != "expired" {
		t.Errorf("first row %q, want expired (rows sorted by name)", first)
	}
	if got := doc.Find(`[data-testid="ca-download"]`).AttrOr("href", ""); got != "/pki/ca" {
		t.Errorf("CA download link %q, want /pki/ca", got)
	}
	if got := doc.Find(`[data-testid="crl-download"]`).AttrOr("href", ""); got != "/pki/crl" {
		t.Errorf("CRL download link %q, want /pki/crl", got)
	}
	if got := certsText(doc, "ca-fingerprint"); got != "AA:BB:CC" {
		t.Errorf("CA fingerprint %q", got)
	}
	// No ACME CA in the (absent) settings: the page says so up front.
	if certsText(doc, "acme-off") == "" {
		t.Error("no notice that ACME is not configured")
	}
	for _, panel := range []string{"create-panel", "acme-panel", "import-panel"} {
		if _, open := doc.Find(`[data-testid="` + panel + `"]`).Attr("open"); open {
			t.Errorf("%s is open on a plain visit", panel)
		}
	}
}

func TestCertificateDetail(t *testing.T) {
	store := newCertsFakeStore(t)
	c := store.put("s1", "sensor-1", certsNow.Add(-time.Hour), certsNow.Add(100*24*time.Hour), true, x509.ExtKeyUsageClientAuth)
	u, ss := newCertificatesTestUI(t, store)

	doc := certsDoc(t, certsGet(t, u, ss, "/certificates/s1"), http.StatusOK)
	chain, err := certs.ParseChainPEM(c.Chain)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"certificate-status":      "valid",
		"certificate-subject":     "CN=sensor-1",
		"certificate-issuer":      "CN=Test Root",
		"certificate-sans":        "sensor-1.example.net",
		"certificate-key-type":    "ecdsa-p256",
		"certificate-usage":       "TLS client",
		"certificate-fingerprint": sha256Fingerprint(chain[0].Raw),
		"certificate-has-key":     "kept on the gateway",
	} {
		if got := certsText(doc, id); got != want {
			t.Errorf("%s = %q, want %q", id, got, want)
		}
	}
	entries := doc.Find(`[data-testid="chain-entry"]`)
	if entries.Length() != 2 {
		t.Fatalf("chain shows %d certificates, want 2", entries.Length())
	}
	entries.Each(func(i int, e *goquery.Selection) {
		if got, want := strings.TrimSpace(e.Find(`[data-testid="chain-fingerprint"]`).Text()), sha256Fingerprint(chain[i].Raw); got != want {
			t.Errorf("chain %d fingerprint %q, want %q", i, got, want)
		}
		if !strings.Contains(e.Text(), chain[i].SerialNumber.Text(16)) {
			t.Errorf("chain %d does not show its serial", i)
		}
	})
	for _, id := range []string{"export-form", "renew-form", "revoke-form", "delete-form"} {
		if doc.Find(`[data-testid="`+id+`"]`).Length() != 1 {
			t.Errorf("no %s", id)
		}
	}
	if _, ok := doc.Find(`[data-testid="revoke-form"]`).Attr("data-confirm"); !ok {
		t.Error("revoking does not ask for confirmation")
	}

	certsDoc(t, certsGet(t, u, ss, "/certificates/nope"), http.StatusNotFound)
}

func TestCertificateDetailWithoutKeyOrRevoked(t *testing.T) {
	store := newCertsFakeStore(t)
	c := store.put("trust", "partner-ca", certsNow.Add(-time.Hour), certsNow.Add(time.Hour*24*400), false)
	c.Source, c.Revoked, c.RevocationReason, c.RevokedAt = certs.SourceImported, true, "superseded", certsNow.UnixMilli()
	c.Usage = []certs.Role{certs.RoleServer}
	store.m["trust"] = c
	u, ss := newCertificatesTestUI(t, store)
	doc := certsDoc(t, certsGet(t, u, ss, "/certificates/trust"), http.StatusOK)
	for _, id := range []string{"export-form", "renew-form", "revoke-form", "delete-form"} {
		if doc.Find(`[data-testid="`+id+`"]`).Length() != 0 {
			t.Errorf("%s offered for an imported, revoked, served certificate without key", id)
		}
	}
	if got := certsText(doc, "certificate-revoked"); !strings.Contains(got, "superseded") {
		t.Errorf("revocation shown as %q", got)
	}
	rec := certsPost(t, u, ss, "/certificates/trust/export", nil)
	if rec.Code != http.StatusConflict {
		t.Errorf("export without a key: status %d, want 409", rec.Code)
	}
}

func TestCertificateCreate(t *testing.T) {
	store := newCertsFakeStore(t)
	u, ss := newCertificatesTestUI(t, store)

	doc := certsDoc(t, certsPost(t, u, ss, "/certificates/create", url.Values{
		"name": {"keep me"}, "common_name": {""}, "usage": {"server"}, "validity_days": {"0"}, "key_type": {"dsa-512"},
	}), http.StatusUnprocessableEntity)
	for _, id := range []string{"create-cn-error", "create-hosts-error", "create-validity-error", "create-key-type-error"} {
		if certsText(doc, id) == "" {
			t.Errorf("no %s", id)
		}
	}
	if got := doc.Find(`[data-testid="create-name"]`).AttrOr("value", ""); got != "keep me" {
		t.Errorf("the name typed was not kept: %q", got)
	}
	if _, open := doc.Find(`[data-testid="create-panel"]`).Attr("open"); !open {
		t.Error("the form with errors is folded")
	}
	if len(store.created) != 0 {
		t.Fatalf("an invalid form reached the CA: %+v", store.created)
	}

	rec := certsPost(t, u, ss, "/certificates/create", url.Values{
		"name": {"sensor 7"}, "common_name": {"sensor-7"}, "hosts": {"s7.example.net, 192.0.2.7"}, "usage": {"client"},
		"validity_days": {"30"}, "key_type": {"rsa-2048"},
	})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/certificates/cert-1" {
		t.Fatalf("create: %d to %q, want 303 to /certificates/cert-1\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	p := store.created[0]
	if p.Subject != "CN=sensor-7" || !p.Client || p.Server || p.KeyType != "rsa-2048" || p.ValiditySeconds != 30*24*3600 ||
		strings.Join(p.Hosts, " ") != "s7.example.net 192.0.2.7" {
		t.Errorf("issue params %+v", p)
	}
	doc = certsDoc(t, certsGet(t, u, ss, "/certificates/cert-1"), http.StatusOK)
	if got := certsText(doc, "flash"); !strings.Contains(got, "sensor 7") {
		t.Errorf("flash %q", got)
	}

	// A refusal of the CA is shown without the internals of the error.
	store.createErr = wrapInvalid(`invalid hosts: "x..y": empty label`)
	doc = certsDoc(t, certsPost(t, u, ss, "/certificates/create", url.Values{
		"common_name": {"x"}, "hosts": {"x..y"}, "usage": {"both"}, "validity_days": {"1"}, "key_type": {"ecdsa-p256"},
	}), http.StatusUnprocessableEntity)
	if got := certsText(doc, "create-error"); got != `The local CA refused the request: invalid hosts: "x..y": empty label` {
		t.Errorf("refusal shown as %q", got)
	}
}

// wrapInvalid is an error as the manager returns for a request the CA
// refused.
func wrapInvalid(what string) error {
	return fmt.Errorf("certs: create: %w: %w: %s", certs.ErrInvalid, ca.ErrInvalidRequest, what)
}

func TestCertificateImport(t *testing.T) {
	store := newCertsFakeStore(t)
	u, ss := newCertificatesTestUI(t, store)
	chain, key := store.ca.issue(t, "imported-1", nil, certsNow.Add(-time.Hour), certsNow.Add(time.Hour*24*30), x509.ExtKeyUsageServerAuth)
	bd := &bundle.Bundle{Chain: chain, Key: key}
	keyPEM, err := bd.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	p12, err := bd.PKCS12("right password", bundle.Modern)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey := store.ca.issue(t, "other", nil, certsNow.Add(-time.Hour), certsNow.Add(time.Hour), x509.ExtKeyUsageServerAuth)
	otherKeyPEM, err := (&bundle.Bundle{Chain: chain, Key: otherKey}).KeyPEM()
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		fields   map[string]string
		files    []certsUpload
		field    string
		contains string
	}{
		{"no file", nil, nil, "import-file-error", "Choose a certificate file"},
		{"file too large", nil, []certsUpload{{"big.pem", make([]byte, bundle.MaxInputSize+1)}}, "import-file-error", "too large"},
		{"upload too large", nil, []certsUpload{{"huge.pem", make([]byte, 3*bundle.MaxInputSize)}}, "import-file-error", "too large"},
		{"garbage", nil, []certsUpload{{"x.bin", []byte{0x00, 0x01, 0x02, 0xff}}}, "import-file-error", "neither PEM nor PKCS#12"},
		{"wrong p12 password", map[string]string{"password": "wrong"}, []certsUpload{{"s.p12", p12}}, "import-password-error", "Wrong password"},
		{"key of another certificate", nil, []certsUpload{{"c.pem", bd.ChainPEM()}, {"k.pem", otherKeyPEM}}, "import-file-error", "does not belong"},
		{"PEM without certificate", nil, []certsUpload{{"k.pem", keyPEM}}, "import-file-error", "no certificate"},
		{"not a CA", map[string]string{"client_ca": "on"}, []certsUpload{{"c.pem", bd.ChainPEM()}}, "import-error", "only a CA certificate can be trusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := certsDoc(t, certsPostUpload(t, u, ss, tc.fields, tc.files...), http.StatusUnprocessableEntity)
			if got := certsText(doc, tc.field); !strings.Contains(got, tc.contains) {
				t.Errorf("%s = %q, want it to say %q", tc.field, got, tc.contains)
			}
			if _, open := doc.Find(`[data-testid="import-panel"]`).Attr("open"); !open {
				t.Error("the import form with errors is folded")
			}
			if doc.Find(`[data-testid="import-password"]`).AttrOr("value", "") != "" {
				t.Error("the password is echoed back")
			}
		})
	}

	for _, tc := range []struct {
		name   string
		fields map[string]string
		files  []certsUpload
	}{
		{"PEM in two files", map[string]string{"name": "edge server"}, []certsUpload{{"c.pem", bd.ChainPEM()}, {"k.pem", keyPEM}}},
		{"PKCS#12", map[string]string{"password": "right password"}, []certsUpload{{"s.p12", p12}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := certsPostUpload(t, u, ss, tc.fields, tc.files...)
			if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/certificates/imported-") {
				t.Fatalf("import: %d to %q\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
			}
			id := strings.TrimPrefix(rec.Header().Get("Location"), "/certificates/")
			if store.keys[id] == nil {
				t.Error("the key was not imported")
			}
			if store.m[id].Name != tc.fields["name"] && tc.fields["name"] != "" {
				t.Errorf("name %q", store.m[id].Name)
			}
		})
	}
}

func TestCertificateExportOneTimeDownload(t *testing.T) {
	store := newCertsFakeStore(t)
	c := store.put("s1", "sensor/1", certsNow.Add(-time.Hour), certsNow.Add(time.Hour*24*30), true, x509.ExtKeyUsageClientAuth)
	var logs bytes.Buffer
	u, ss := newCertificatesTestUILogging(t, store, &logs)

	doc := certsDoc(t, certsPost(t, u, ss, "/certificates/s1/export", url.Values{"encoding": {"modern"}}), http.StatusOK)
	password := certsText(doc, "export-password")
	if len(password) < 20 {
		t.Fatalf("password %q: want a long generated one", password)
	}
	link := doc.Find(`[data-testid="export-download"]`).AttrOr("href", "")
	if !strings.HasPrefix(link, "/certificates/downloads/") {
		t.Fatalf("download link %q", link)
	}

	// Another session cannot fetch it.
	other := u.sessions.create()
	if rec := certsGet(t, u, other, link); rec.Code != http.StatusNotFound {
		t.Errorf("another session's fetch: status %d, want 404", rec.Code)
	}

	rec := certsGet(t, u, ss, link)
	if rec.Code != http.StatusOK {
		t.Fatalf("download: status %d\n%s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("Content-Disposition"); got != `attachment; filename=sensor_1.p12` {
		t.Errorf("Content-Disposition %q", got)
	}
	if got := rec.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", got)
	}
	key, leaf, cas, err := pkcs12.DecodeChain(rec.Body.Bytes(), password)
	if err != nil {
		t.Fatalf("decode the p12 with the shown password: %v", err)
	}
	if key == nil || leaf.Subject.String() != c.Subject || len(cas) != 1 {
		t.Errorf("p12 holds leaf %v and %d CA certificates", leaf.Subject, len(cas))
	}
	if rec := certsGet(t, u, ss, link); rec.Code != http.StatusNotFound {
		t.Errorf("second download: status %d, want 404", rec.Code)
	}
	if !strings.Contains(logs.String(), "certificate exported") {
		t.Errorf("the export is not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), password) || strings.Contains(logs.String(), strings.TrimPrefix(link, "/certificates/downloads/")) {
		t.Errorf("the log holds the password or the download token:\n%s", logs.String())
	}

	// Legacy encoding, and an unknown one.
	doc = certsDoc(t, certsPost(t, u, ss, "/certificates/s1/export", url.Values{"encoding": {"legacy"}}), http.StatusOK)
	rec = certsGet(t, u, ss, doc.Find(`[data-testid="export-download"]`).AttrOr("href", ""))
	if _, _, _, err := pkcs12.DecodeChain(rec.Body.Bytes(), certsText(doc, "export-password")); err != nil {
		t.Errorf("legacy p12: %v", err)
	}
	certsDoc(t, certsPost(t, u, ss, "/certificates/s1/export", url.Values{"encoding": {"rot13"}}), http.StatusUnprocessableEntity)
	certsDoc(t, certsPost(t, u, ss, "/certificates/nope/export", nil), http.StatusNotFound)
}

func TestCertificateRevoke(t *testing.T) {
	store := newCertsFakeStore(t)
	store.put("s1", "sensor-1", certsNow.Add(-time.Hour), certsNow.Add(time.Hour*24*30), true, x509.ExtKeyUsageClientAuth)
	u, ss := newCertificatesTestUI(t, store)

	doc := certsDoc(t, certsPost(t, u, ss, "/certificates/s1/revoke", url.Values{"reason": {"because"}}), http.StatusUnprocessableEntity)
	if certsText(doc, "revoke-reason-error") == "" {
		t.Error("no error for an unknown reason")
	}
	if len(store.revoked) != 0 {
		t.Fatal("revoked with an unknown reason")
	}

	store.revokeErr = certs.ErrNoACME
	doc = certsDoc(t, certsPost(t, u, ss, "/certificates/s1/revoke", url.Values{"reason": {"superseded"}}), http.StatusConflict)
	if got := certsText(doc, "revoke-error"); !strings.Contains(got, "ACME") {
		t.Errorf("revoke error %q", got)
	}
	if got := doc.Find(`[data-testid="revoke-reason"] option[selected]`).AttrOr("value", ""); got != "superseded" {
		t.Errorf("selected reason %q, want the one chosen", got)
	}

	store.revokeErr = nil
	rec := certsPost(t, u, ss, "/certificates/s1/revoke", url.Values{"reason": {"keyCompromise"}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/certificates/s1" {
		t.Fatalf("revoke: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	if store.revoked["s1"] != "keyCompromise" {
		t.Errorf("revoked with reason %q", store.revoked["s1"])
	}
	doc = certsDoc(t, certsGet(t, u, ss, "/certificates/s1"), http.StatusOK)
	if certsText(doc, "certificate-status") != "revoked" || !strings.Contains(certsText(doc, "flash"), "revoked") {
		t.Errorf("after revoking: status %q, flash %q", certsText(doc, "certificate-status"), certsText(doc, "flash"))
	}
	certsDoc(t, certsPost(t, u, ss, "/certificates/nope/revoke", url.Values{"reason": {"superseded"}}), http.StatusNotFound)
}

func TestCertificateRenewAndDeleteErrors(t *testing.T) {
	store := newCertsFakeStore(t)
	store.put("s1", "sensor-1", certsNow.Add(-time.Hour), certsNow.Add(time.Hour*24*30), true, x509.ExtKeyUsageClientAuth)
	u, ss := newCertificatesTestUI(t, store)

	for _, tc := range []struct {
		err    error
		status int
	}{
		{certs.ErrNotRenewable, http.StatusConflict},
		{certs.ErrNoACME, http.StatusConflict},
		{errors.New("acme: urn:ietf:params:acme:error:rateLimited at 10.0.0.1"), http.StatusBadGateway},
	} {
		store.renewErr = tc.err
		doc := certsDoc(t, certsPost(t, u, ss, "/certificates/s1/renew", nil), tc.status)
		got := certsText(doc, "renew-error")
		if got == "" || strings.Contains(got, "10.0.0.1") || strings.Contains(got, "certs:") {
			t.Errorf("renew error for %v shown as %q", tc.err, got)
		}
	}
	store.renewErr = nil
	if rec := certsPost(t, u, ss, "/certificates/s1/renew", nil); rec.Code != http.StatusSeeOther {
		t.Errorf("renew: status %d, want 303", rec.Code)
	}

	store.deleteErr = certs.ErrInUse
	doc := certsDoc(t, certsPost(t, u, ss, "/certificates/s1/delete", nil), http.StatusConflict)
	if certsText(doc, "delete-error") == "" {
		t.Error("no message when the certificate is in use")
	}
	store.deleteErr = nil
	rec := certsPost(t, u, ss, "/certificates/s1/delete", nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/certificates" {
		t.Fatalf("delete: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	if _, ok := store.m["s1"]; ok {
		t.Error("not deleted")
	}
}

func TestCertificateACMERequest(t *testing.T) {
	store := newCertsFakeStore(t)
	u, ss := newCertificatesTestUI(t, store)

	doc := certsDoc(t, certsPost(t, u, ss, "/certificates/acme", url.Values{"names": {" "}}), http.StatusUnprocessableEntity)
	if certsText(doc, "acme-names-error") == "" {
		t.Error("no error for missing names")
	}
	store.acmeErr = certs.ErrNoACME
	doc = certsDoc(t, certsPost(t, u, ss, "/certificates/acme", url.Values{"names": {"gw.example.net"}}), http.StatusConflict)
	if got := certsText(doc, "acme-error"); got != msgNoACME {
		t.Errorf("ACME error %q", got)
	}
	if got := doc.Find(`[data-testid="acme-names"]`).AttrOr("value", ""); got != "gw.example.net" {
		t.Errorf("names not kept: %q", got)
	}
	store.acmeErr = errors.New("certs: obtain: acme: error 403 urn:ietf:params:acme:error:unauthorized from 10.1.2.3")
	doc = certsDoc(t, certsPost(t, u, ss, "/certificates/acme", url.Values{"names": {"gw.example.net"}}), http.StatusBadGateway)
	if got := certsText(doc, "acme-error"); got == "" || strings.Contains(got, "10.1.2.3") {
		t.Errorf("ACME failure shown as %q", got)
	}
}

func TestDownloadName(t *testing.T) {
	for in, want := range map[string]string{
		"sensor-ui-1":      "sensor-ui-1",
		"a b/c\"d":         "a_b_c_d",
		"../../etc/passwd": "etc_passwd",
		"":                 "certificate",
		"Ünïcode":          "n_code",
	} {
		if got := downloadName(in); got != want {
			t.Errorf("downloadName(%q) = %q, want %q", in, got, want)
		}
	}
}
