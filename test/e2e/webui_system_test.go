package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// TestWebUISystem checks the System page against the real daemon: the
// version and the log (with a live line), a backup downloaded by the
// browser, and its restore through the page, after which the daemon
// re-executes itself (same process) with the backup's data.
func TestWebUISystem(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, baseSettings())
	ctx := newBrowser(t)
	acceptDialogs(ctx, t)
	d.addUser(t, "before-backup", "before-Passw0rd", false)
	webLogin(ctx, t, d)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/system"),
		chromedp.WaitVisible(dataTestID("version")),
		chromedp.WaitVisible(dataTestID("log-line")),
		chromedp.WaitReady(chromedp.CSS("body[data-live-connected]")),
	); err != nil {
		t.Fatalf("open the System page: %v", err)
	}
	// The banner's first line is "edgegate <version>  data <dir>".
	bannerVersion := strings.Fields(d.stdout.String())[1]
	if got := systemText(ctx, t, "version-number"); got != bannerVersion {
		t.Errorf("version %q, want %q as in the banner", got, bannerVersion)
	}
	if got := systemText(ctx, t, "data-dir"); got != d.dataDir {
		t.Errorf("data directory %q, want %s", got, d.dataDir)
	}

	// A line logged now reaches the open page over its websocket.
	d.api(t, "POST", "/api/v1/traces", obj{"kind": "client", "target": "sensor-7", "name": "sensor-7"}, http.StatusCreated, nil)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.Search(`//*[@data-logs]/li[contains(., "trace started") and contains(., "sensor-7")]`))); err != nil {
		t.Fatalf("the live log did not show the trace start: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(dataTestID("trace-row"))); err != nil {
		t.Fatalf("the trace is not listed: %v", err)
	}
	shot(ctx, t, "system")

	backupFile := systemDownloadBackup(ctx, t, "backup passphrase 1")
	d.addUser(t, "after-backup", "after-Passw0rd", false)

	// Restore it through the page; the daemon restarts in the same process.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/system"),
		chromedp.SetUploadFiles(dataTestID("restore-file"), []string{backupFile}),
		chromedp.SendKeys(dataTestID("restore-passphrase"), "backup passphrase 1"),
		chromedp.Click(dataTestID("restore-submit")),
		chromedp.WaitVisible(dataTestID("restarting")),
	); err != nil {
		t.Fatalf("restore the backup: %v", err)
	}
	systemWaitRestart(t, d, 2)
	if _, err := d.waitLog(testContext(t, startTimeout), func(s string) bool { return strings.Contains(s, "restored the backup") }); err != nil {
		t.Errorf("no restore message: %v", err)
	}
	d.api(t, "GET", "/api/v1/users/before-backup", nil, http.StatusOK, nil)
	d.api(t, "GET", "/api/v1/users/after-backup", nil, http.StatusNotFound, nil)
	if _, err := os.Stat(filepath.Join(d.dataDir, "edgegate.db.before-restore")); err != nil {
		t.Errorf("the replaced database is not kept: %v", err)
	}

	// The old session ended with the restart; the admin password is the
	// backup's, the same.
	webLogin(ctx, t, d)
	if err := chromedp.Do(ctx, chromedp.Navigate(d.webBase+"/system"), chromedp.WaitVisible(dataTestID("log-line"))); err != nil {
		t.Fatalf("open the System page after the restore: %v", err)
	}

	// A factory reset that keeps the device key: the gateway starts as
	// new, with a new setup code, and the UI asks for setup.
	key, err := os.ReadFile(filepath.Join(d.dataDir, "device.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(dataTestID("reset-confirm"), "edgegate"),
		chromedp.Click(dataTestID("reset-submit")),
		chromedp.WaitVisible(dataTestID("restarting")),
	); err != nil {
		t.Fatalf("factory reset: %v", err)
	}
	systemWaitRestart(t, d, 3)
	if d.setupCode == "" {
		t.Fatal("no setup code in the banner after the factory reset")
	}
	if after, err := os.ReadFile(filepath.Join(d.dataDir, "device.key")); err != nil || !bytes.Equal(after, key) {
		t.Errorf("the device key was not kept (%v)", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(d.webBase+"/system"), chromedp.WaitVisible(dataTestID("setup-code"))); err != nil {
		t.Fatalf("the UI does not ask for setup after the reset: %v", err)
	}
	d.adminSet = false
	d.api(t, "GET", "/api/v1/users/before-backup", nil, http.StatusNotFound, nil)
}

// systemDownloadBackup downloads a backup through the page's form into a
// temporary directory, as a user would, and returns the file's path.
func systemDownloadBackup(ctx context.Context, t *testing.T, passphrase string) string {
	t.Helper()
	dir := t.TempDir()
	enabled := true
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir, EventsEnabled: &enabled,
	}); err != nil {
		t.Fatalf("set the download directory: %v", err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	begin := chromedp.BrowserEvents(lctx, browser.DownloadWillBegin)
	progress := chromedp.BrowserEvents(lctx, browser.DownloadProgress)
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(dataTestID("backup-passphrase"), passphrase),
		chromedp.SendKeys(dataTestID("backup-confirm"), passphrase),
		chromedp.Click(dataTestID("backup-submit")),
	); err != nil {
		t.Fatalf("submit the backup form: %v", err)
	}
	name := ""
	for ev, err := range begin {
		if err != nil {
			t.Fatalf("wait for the download: %v", err)
		}
		name = ev.SuggestedFilename
		break
	}
	if !regexp.MustCompile(`^edgegate-edgegate-\d{4}-\d\d-\d\d\.backup$`).MatchString(name) {
		t.Errorf("download named %q", name)
	}
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("wait for the download to finish: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the download was canceled")
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			break
		}
	}
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the downloaded backup: %v", err)
	}
	if !strings.HasPrefix(string(data), "EGBACKUP") {
		t.Fatalf("the download is not a backup (%d bytes)", len(data))
	}
	return path
}

// systemWaitRestart waits until the daemon, re-executed in the same
// process with the same stdout, has printed its start banner for the n-th
// time, and reads the new addresses from that banner: the listeners bind
// to port 0 again.
func systemWaitRestart(t *testing.T, d *daemon, n int) {
	t.Helper()
	d.mu.Lock()
	stdout, exited := d.stdout, d.exited
	d.mu.Unlock()
	out, err := stdout.waitFor(testContext(t, startTimeout), exited, func(s string) bool { return len(systemBannerEnds(s)) >= n })
	if err != nil {
		t.Fatalf("edgegate did not start again: %v\nstdout:\n%s\nstderr:\n%s", err, out, d.stderr.String())
	}
	d.parseBanner(out[systemBannerEnds(out)[n-2]:])
}

// systemBannerEnds returns the offsets in s just after each "ready" line.
func systemBannerEnds(s string) []int {
	var ends []int
	off := 0
	for line := range strings.Lines(s) {
		off += len(line)
		if line == "ready\n" {
			ends = append(ends, off)
		}
	}
	return ends
}

// systemText is the visible text of the element with data-testid id.
func systemText(ctx context.Context, t *testing.T, id string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(dataTestID(id)))
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return strings.TrimSpace(s)
}
