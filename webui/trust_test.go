package webui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/edgegate/edgegate/certs/trust"
	"github.com/edgegate/edgegate/certs/trustsync"
	"github.com/edgegate/edgegate/certs/vault"
)

// newTrustTestUI is a UI on the trust fake f (nil: a gateway without the
// trust store) with a logged-in session.
func newTrustTestUI(t *testing.T, f *trustFake) (*UI, *session) {
	t.Helper()
	o := Options{
		Admin: liveFakeAdmin{}, Broker: fakeBroker{}, Settings: newFakeSettings(),
		Authority: certsFakeAuthority{root: newTrustTestCert(t, "Local Root", nil, false).cert},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if f != nil {
		o.Trust = f
	}
	u := New(o)
	t.Cleanup(u.Close)
	return u, u.sessions.create()
}

// trustDoc gets path and parses the page, which must answer with want.
func trustDoc(t *testing.T, u *UI, ss *session, path string, want int) *goquery.Document {
	t.Helper()
	return trustAnswer(t, serveSession(u, ss, http.MethodGet, path, nil), want)
}

func trustAnswer(t *testing.T, w *httptest.ResponseRecorder, want int) *goquery.Document {
	t.Helper()
	if w.Code != want {
		t.Fatalf("status %d, want %d; body:\n%s", w.Code, want, w.Body.String())
	}
	return parseHTML(t, w)
}

// trustPost posts form and requires a redirect to want; it returns the
// flash message of the page it leads to.
func trustPostRedirect(t *testing.T, u *UI, ss *session, path string, form url.Values, want string) string {
	t.Helper()
	w := serveSession(u, ss, http.MethodPost, path, form)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != want {
		t.Fatalf("POST %s: %d to %q, want 303 to %q; body:\n%s", path, w.Code, w.Header().Get("Location"), want, w.Body.String())
	}
	doc := trustDoc(t, u, ss, "/trust", http.StatusOK)
	return textOf(doc.Find(byTestID("flash")))
}

// trustUpload posts the upload form as multipart, with files by field.
func trustUpload(u *UI, ss *session, fields map[string]string, files map[string][]byte) *httptest.ResponseRecorder {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	for field, data := range files {
		fw, _ := mw.CreateFormFile(field, field+".pem")
		_, _ = fw.Write(data)
	}
	_ = mw.Close()
	r := httptest.NewRequest(http.MethodPost, "/trust/upload", &body)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: ss.id})
	w := httptest.NewRecorder()
	u.Handler().ServeHTTP(w, r)
	return w
}

// applyUpload stages data as an upload to list and applies it.
func applyUpload(t *testing.T, f *trustFake, list trust.ListName, name string, data []byte) trust.Version {
	t.Helper()
	v, err := f.StageUpload(list, name, data, "test")
	if err != nil {
		t.Fatal(err)
	}
	applied, err := f.Apply(context.Background(), v.Number, trust.ApplyOptions{By: "test", Confirm: true})
	if err != nil {
		t.Fatal(err)
	}
	return applied
}

// entryRow selects the applied-list row of the entry named name.
func entryRow(doc *goquery.Document, name string) *goquery.Selection {
	return doc.Find(byTestID("trust-entry-row") + `[data-name="` + name + `"]`)
}

