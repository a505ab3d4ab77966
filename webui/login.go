package webui

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/config"
)

// setupForm is the first-run form: the console's one-time code, the admin
// password and the device's name and time zone.
type setupForm struct {
	Code, Password, Confirm, DeviceName, TimeZone string
	Errors                                        map[string]string
}

func (u *UI) setupPage(w http.ResponseWriter, r *http.Request) {
	done, err := u.o.Admin.SetupDone()
	if err != nil {
		u.fail(w, r, err)
		return
	}
	if done {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	f := setupForm{TimeZone: "UTC"}
	if u.o.Settings != nil {
		cfg := u.o.Settings.Effective().Config
		f.DeviceName, f.TimeZone = cfg.Node, cfg.TimeZone
	}
	u.renderStatus(w, r, nil, http.StatusOK, u.page(nil, "Set up edgegate", ""), setupPage(f))
}

func (u *UI) setupSubmit(w http.ResponseWriter, r *http.Request) {
	ip, now := clientIP(r), u.o.Now()
	if wait := u.o.Limiter.RetryAfter(ip, now); wait > 0 {
		u.tooManyAttempts(w, r, wait)
		return
	}
	f := setupForm{
		Code: strings.TrimSpace(r.PostFormValue("code")), Password: r.PostFormValue("password"),
		Confirm: r.PostFormValue("confirm"), DeviceName: strings.TrimSpace(r.PostFormValue("device_name")),
		TimeZone: strings.TrimSpace(r.PostFormValue("timezone")), Errors: map[string]string{},
	}
	if f.Password != f.Confirm {
		f.Errors["confirm"] = "The two passwords differ."
	}
	if err := admin.CheckPasswordPolicy(f.Password); err != nil {
		var weak *admin.WeakPasswordError
		if errors.As(err, &weak) {
			f.Errors["password"] = "Too weak: " + weak.Reason + "."
		}
	}
	patch, fieldErrs := u.deviceSettingsPatch(f.DeviceName, f.TimeZone)
	for k, v := range fieldErrs {
		f.Errors[k] = v
	}
	if len(f.Errors) == 0 {
		err := u.o.Admin.CompleteSetup(f.Code, f.Password)
		switch {
		case errors.Is(err, admin.ErrSetupDone):
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		case errors.Is(err, admin.ErrBadSetupCode):
			u.o.Limiter.Fail(ip, now)
			f.Errors["code"] = "Wrong setup code. The current code is printed on the console and in the journal when edgegate starts."
		case err != nil:
			u.fail(w, r, err)
			return
		}
	}
	if len(f.Errors) > 0 {
		f.Password, f.Confirm = "", ""
		u.renderStatus(w, r, nil, http.StatusUnprocessableEntity, u.page(nil, "Set up edgegate", ""), setupPage(f))
		return
	}
	u.log.Info("admin password set from the web UI setup page")
	ss := u.sessions.create()
	if _, err := u.o.Settings.Apply(r.Context(), patch, author); err != nil {
		// The password is set: the device settings can be fixed later.
		u.log.Error("save device name and time zone at setup", "error", err)
		u.sessions.setFlash(ss, "The password is set, but the device name and time zone could not be saved; set them under Settings.")
	} else {
		u.sessions.setFlash(ss, "Setup complete. Welcome to edgegate.")
	}
	setSessionCookie(w, ss.id)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// deviceSettingsPatch builds the settings patch for a device name and a
// time zone, checked as the settings validation would.
func (u *UI) deviceSettingsPatch(name, tz string) ([]byte, map[string]string) {
	errs := map[string]string{}
	cfg := u.o.Settings.Effective().Config
	cfg.Node, cfg.TimeZone = name, tz
	for _, fe := range config.FieldErrors(cfg.Validate()) {
		switch fe.Path {
		case "node":
			errs["device_name"] = "The name " + fe.Problem + "."
		case "timezone":
			errs["timezone"] = "The time zone " + fe.Problem + "."
		}
	}
	patch, _ := json.Marshal(map[string]string{"node": name, "timezone": tz})
	return patch, errs
}

// loginForm is the login page's state.
type loginForm struct {
	Next  string
	Error string
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	if done, err := u.o.Admin.SetupDone(); err == nil && !done {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	if _, ok := u.sessions.fromRequest(r); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	u.renderStatus(w, r, nil, http.StatusOK, u.page(nil, "Log in", ""), loginPage(loginForm{Next: safeNext(r.URL.Query().Get("next"))}))
}

func (u *UI) loginSubmit(w http.ResponseWriter, r *http.Request) {
	ip, now := clientIP(r), u.o.Now()
	f := loginForm{Next: safeNext(r.PostFormValue("next"))}
	if wait := u.o.Limiter.RetryAfter(ip, now); wait > 0 {
		u.tooManyAttempts(w, r, wait)
		return
	}
	if !u.o.Admin.CheckAdmin(r.PostFormValue("password")) {
		u.o.Limiter.Fail(ip, now)
		u.log.Warn("web ui login failed", "remote", ip)
		f.Error = "Wrong password."
		u.renderStatus(w, r, nil, http.StatusUnauthorized, u.page(nil, "Log in", ""), loginPage(f))
		return
	}
	ss := u.sessions.create()
	setSessionCookie(w, ss.id)
	http.Redirect(w, r, f.Next, http.StatusSeeOther)
}

func (u *UI) tooManyAttempts(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	u.renderStatus(w, r, nil, http.StatusTooManyRequests, u.page(nil, "Too many attempts", ""),
		loginPage(loginForm{Error: fmt.Sprintf("Too many failed attempts from this address. Try again in %d seconds.", secs), Next: "/"}))
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request, ss *session) error {
	u.sessions.delete(ss.id)
	u.live.closeSession(ss.id)
	clearSessionCookie(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

// commonTimeZones are offered as suggestions; any IANA zone is accepted.
var commonTimeZones = []string{
	"UTC", "Europe/London", "Europe/Berlin", "Europe/Paris", "Europe/Madrid", "Europe/Rome",
	"Europe/Warsaw", "Europe/Helsinki", "Europe/Istanbul", "Africa/Johannesburg", "Asia/Dubai",
	"Asia/Kolkata", "Asia/Singapore", "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney",
	"America/Sao_Paulo", "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
}
