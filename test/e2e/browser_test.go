package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// browserTimeout bounds one test's browser session.
const browserTimeout = 2 * time.Minute

// newBrowser starts a fresh headless Chromium for the test, with its own
// profile, and returns the chromedp context to drive its tab. The context
// ends before the test's deadline; the browser process is closed at
// cleanup. Under CI=true a missing chromium fails the test, elsewhere it
// skips (needTool).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := needTool(t, "chromium")
	// The defaults already give --headless, --no-first-run,
	// --disable-background-networking and --disable-sync.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		// The UI's certificate comes from the daemon's own local CA.
		chromedp.IgnoreCertErrors,
		chromedp.WindowSize(1280, 900),
		// No UserDataDir: chromedp then makes a fresh profile directory per
		// browser and, unlike a t.TempDir(), removes it only after killing
		// Chromium's helper processes that may still write into it.
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// The first action starts the browser and binds its life to ctx, which
	// must therefore carry no deadline; the deadline goes on the child.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		allocCancel()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		closeCtx, closeCancel := context.WithTimeout(ctx, 10*time.Second)
		defer closeCancel()
		if err := chromedp.Cancel(closeCtx); err != nil {
			t.Logf("close chromium: %v", err)
		}
		// Kills the process if the graceful close failed, and waits until
		// the profile directory is gone.
		cancel()
		allocCancel()
	})
	deadline := time.Now().Add(browserTimeout)
	if d, ok := t.Deadline(); ok && d.Add(-5*time.Second).Before(deadline) {
		deadline = d.Add(-5 * time.Second)
	}
	tctx, tcancel := context.WithDeadline(ctx, deadline)
	t.Cleanup(tcancel)
	return tctx
}

// dataTestID selects the elements with the data-testid attribute id.
func dataTestID(id string) chromedp.CSS {
	return chromedp.CSS(`[data-testid="` + id + `"]`)
}

// webLogin sets the admin password through the API with the banner's setup
// code and logs the browser in through the login page with adminPassword;
// it returns when the dashboard shows.
func webLogin(ctx context.Context, t *testing.T, d *daemon) {
	t.Helper()
	d.setupAdmin(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/login"),
		chromedp.WaitVisible(dataTestID("login-password")),
		chromedp.SendKeys(dataTestID("login-password"), adminPassword),
		chromedp.Click(dataTestID("login-submit")),
		chromedp.WaitVisible(dataTestID("health")),
	); err != nil {
		t.Fatalf("log in to the web UI: %v", err)
	}
}

// shot saves full-page screenshots of the current page at 1280 px and
// 360 px width as <name>-1280.png and <name>-360.png in t.ArtifactDir(),
// which `go test -artifacts` keeps. The viewport is reset afterwards.
func shot(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	dir := t.ArtifactDir()
	// Phone width first: ending at the window's own size makes clearing the
	// override below change nothing the test sees next.
	for _, size := range []struct{ w, h int64 }{{360, 780}, {1280, 900}} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.w, size.h)); err != nil {
			t.Fatalf("screenshot %s: set viewport %dx%d: %v", name, size.w, size.h, err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Fatalf("screenshot %s at %d px: %v", name, size.w, err)
		}
		file := filepath.Join(dir, name+"-"+strconv.FormatInt(size.w, 10)+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatalf("save screenshot: %v", err)
		}
	}
	// chromedp.ResetViewport would leave Chromium at the last size.
	if _, err := chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{}); err != nil {
		t.Fatalf("screenshot %s: reset viewport: %v", name, err)
	}
}

// acceptDialogs accepts every JavaScript dialog the page opens (the
// data-confirm questions) until the test ends, and passes on their
// messages to a test that reads them (the first 16 are kept).
func acceptDialogs(ctx context.Context, t *testing.T) <-chan string {
	t.Helper()
	lctx, cancel := context.WithCancel(ctx)
	dialogs := chromedp.Events(lctx, page.JavascriptDialogOpening)
	questions := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			select {
			case questions <- ev.Message:
			default: // nobody reads them
			}
			if _, err := chromedp.Call(lctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true}); err != nil {
				t.Errorf("accept the dialog %q: %v", ev.Message, err)
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return questions
}