func TestTrustPageShowsAppliedLists(t *testing.T) {
	f := newTrustFake(t)
	root := newTrustTestCert(t, "Plant Root", nil, false)
	inter := newTrustTestCert(t, "Plant Issuing CA", root, false)
	crl, next := inter.crlPEM(t)
	applyUpload(t, f, trust.TrustList, "plant-root", root.pem)
	applied := applyUpload(t, f, trust.IssuerList, "plant-issuing", append(cloneBytes(inter.pem), crl...))
	u, ss := newTrustTestUI(t, f)

	doc := trustDoc(t, u, ss, "/trust", http.StatusOK)
	if got := textOf(doc.Find(byTestID("trust-applied-version"))); got != strconv.FormatUint(applied.Number, 10) {
		t.Errorf("applied version %q, want %d", got, applied.Number)
	}
	if got := textOf(doc.Find(byTestID("trust-applied-at"))); !strings.HasSuffix(got, "by test") {
		t.Errorf("applied at %q, want who applied it", got)
	}
	rootRow := doc.Find(byTestID("trust-entries-trust")).Find(byTestID("trust-entry-row") + `[data-name="plant-root"]`)
	if rootRow.Length() != 1 {
		t.Fatalf("the trust list does not show plant-root:\n%s", textOf(doc.Find(byTestID("trust-entries-trust"))))
	}
	rootEntry := applied.List(trust.TrustList)[0]
	for id, want := range map[string]string{
		"trust-entry-source":      "upload",
		"trust-entry-subject":     "CN=Plant Root",
		"trust-entry-fingerprint": colonHex(rootEntry.Fingerprint),
	} {
		if got := textOf(rootRow.Find(byTestID(id))); got != want {
			t.Errorf("plant-root %s = %q, want %q", id, got, want)
		}
	}
	if href := rootRow.Find(byTestID("trust-entry-link")).AttrOr("href", ""); href != "/trust/trust/"+rootEntry.ID {
		t.Errorf("plant-root links to %q", href)
	}
	interRow := doc.Find(byTestID("trust-entries-issuer")).Find(byTestID("trust-entry-row") + `[data-name="plant-issuing"]`)
	if got := textOf(interRow.Find(byTestID("trust-entry-crl"))); got != formatTime(next, time.UTC) {
		t.Errorf("issuer CRL next update %q, want %q", got, formatTime(next, time.UTC))
	}
	// The local CA stays, marked as built in.
	if got := textOf(doc.Find(byTestID("trust-anchors-row"))); !strings.Contains(got, "Local Root") || !strings.Contains(got, "built in") {
		t.Errorf("built-in anchors %q, want the local root marked built in", got)
	}
	if doc.Find(byTestID("trust-vault-note")).Length() != 0 {
		t.Error("the page still says vault sync is missing")
	}
	if got := textOf(doc.Find(byTestID("trust-listeners"))); !strings.Contains(got, "with the trust and issuer lists") {
		t.Errorf("listeners %q: want them checked against the lists too", got)
	}
	if doc.Find(byTestID("trust-staged")).Length() != 0 {
		t.Error("a staged section without a staged version")
	}

	// The detail view shows every fact and the PEM.
	detail := trustDoc(t, u, ss, "/trust/trust/"+rootEntry.ID, http.StatusOK)
	for id, want := range map[string]string{
		"trust-entry-state":       "applied",
		"trust-entry-name":        "plant-root",
		"trust-entry-list":        "trust list",
		"trust-entry-subject":     "CN=Plant Root",
		"trust-entry-issuer":      "CN=Plant Root",
		"trust-entry-serial":      rootEntry.Serial,
		"trust-entry-self-signed": "yes (a root)",
		"trust-entry-ca":          "yes",
		"trust-entry-fingerprint": colonHex(rootEntry.Fingerprint),
		"trust-entry-added":       formatTime(rootEntry.AddedAt, time.UTC) + " by test",
	} {
		if got := textOf(detail.Find(byTestID(id))); got != want {
			t.Errorf("detail %s = %q, want %q", id, got, want)
		}
	}
	if got := detail.Find(byTestID("trust-entry-pem")).Text(); got != string(root.pem) {
		t.Errorf("detail PEM %q, want the certificate", got)
	}
	if detail.Find(byTestID("trust-entry-delete-form")).Length() != 1 {
		t.Error("no delete form on an applied entry")
	}
	pemAnswer := serveSession(u, ss, http.MethodGet, detail.Find(byTestID("trust-entry-download")).AttrOr("href", ""), nil)
	if pemAnswer.Code != http.StatusOK || pemAnswer.Body.String() != string(root.pem) ||
		!strings.Contains(pemAnswer.Header().Get("Content-Disposition"), `filename=plant-root.pem`) {
		t.Errorf("PEM download: %d %q %q", pemAnswer.Code, pemAnswer.Header().Get("Content-Disposition"), pemAnswer.Body.String())
	}
	trustDoc(t, u, ss, "/trust/trust/0000000000000000", http.StatusNotFound)
	trustDoc(t, u, ss, "/trust/nolist/"+rootEntry.ID, http.StatusNotFound)
}

// cloneBytes copies b, so that appending to it leaves b alone.
func cloneBytes(b []byte) []byte { return append([]byte(nil), b...) }

