package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestWebUISettings edits settings on the "Listeners & settings" page: a
// listener's max clients of -1 is refused with the problem next to the
// field and nothing saved; a $SYS interval of 5s is saved and then seen
// through the JSON API. The listener's bind address, which the image's
// file (the harness's settings file) sets, is shown locked.
func TestWebUISettings(t *testing.T) {
	t.Parallel()
	// The settings file binds every listener but leaves $SYS to the page.
	d := startDaemon(t, obj{"sys": nil})
	ctx := newBrowser(t)
	webLogin(ctx, t, d)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/settings"),
		chromedp.WaitVisible(dataTestID("listener-form-tcp")),
	); err != nil {
		t.Fatalf("open the settings page: %v", err)
	}
	settingsWantText(ctx, t, "listener-address-tcp", d.addr("tcp"))
	settingsWantText(ctx, t, "listeners-tcp-bind-locked", "set by the image ("+d.configPath+")")

	if err := chromedp.Do(ctx,
		chromedp.Clear(dataTestID("listeners-tcp-max_clients")),
		chromedp.SendKeys(dataTestID("listeners-tcp-max_clients"), "-1"),
	); err != nil {
		t.Fatalf("type max clients: %v", err)
	}
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(dataTestID("listener-form-tcp-save")))
	if err != nil {
		t.Fatalf("save the tcp listener: %v", err)
	}
	if resp.Status != http.StatusUnprocessableEntity {
		t.Errorf("saving max clients -1: status %d, want 422", resp.Status)
	}
	settingsWantText(ctx, t, "listeners-tcp-max_clients-error", "Must be at least 1.")
	settingsWantText(ctx, t, "settings-problems", "Nothing was saved")

	if err := chromedp.Do(ctx,
		chromedp.Clear(dataTestID("sys-interval")),
		chromedp.SendKeys(dataTestID("sys-interval"), "5s"),
		chromedp.Click(dataTestID("general-form-save")),
		chromedp.WaitVisible(dataTestID("flash")),
	); err != nil {
		t.Fatalf("save the $SYS interval: %v", err)
	}
	settingsWantText(ctx, t, "flash", "Saved. Takes effect at the next start: sys.")
	shot(ctx, t, "settings")

	var view struct {
		Settings struct {
			Sys struct {
				Interval string `json:"interval"`
			} `json:"sys"`
			Listeners map[string]struct {
				MaxClients int `json:"max_clients"`
			} `json:"listeners"`
		} `json:"settings"`
	}
	d.api(t, "GET", "/api/v1/settings", nil, http.StatusOK, &view)
	if got := view.Settings.Sys.Interval; got != "5s" {
		t.Errorf("sys.interval through the API = %q, want 5s", got)
	}
	if got := view.Settings.Listeners["tcp"].MaxClients; got != 10000 {
		t.Errorf("tcp max_clients through the API = %d, want the default 10000 (the refused change saved nothing)", got)
	}
}

// settingsWantText fails the test unless the element with testid shows
// text containing want.
func settingsWantText(ctx context.Context, t *testing.T, testid, want string) {
	t.Helper()
	got, err := chromedp.Run(ctx, chromedp.Text(dataTestID(testid)))
	if err != nil {
		t.Fatalf("read %s: %v", testid, err)
	}
	if !strings.Contains(got, want) {
		t.Errorf("%s shows %q, want %q in it", testid, got, want)
	}
}
