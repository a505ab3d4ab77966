package e2e

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"software.sslmate.com/src/go-pkcs12"
)

// certUISubmit clicks a submit button and waits for the page the answer
// leads to, requiring it to load with status want.
func certUISubmit(ctx context.Context, t *testing.T, what string, button chromedp.CSS, want int) {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(button))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if resp.Status != int64(want) {
		t.Fatalf("%s: page loaded with status %d, want %d", what, resp.Status, want)
	}
}

// certUIText returns the text of the first element sel matches, with its
// white space collapsed.
func certUIText(ctx context.Context, t *testing.T, sel chromedp.CSS) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return strings.Join(strings.Fields(s), " ")
}

// certUIDownload clicks link, lets the browser save the file into a fresh
// directory and returns the file's suggested name and its content.
func certUIDownload(ctx context.Context, t *testing.T, link chromedp.CSS) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	// Both subscriptions start now, before the click.
	begin := chromedp.Events(ctx, browser.DownloadWillBegin)
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	if err := chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				// Files are saved under their GUID: the suggested name is
				// checked from the event, not left to the browser's renaming.
				Behavior:      browser.SetDownloadBehaviorBehaviorAllowAndName,
				DownloadPath:  dir,
				EventsEnabled: new(true),
			})
			return err
		}),
		chromedp.Click(link),
	); err != nil {
		t.Fatalf("download %s: %v", link, err)
	}
	var name, guid string
	for ev, err := range begin {
		if err != nil {
			t.Fatalf("wait for the download to begin: %v", err)
		}
		name, guid = ev.SuggestedFilename, ev.GUID
		break
	}
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("wait for the download: %v", err)
		}
		if ev.GUID != guid {
			continue
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatalf("the browser cancelled the download of %s", name)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			break
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, guid))
	if err != nil {
		t.Fatalf("read the downloaded file: %v", err)
	}
	return name, data
}

// TestWebUISensorP12 issues a client certificate for a sensor from the
// local CA in the browser, exports it as a PKCS#12 file whose password is
// shown once, downloads the file once through the browser, and proves the
// file opens with that password and its certificate gets the sensor onto
// the MQTT/TLS listener, which requires a client certificate.
func TestWebUISensorP12(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, obj{
		"auth":      obj{"allow_anonymous": true},
		"listeners": obj{"tls": obj{"tls": obj{"client_auth": "required", "client_ca": "local"}}},
	})
	ctx := newBrowser(t)
	webLogin(ctx, t, d)

	// Issue the sensor's certificate.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/certificates"),
		chromedp.WaitVisible(dataTestID("certificates")),
		chromedp.Click(dataTestID("create-toggle")),
		chromedp.WaitVisible(dataTestID("create-form")),
		chromedp.SendKeys(dataTestID("create-name"), "sensor-ui-1"),
		chromedp.SendKeys(dataTestID("create-cn"), "sensor-ui-1"),
		chromedp.Click(dataTestID("create-usage-client")),
	); err != nil {
		t.Fatalf("fill the create form: %v", err)
	}
	shot(ctx, t, "certificate-create")
	certUISubmit(ctx, t, "issue the sensor certificate", dataTestID("create-submit"), http.StatusOK)
	if got := certUIText(ctx, t, dataTestID("flash")); got != `Certificate "sensor-ui-1" issued by the local CA.` {
		t.Errorf("after issuing, the page says %q", got)
	}
	for sel, want := range map[string]string{
		"certificate-subject": "CN=sensor-ui-1",
		"certificate-status":  "valid",
		"certificate-usage":   "TLS client",
		"certificate-has-key": "kept on the gateway",
	} {
		if got := certUIText(ctx, t, dataTestID(sel)); got != want {
			t.Errorf("detail %s = %q, want %q", sel, got, want)
		}
	}
	detail, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	shot(ctx, t, "certificate-detail")

	// The list shows it, valid, beside the listeners' own certificate.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/certificates"),
		chromedp.WaitVisible(dataTestID("certificates")),
	); err != nil {
		t.Fatal(err)
	}
	row := `[data-testid="certificate-row"][data-id="` + strings.TrimPrefix(detail, d.webBase+"/certificates/") + `"] `
	if got := certUIText(ctx, t, chromedp.CSS(row+`[data-testid="certificate-status"]`)); got != "valid" {
		t.Errorf("the list shows the new certificate as %q", got)
	}
	if got := certUIText(ctx, t, chromedp.CSS(`[data-testid="certificate-row"][data-id="local-server"] [data-testid="certificate-usage"]`)); !strings.Contains(got, "served by the TLS listeners") {
		t.Errorf("the listeners' certificate shows usage %q", got)
	}
	shot(ctx, t, "certificates")

	// Export it: the password is shown once, the file is downloaded once.
	if err := chromedp.Do(ctx, chromedp.Navigate(detail), chromedp.WaitVisible(dataTestID("export-form"))); err != nil {
		t.Fatal(err)
	}
	certUISubmit(ctx, t, "export the p12", dataTestID("export-submit"), http.StatusOK)
	password := certUIText(ctx, t, dataTestID("export-password"))
	if len(password) < 20 {
		t.Fatalf("export password %q: want a long generated one", password)
	}
	attrs, err := chromedp.Run(ctx, chromedp.Attributes(dataTestID("export-download")))
	if err != nil {
		t.Fatal(err)
	}
	link := attrs["href"]
	shot(ctx, t, "certificate-export")
	name, p12 := certUIDownload(ctx, t, dataTestID("export-download"))
	if name != "sensor-ui-1.p12" {
		t.Errorf("downloaded file name %q, want sensor-ui-1.p12", name)
	}
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(d.webBase+link))
	if err != nil {
		t.Fatalf("open the download link again: %v", err)
	}
	if resp.Status != http.StatusNotFound {
		t.Errorf("the download link a second time: status %d, want 404", resp.Status)
	}

	// The file holds the key and a certificate of the local CA for the sensor.
	key, leaf, cas, err := pkcs12.DecodeChain(p12, password)
	if err != nil {
		t.Fatalf("open the p12 with the password shown: %v", err)
	}
	if leaf.Subject.CommonName != "sensor-ui-1" {
		t.Errorf("p12 certificate CN %q, want sensor-ui-1", leaf.Subject.CommonName)
	}
	inter := x509.NewCertPool()
	for _, c := range cas {
		inter.AddCert(c)
	}
	roots := localCAPool(t, d)
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("the p12 certificate does not verify against the local CA: %v", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		t.Fatalf("the p12 key is a %T", key)
	}

	// The sensor connects with it; without a certificate it cannot.
	mctx := testContext(t, 30*time.Second)
	cert := tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: signer, Leaf: leaf}
	for _, c := range cas {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	g := mustConnectGo(mctx, t, tlsDialer(d.addr("tls"), cfg), connOpts{clientID: "sensor-ui-1"})
	if g.connack.ReasonCode != 0 {
		t.Errorf("CONNACK reason 0x%02x, want success", g.connack.ReasonCode)
	}
	noCert := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if _, err := connectGo(mctx, t, tlsDialer(d.addr("tls"), noCert), connOpts{clientID: "no-cert"}); err == nil {
		t.Error("a client without certificate connected: the listener does not require one, so the test proves nothing")
	}
}