func TestTrustUploadIsStagedForReview(t *testing.T) {
	f := newTrustFake(t)
	ca := newTrustTestCert(t, "Sensor CA", nil, false)
	leaf := newTrustTestCert(t, "not-a-ca", ca, true)
	u, ss := newTrustTestUI(t, f)

	// A CA file (DER) and a leaf pasted as PEM: the leaf is rejected.
	w := trustUpload(u, ss, map[string]string{"list": "trust", "name": "sensors", "pem": string(leaf.pem)},
		map[string][]byte{"file": ca.cert.Raw})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/trust#staged" {
		t.Fatalf("upload: %d to %q; body:\n%s", w.Code, w.Header().Get("Location"), w.Body.String())
	}
	doc := trustDoc(t, u, ss, "/trust", http.StatusOK)
	staged, ok, err := f.Staged()
	if err != nil || !ok {
		t.Fatalf("nothing staged after the upload (%v)", err)
	}
	if got := textOf(doc.Find(byTestID("flash"))); !strings.Contains(got, "select Apply") || !strings.Contains(got, "rejected") {
		t.Errorf("flash %q: want it to say to review and apply, and that something was rejected", got)
	}
	if got := textOf(doc.Find(byTestID("trust-staged-version"))); got != strconv.FormatUint(staged.Number, 10) {
		t.Errorf("staged version %q, want %d", got, staged.Number)
	}
	if got := textOf(doc.Find(byTestID("trust-staged-origin"))); !strings.HasPrefix(got, "upload") {
		t.Errorf("staged origin %q", got)
	}
	if got := textOf(doc.Find(byTestID("trust-staged-created"))); !strings.HasSuffix(got, "by "+author) {
		t.Errorf("staged created %q, want by %q", got, author)
	}
	added := doc.Find(byTestID("trust-diff-added"))
	if added.Length() != 1 {
		t.Fatalf("%d added rows, want 1 (the CA):\n%s", added.Length(), textOf(doc.Find(byTestID("trust-staged"))))
	}
	entry := staged.List(trust.TrustList)[0]
	if got := textOf(added.Find(byTestID("trust-diff-subject"))); got != "CN=Sensor CA" {
		t.Errorf("added subject %q", got)
	}
	if got := textOf(added.Find(byTestID("trust-diff-fingerprint"))); got != colonHex(entry.Fingerprint) {
		t.Errorf("added fingerprint %q, want %q", got, colonHex(entry.Fingerprint))
	}
	rejected := doc.Find(byTestID("trust-rejected-row"))
	if rejected.Length() != 1 || !strings.Contains(textOf(rejected), "sensors-2") || textOf(rejected.Find(byTestID("trust-rejected-reason"))) == "" {
		t.Errorf("rejected rows %q, want sensors-2 with its reason", textOf(rejected))
	}
	if doc.Find(byTestID("trust-entries-trust")).Find(byTestID("trust-entry-row")).Length() != 0 {
		t.Error("the staged CA shows in the applied list before apply")
	}
	if got := doc.Find(byTestID("trust-apply-form")+` input[name="version"]`).AttrOr("value", ""); got != strconv.FormatUint(staged.Number, 10) {
		t.Errorf("the apply form posts version %q, want %d", got, staged.Number)
	}

	// Its details can be read before apply.
	link := added.Find(byTestID("trust-diff-link")).AttrOr("href", "")
	detail := trustDoc(t, u, ss, link, http.StatusOK)
	if got := textOf(detail.Find(byTestID("trust-entry-state"))); got != "staged" {
		t.Errorf("staged entry state %q", got)
	}
	if !strings.Contains(textOf(detail.Find(byTestID("trust-entry-staged"))), "select Apply") {
		t.Error("the staged entry's page does not say it needs Apply")
	}
	if got := textOf(detail.Find(byTestID("trust-entry-subject"))); got != "CN=Sensor CA" {
		t.Errorf("staged entry subject %q", got)
	}
	if detail.Find(byTestID("trust-entry-delete-form")).Length() != 0 {
		t.Error("a staged entry offers Delete")
	}

	// Apply: the CA moves to the applied list.
	flash := trustPostRedirect(t, u, ss, "/trust/apply", url.Values{"version": {strconv.FormatUint(staged.Number, 10)}}, "/trust")
	if !strings.Contains(flash, fmt.Sprintf("Version %d applied", staged.Number)) {
		t.Errorf("flash after apply %q", flash)
	}
	doc = trustDoc(t, u, ss, "/trust", http.StatusOK)
	if entryRow(doc, "sensors").Length() != 1 || doc.Find(byTestID("trust-staged")).Length() != 0 {
		t.Error("after apply the CA is not in the applied list, or something is still staged")
	}
	if a, _ := f.Applied(); a.AppliedBy != author {
		t.Errorf("applied by %q, want %q", a.AppliedBy, author)
	}
}

