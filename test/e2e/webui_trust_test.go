package e2e

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// trustUISubmit clicks a submit button and waits for the page the answer
// leads to (after the post/redirect/get), requiring it to load with want.
func trustUISubmit(ctx context.Context, t *testing.T, what string, button chromedp.CSS, want int) {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(button))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if resp.Status != int64(want) {
		t.Fatalf("%s: page loaded with status %d, want %d", what, resp.Status, want)
	}
}

// trustUIText returns the text of the first element sel matches, with its
// white space collapsed.
func trustUIText(ctx context.Context, t *testing.T, sel chromedp.CSS) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return strings.Join(strings.Fields(s), " ")
}

// TestWebUITrustUploadApply uploads a CA certificate on the Trust &
// issuers page, reviews it staged (the diff and its details), applies it,
// and proves a sensor with a client certificate from that CA then gets onto
// the mTLS listener, which refused it before — without a restart.
func TestWebUITrustUploadApply(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, obj{
		"auth":      obj{"allow_anonymous": true},
		"listeners": obj{"tls": obj{"tls": obj{"client_auth": "required", "client_ca": "local"}}},
	})
	ca := newTestCA(t, "Sensor Fleet CA")
	sensor := ca.issueClient(t, "sensor-trust-1")
	roots := localCAPool(t, d)
	mctx := testContext(t, 60*time.Second)
	if canConnect(mctx, t, d, roots, sensor, "sensor-trust-1") {
		t.Fatal("a client of the fleet CA connected before the CA was trusted: the test proves nothing")
	}

	ctx := newBrowser(t)
	webLogin(ctx, t, d)
	caFile := filepath.Join(t.TempDir(), "fleet-ca.pem")
	writeFile(t, caFile, ca.certPEM)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/trust"),
		chromedp.WaitVisible(dataTestID("trust-upload-form")),
		chromedp.Click(dataTestID("trust-upload-list-trust")),
		chromedp.SendKeys(dataTestID("trust-upload-name"), "fleet-ca"),
		chromedp.SetUploadFiles(dataTestID("trust-upload-file"), []string{caFile}),
	); err != nil {
		t.Fatalf("fill the upload form: %v", err)
	}
	if got := trustUIText(ctx, t, dataTestID("trust-sync-off")); !strings.Contains(got, "trust.vault.address") {
		t.Errorf("without a vault the sync panel says %q", got)
	}
	trustUISubmit(ctx, t, "upload the CA", dataTestID("trust-upload-submit"), http.StatusOK)

	// Staged, not applied: the diff shows it with its subject and fingerprint.
	if got := trustUIText(ctx, t, dataTestID("flash")); !strings.Contains(got, "select Apply") {
		t.Errorf("after the upload the page says %q", got)
	}
	added := `[data-testid="trust-diff-added"][data-list="trust"] `
	if got := trustUIText(ctx, t, chromedp.CSS(added+`[data-testid="trust-diff-subject"]`)); got != "CN=Sensor Fleet CA" {
		t.Errorf("staged subject %q", got)
	}
	if got := trustUIText(ctx, t, chromedp.CSS(added+`[data-testid="trust-diff-fingerprint"]`)); got != fingerprint(ca.cert.Raw) {
		t.Errorf("staged fingerprint %q, want %q", got, fingerprint(ca.cert.Raw))
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](
		`document.querySelectorAll('[data-testid="trust-entries-trust"] [data-testid="trust-entry-row"]').length`)); err != nil || n != 0 {
		t.Errorf("applied trust list rows before apply: %d (%v), want 0", n, err)
	}
	shot(ctx, t, "trust-staged")
	if canConnect(mctx, t, d, roots, sensor, "sensor-trust-1") {
		t.Error("the sensor connected while its CA was only staged")
	}

	// Its details, before apply.
	trustUISubmit(ctx, t, "open the staged entry", chromedp.CSS(added+`[data-testid="trust-diff-link"]`), http.StatusOK)
	for sel, want := range map[string]string{
		"trust-entry-state":       "staged",
		"trust-entry-name":        "fleet-ca",
		"trust-entry-subject":     "CN=Sensor Fleet CA",
		"trust-entry-source":      "upload",
		"trust-entry-self-signed": "yes (a root)",
		"trust-entry-fingerprint": fingerprint(ca.cert.Raw),
	} {
		if got := trustUIText(ctx, t, dataTestID(sel)); got != want {
			t.Errorf("detail %s = %q, want %q", sel, got, want)
		}
	}
	if got := trustUIText(ctx, t, dataTestID("trust-entry-pem")); !strings.Contains(got, "BEGIN CERTIFICATE") {
		t.Errorf("detail PEM %q", got)
	}
	shot(ctx, t, "trust-entry")

	// Apply.
	if err := chromedp.Do(ctx, chromedp.Navigate(d.webBase+"/trust"), chromedp.WaitVisible(dataTestID("trust-apply-form"))); err != nil {
		t.Fatal(err)
	}
	trustUISubmit(ctx, t, "apply", dataTestID("trust-apply-submit"), http.StatusOK)
	if got := trustUIText(ctx, t, dataTestID("flash")); !strings.Contains(got, "applied") {
		t.Errorf("after apply the page says %q", got)
	}
	row := `[data-testid="trust-entries-trust"] [data-testid="trust-entry-row"][data-name="fleet-ca"] `
	if got := trustUIText(ctx, t, chromedp.CSS(row+`[data-testid="trust-entry-subject"]`)); got != "CN=Sensor Fleet CA" {
		t.Errorf("applied entry subject %q", got)
	}
	if got := trustUIText(ctx, t, chromedp.CSS(row+`[data-testid="trust-entry-source"]`)); got != "upload" {
		t.Errorf("applied entry source %q", got)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="trust-staged"]').length`)); err != nil || n != 0 {
		t.Errorf("still a staged version after apply (%d, %v)", n, err)
	}
	shot(ctx, t, "trust")

	// The next handshake trusts the CA: the sensor connects.
	waitUntil(mctx, t, "the sensor of the uploaded CA to connect", func() bool {
		return canConnect(mctx, t, d, roots, sensor, "sensor-trust-1")
	})
}