func TestTrustUploadErrors(t *testing.T) {
	f := newTrustFake(t)
	u, ss := newTrustTestUI(t, f)
	tests := []struct {
		name   string
		fields map[string]string
		files  map[string][]byte
		field  string // the data-testid of the error
		want   string
	}{
		{"bad PEM", map[string]string{"list": "trust", "pem": "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"}, nil,
			"trust-upload-error", "The upload was refused: PEM block 1 (CERTIFICATE)"},
		{"not PEM", map[string]string{"list": "trust", "pem": "hello"}, nil, "trust-upload-error", "The upload was refused: neither PEM nor"},
		{"nothing", map[string]string{"list": "trust"}, nil, "trust-upload-pem-error", "Paste a PEM certificate"},
		{"bad list", map[string]string{"list": "other", "pem": "x"}, nil, "trust-upload-list-error", "Choose the trust list"},
		{"too large", map[string]string{"list": "trust"}, map[string][]byte{"file": make([]byte, trust.MaxBundleSize+1)},
			"trust-upload-file-error", "too large"},
		{"bad DER file beside PEM", map[string]string{"list": "trust", "pem": string(newTrustTestCert(t, "x", nil, false).pem)},
			map[string][]byte{"crl": []byte("garbage")}, "trust-upload-error", "The upload was refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := trustAnswer(t, trustUpload(u, ss, tt.fields, tt.files), http.StatusUnprocessableEntity)
			if got := textOf(doc.Find(byTestID(tt.field))); !strings.Contains(got, tt.want) {
				t.Errorf("%s = %q, want %q", tt.field, got, tt.want)
			}
			if _, ok, _ := f.Staged(); ok {
				t.Error("a refused upload staged a version")
			}
			if tt.fields["pem"] != "" && doc.Find(byTestID("trust-upload-pem")).Text() != tt.fields["pem"] {
				t.Error("the pasted PEM is not kept in the form")
			}
		})
	}
}

func TestTrustApplyAsksBeforeLockingClientsOut(t *testing.T) {
	f := newTrustFake(t)
	inUse := newTrustTestCert(t, "In-use CA", nil, false)
	other := newTrustTestCert(t, "Other CA", nil, false)
	applyUpload(t, f, trust.TrustList, "in-use", inUse.pem)
	before := applyUpload(t, f, trust.TrustList, "other", other.pem)
	u, ss := newTrustTestUI(t, f)

	doc := trustDoc(t, u, ss, "/trust", http.StatusOK)
	row := entryRow(doc, "in-use")
	if q := row.Find(byTestID("trust-entry-delete")).AttrOr("data-confirm", ""); !strings.Contains(q, "Nothing changes until you apply") {
		t.Errorf("delete asks %q", q)
	}
	del := row.Find(byTestID("trust-entry-delete")).AttrOr("action", "")
	trustPostRedirect(t, u, ss, del, url.Values{}, "/trust#staged")
	staged, ok, _ := f.Staged()
	if !ok {
		t.Fatal("delete staged nothing")
	}
	doc = trustDoc(t, u, ss, "/trust", http.StatusOK)
	if got := textOf(doc.Find(byTestID("trust-diff-removed"))); !strings.Contains(got, "in-use") {
		t.Errorf("removed rows %q, want in-use", got)
	}

	// Three clients use the CA: the first apply only asks.
	f.setSessions(3)
	form := url.Values{"version": {strconv.FormatUint(staged.Number, 10)}}
	doc = trustAnswer(t, serveSession(u, ss, http.MethodPost, "/trust/apply", form), http.StatusConflict)
	if got := textOf(doc.Find(byTestID("trust-confirm-sessions"))); got != "3" {
		t.Errorf("sessions %q, want 3", got)
	}
	if got := textOf(doc.Find(byTestID("trust-confirm-cas"))); got != "in-use" {
		t.Errorf("CAs %q, want in-use", got)
	}
	if doc.Find(byTestID("trust-confirm-empties")).Length() != 0 {
		t.Error("says the trust list becomes empty; other stays")
	}
	if got := textOf(doc.Find(byTestID("trust-confirm-reason"))); !strings.Contains(got, "Nothing was changed") || !strings.Contains(got, "3 clients are connected") {
		t.Errorf("reason %q", got)
	}
	if now, _ := f.Applied(); now.Number != before.Number || len(now.Entries) != 2 {
		t.Fatalf("applied version %d with %d entries after an unconfirmed apply; want %d unchanged", now.Number, len(now.Entries), before.Number)
	}
	confirm := doc.Find(byTestID("trust-confirm-form"))
	if confirm.AttrOr("action", "") != "/trust/apply" ||
		confirm.Find(`input[name="confirm"]`).AttrOr("value", "") != "1" ||
		confirm.Find(`input[name="version"]`).AttrOr("value", "") != strconv.FormatUint(staged.Number, 10) {
		html, _ := goquery.OuterHtml(confirm)
		t.Errorf("the Apply anyway form: %s", html)
	}

	// Apply anyway.
	form.Set("confirm", "1")
	trustPostRedirect(t, u, ss, "/trust/apply", form, "/trust")
	now, _ := f.Applied()
	if now.Number != staged.Number || len(now.List(trust.TrustList)) != 1 || now.List(trust.TrustList)[0].Name != "other" {
		t.Errorf("after Apply anyway: version %d with %v", now.Number, now.Entries)
	}

	// Rolling back asks the same way when it removes a CA in use.
	doc = trustDoc(t, u, ss, "/trust", http.StatusOK)
	if doc.Find(byTestID("trust-rollback-form")).Length() != 1 {
		t.Fatal("no rollback form with a previous version")
	}
	if rows := doc.Find(byTestID("trust-history-row")); rows.Length() < 3 || rows.First().AttrOr("data-version", "") != strconv.FormatUint(now.Number, 10) {
		t.Errorf("history: %d rows, first %q; want the newest first", rows.Length(), rows.First().AttrOr("data-version", ""))
	}
	// No CA in use is removed by this rollback: it is applied at once.
	trustPostRedirect(t, u, ss, "/trust/rollback", url.Values{}, "/trust")
	if back, _ := f.Applied(); len(back.List(trust.TrustList)) != 2 {
		t.Errorf("after rollback the trust list holds %d entries, want 2", len(back.List(trust.TrustList)))
	}
}

func TestTrustRollbackConfirmation(t *testing.T) {
	f := newTrustFake(t)
	a := newTrustTestCert(t, "A CA", nil, false)
	b := newTrustTestCert(t, "B CA", nil, false)
	applyUpload(t, f, trust.TrustList, "a", a.pem)
	applyUpload(t, f, trust.TrustList, "b", b.pem) // rollback would remove b
	u, ss := newTrustTestUI(t, f)
	f.setSessions(1)

	doc := trustAnswer(t, serveSession(u, ss, http.MethodPost, "/trust/rollback", url.Values{}), http.StatusConflict)
	confirm := doc.Find(byTestID("trust-confirm-form"))
	if confirm.AttrOr("action", "") != "/trust/rollback" || confirm.Find(`input[name="confirm"]`).AttrOr("value", "") != "1" {
		t.Fatalf("no Roll back anyway form: %q", textOf(doc.Find(byTestID("trust-confirm"))))
	}
	if got := textOf(doc.Find(byTestID("trust-confirm-cas"))); got != "b" {
		t.Errorf("CAs %q, want b", got)
	}
	if now, _ := f.Applied(); len(now.Entries) != 2 {
		t.Fatal("an unconfirmed rollback changed the lists")
	}
	trustPostRedirect(t, u, ss, "/trust/rollback", url.Values{"confirm": {"1"}}, "/trust")
	if now, _ := f.Applied(); len(now.Entries) != 1 || now.Entries[0].Name != "a" {
		t.Errorf("after Roll back anyway: %v", now.Entries)
	}
}

func TestTrustDeleteOfSyncedEntryStagesTombstone(t *testing.T) {
	f := newTrustFake(t)
	ca := newTrustTestCert(t, "Fleet CA", nil, false)
	f.turnVaultOn(trustsync.Status{Address: "https://vault.example:8200"})
	f.putSecret(trust.TrustList, "fleet-ca", 4, ca.pem)
	v, err := f.AddFromVault(context.Background(), trust.TrustList, "fleet-ca", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Apply(context.Background(), v.Number, trust.ApplyOptions{By: "test"}); err != nil {
		t.Fatal(err)
	}
	u, ss := newTrustTestUI(t, f)

	doc := trustDoc(t, u, ss, "/trust", http.StatusOK)
	row := entryRow(doc, "fleet-ca")
	if got := textOf(row.Find(byTestID("trust-entry-source"))); got != "vault fleet-ca v4" {
		t.Errorf("source %q, want vault fleet-ca v4", got)
	}
	q := row.Find(byTestID("trust-entry-delete")).AttrOr("data-confirm", "")
	if !strings.Contains(q, "vault keeps its secret") || !strings.Contains(q, "added from the vault again") {
		t.Errorf("the delete question of a synced entry %q: want it to say the vault keeps it", q)
	}
	// Every vault secret is applied: nothing to add.
	if doc.Find(byTestID("trust-vault-secret-row")).Length() != 0 {
		t.Error("an applied vault secret is offered for adding")
	}

	flash := trustPostRedirect(t, u, ss, row.Find(byTestID("trust-entry-delete")).AttrOr("action", ""), url.Values{}, "/trust#staged")
	if !strings.Contains(flash, "The vault keeps its secret") {
		t.Errorf("flash %q", flash)
	}
	doc = trustDoc(t, u, ss, "/trust", http.StatusOK)
	if got := textOf(doc.Find(byTestID("trust-tombstone-row"))); !strings.Contains(got, "fleet-ca") || !strings.Contains(got, author) {
		t.Errorf("tombstones %q, want fleet-ca removed by %s", got, author)
	}
	if entryRow(doc, "fleet-ca").Length() != 1 {
		t.Error("the entry left the applied list before apply")
	}
	// Deleting it again: its removal is staged already.
	w := serveSession(u, ss, http.MethodPost, row.Find(byTestID("trust-entry-delete")).AttrOr("action", ""), url.Values{})
	doc = trustAnswer(t, w, http.StatusNotFound)
	if textOf(doc.Find(byTestID("trust-delete-error"))) == "" {
		t.Error("no error next to the lists for a second delete")
	}

	// Discard drops the staged removal.
	trustPostRedirect(t, u, ss, "/trust/discard", url.Values{}, "/trust")
	if _, ok, _ := f.Staged(); ok {
		t.Error("still staged after Discard")
	}
	doc = trustAnswer(t, serveSession(u, ss, http.MethodPost, "/trust/discard", url.Values{}), http.StatusConflict)
	if got := textOf(doc.Find(byTestID("trust-discard-error"))); !strings.Contains(got, "Nothing is staged") {
		t.Errorf("discarding with nothing staged says %q", got)
	}
}

func TestTrustVaultOffPointsToSettings(t *testing.T) {
	f := newTrustFake(t)
	u, ss := newTrustTestUI(t, f)
	doc := trustDoc(t, u, ss, "/trust", http.StatusOK)
	off := doc.Find(byTestID("trust-sync-off"))
	if !strings.Contains(textOf(off), "trust.vault.address") || off.Find(`a[href="/settings"]`).Length() != 1 {
		t.Errorf("vault-off notice %q: want trust.vault.address and a link to the settings", textOf(off))
	}
	if got := textOf(doc.Find(byTestID("trust-sync-device"))); got != "gw-test" {
		t.Errorf("device id %q", got)
	}
	if _, disabled := doc.Find(byTestID("trust-sync-submit")).Attr("disabled"); !disabled {
		t.Error("Sync now is enabled without a vault")
	}
	for _, id := range []string{"trust-vault-off", "trust-fleet-off"} {
		if doc.Find(byTestID(id)).Length() != 1 {
			t.Errorf("no %s", id)
		}
	}
	doc = trustAnswer(t, serveSession(u, ss, http.MethodPost, "/trust/sync", url.Values{}), http.StatusConflict)
	if got := textOf(doc.Find(byTestID("trust-sync-error"))); got != msgVaultOff {
		t.Errorf("sync error %q, want %q", got, msgVaultOff)
	}
	doc = trustAnswer(t, serveSession(u, ss, http.MethodPost, "/trust/from-vault", url.Values{"list": {"trust"}, "name": {"x"}}), http.StatusConflict)
	if got := textOf(doc.Find(byTestID("trust-vault-error"))); got != msgVaultOff {
		t.Errorf("add-from-vault error %q", got)
	}
}

func TestTrustVaultErrorsShowAsText(t *testing.T) {
	f := newTrustFake(t)
	f.turnVaultOn(trustsync.Status{
		Address: "https://vault.example:8200", Path: "secret/edgegate", Method: "cert",
		SyncStatus: vault.SyncStatus{LastError: "vault sync: GET /v1/secret/metadata/edgegate/trust: status 503: vault: unavailable", ConsecutiveFailures: 4},
	})
	f.secretsErr = fmt.Errorf("GET /v1/secret/metadata/edgegate/trust: status 503: %w", vault.ErrUnavailable)
	f.fleetErr = errors.New("internal: do not show this")
	f.syncErr = fmt.Errorf("vault sync: GET /v1/secret/metadata/edgegate/trust: status 403 [\"permission denied\"]: %w", vault.ErrForbidden)
	u, ss := newTrustTestUI(t, f)

	doc := trustDoc(t, u, ss, "/trust", http.StatusOK)
	for id, want := range map[string]string{
		"trust-sync-address":    "https://vault.example:8200",
		"trust-sync-path":       "secret/edgegate",
		"trust-sync-method":     "cert",
		"trust-sync-failures":   "4",
		"trust-sync-last-error": "vault sync: GET /v1/secret/metadata/edgegate/trust: status 503: vault: unavailable",
	} {
		if got := textOf(doc.Find(byTestID(id))); got != want {
			t.Errorf("%s = %q, want %q", id, got, want)
		}
	}
	if got := textOf(doc.Find(byTestID("trust-vault-problem"))); !strings.Contains(got, "status 503: vault: unavailable") {
		t.Errorf("vault secrets problem %q", got)
	}
	if got := textOf(doc.Find(byTestID("trust-fleet-problem"))); strings.Contains(got, "internal") || !strings.Contains(got, "gateway's log") {
		t.Errorf("fleet problem %q: an internal error must not be shown", got)
	}
	doc = trustAnswer(t, serveSession(u, ss, http.MethodPost, "/trust/sync", url.Values{}), http.StatusBadGateway)
	if got := textOf(doc.Find(byTestID("trust-sync-error"))); !strings.Contains(got, `"permission denied"`) || !strings.Contains(got, "vault: permission denied") {
		t.Errorf("sync error %q, want the vault's answer", got)
	}
}

func TestTrustAddFromVaultAndFleet(t *testing.T) {
	f := newTrustFake(t)
	synced := newTrustTestCert(t, "Synced CA", nil, false)
	fresh := newTrustTestCert(t, "Fresh CA", nil, false)
	f.turnVaultOn(trustsync.Status{Address: "https://vault.example:8200", SyncStatus: vault.SyncStatus{LastSuccess: time.Now()}})
	f.putSecret(trust.TrustList, "synced", 1, synced.pem)
	f.putSecret(trust.TrustList, "fresh", 2, fresh.pem)
	v, err := f.AddFromVault(context.Background(), trust.TrustList, "synced", "test")
	if err != nil {
		t.Fatal(err)
	}
	applied, err := f.Apply(context.Background(), v.Number, trust.ApplyOptions{By: "test"})
	if err != nil {
		t.Fatal(err)
	}
	f.fleet = []vault.DeviceStatus{
		{DeviceID: "gw-test", Hostname: "here", AppliedVersion: applied.Number, SyncedAt: time.Now(),
			Fingerprints: map[string][]string{"trust": {applied.Entries[0].Fingerprint}}},
		{DeviceID: "gw-other", Hostname: "there", AppliedVersion: 9, SyncedAt: time.Now(), LastError: "vault: unavailable",
			Fingerprints: map[string][]string{"trust": {"00"}}},
	}
	u, ss := newTrustTestUI(t, f)

	doc := trustDoc(t, u, ss, "/trust", http.StatusOK)
	rows := doc.Find(byTestID("trust-vault-secret-row"))
	if rows.Length() != 1 || rows.AttrOr("data-name", "") != "fresh" {
		t.Fatalf("vault secrets offered: %q; want only fresh", textOf(rows))
	}
	states := map[string]string{}
	doc.Find(byTestID("trust-fleet-row")).Each(func(_ int, s *goquery.Selection) {
		states[s.AttrOr("data-device", "")] = textOf(s.Find(byTestID("trust-fleet-state")))
	})
	if states["gw-test"] != "in step" || states["gw-other"] != "behind or different" {
		t.Errorf("fleet states %v", states)
	}
	if !strings.Contains(textOf(doc.Find(byTestID("trust-fleet-row")+`[data-device="gw-test"]`)), "this gateway") {
		t.Error("this gateway is not marked in the fleet")
	}

	form := url.Values{"list": {rows.Find(`input[name="list"]`).AttrOr("value", "")}, "name": {rows.Find(`input[name="name"]`).AttrOr("value", "")}}
	flash := trustPostRedirect(t, u, ss, "/trust/from-vault", form, "/trust#staged")
	if !strings.Contains(flash, `"fresh" staged`) {
		t.Errorf("flash %q", flash)
	}
	doc = trustDoc(t, u, ss, "/trust", http.StatusOK)
	if got := textOf(doc.Find(byTestID("trust-diff-added"))); !strings.Contains(got, "fresh") || !strings.Contains(got, "vault fresh v2") {
		t.Errorf("added %q, want fresh from the vault", got)
	}
	doc = trustAnswer(t, serveSession(u, ss, http.MethodPost, "/trust/from-vault", url.Values{"list": {"trust"}, "name": {"gone"}}), http.StatusNotFound)
	if got := textOf(doc.Find(byTestID("trust-vault-error"))); !strings.Contains(got, `no secret "gone"`) {
		t.Errorf("add of a missing secret: %q", got)
	}

	// Sync now reports what it did.
	flash = trustPostRedirect(t, u, ss, "/trust/sync", url.Values{}, "/trust")
	if !strings.HasPrefix(flash, "Vault sync done: 2 secrets listed") {
		t.Errorf("sync flash %q", flash)
	}
}

func TestTrustPageWithoutTrustStore(t *testing.T) {
	u, ss := newTrustTestUI(t, nil)
	doc := trustDoc(t, u, ss, "/trust", http.StatusOK)
	if doc.Find(byTestID("trust-anchors-row")).Length() != 1 || doc.Find(byTestID("trust-listeners")).Length() != 1 {
		t.Error("the built-in lists and the listeners are not shown")
	}
	for _, id := range []string{"trust-vault-note", "trust-sync", "trust-upload", "trust-staged"} {
		if doc.Find(byTestID(id)).Length() != 0 {
			t.Errorf("%s shown on a gateway without the trust store", id)
		}
	}
	if strings.Contains(textOf(doc.Find("main")), "built in") {
		t.Error("built in badges without the lists")
	}
	trustAnswer(t, serveSession(u, ss, http.MethodPost, "/trust/apply", url.Values{"version": {"1"}}), http.StatusServiceUnavailable)
}

func TestTrustNeedsALogin(t *testing.T) {
	u, _ := newTrustTestUI(t, newTrustFake(t))
	for _, target := range []string{"/trust", "/trust/trust/abc"} {
		w := httptest.NewRecorder()
		u.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/login") {
			t.Errorf("GET %s without a session: %d to %q", target, w.Code, w.Header().Get("Location"))
		}
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/trust/apply", strings.NewReader("version=1&confirm=1"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	u.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusSeeOther {
		t.Errorf("POST without a session: %d", w.Code)
	}
}

func TestTrustCrossSitePostRefused(t *testing.T) {
	f := newTrustFake(t)
	applyUpload(t, f, trust.TrustList, "x", newTrustTestCert(t, "X", nil, false).pem)
	u, ss := newTrustTestUI(t, f)
	r := httptest.NewRequest(http.MethodPost, "/trust/rollback", strings.NewReader("confirm=1"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: ss.id})
	w := httptest.NewRecorder()
	u.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Errorf("cross-site POST: status %d, want 403", w.Code)
	}
}
