package webui

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/edgegate/edgegate/gateway/backup"
	"github.com/edgegate/edgegate/gateway/broker/trace"
	"github.com/edgegate/edgegate/gateway/logtail"
)

func (u *UI) systemRoutes() {
	u.authed("GET /system", u.systemPage)
	u.authed("POST /system/traces", u.traceStart)
	u.authed("POST /system/traces/stop", u.traceStop)
	u.authed("GET /system/traces/{file}", u.traceDownload)
	u.authed("POST /system/backup", u.backupDownload)
	u.authed("POST /system/restore", u.restoreSubmit)
	u.authed("POST /system/restart", u.restartSubmit)
	u.authed("POST /system/reset", u.resetSubmit)
}

const (
	// maxRestoreBytes bounds an uploaded backup.
	maxRestoreBytes = 1 << 30
	// transferTimeout is how long a backup may take to download or upload
	// over a slow link; the server's usual limit is 30 s.
	transferTimeout = 15 * time.Minute
	// restartRefresh is when the restarting page reloads, by which time
	// the gateway is back.
	restartRefresh = "5; url=/"
)

// systemView is everything the System page shows.
type systemView struct {
	Version, Commit, GoVersion, DataDir string
	Uptime                              string
	Heap, FromOS, MemLimit              string
	Goroutines                          int

	LogsOn bool
	Logs   []logLine

	TracesOn bool
	Traces   []traceRow
	Trace    traceForm

	BackupsOn bool
	RestartOn bool
	Node      string
	Backup    formErrors
	Restore   formErrors
	Reset     resetForm
}

// formErrors are a form's per-field problems, by field id.
type formErrors map[string]string

// logLine is a log line as the page and the live feed show it.
type logLine struct {
	Text  string `json:"text"`
	Level string `json:"level"` // debug, info, warn or error
}

type traceRow struct {
	Kind, Target, File, Size, Started, State string
	Running                                  bool
}

type traceForm struct {
	Kind, Target, Name string
	Errors             formErrors
}

type resetForm struct {
	KeepDeviceKey bool
	Errors        formErrors
}

func (u *UI) systemPage(w http.ResponseWriter, r *http.Request, ss *session) error {
	return u.renderSystem(w, r, ss, http.StatusOK, u.systemView(nil))
}

// systemView gathers the page's data; change, if not nil, fills in the
// form that was just submitted.
func (u *UI) systemView(change func(*systemView)) systemView {
	loc := u.location()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	st := u.o.Broker.Stats()
	v := systemView{
		Version: u.o.Version, Commit: u.o.Commit, GoVersion: runtime.Version(), DataDir: u.o.DataDir,
		Uptime: formatDuration(time.Duration(st.UptimeSeconds) * time.Second),
		Heap:   formatBytes(st.Runtime.HeapBytes), FromOS: formatBytes(mem.Sys), MemLimit: "none",
		Goroutines: st.Runtime.Goroutines,
		LogsOn:     u.o.Logs != nil, TracesOn: u.o.Traces != nil,
		BackupsOn: u.o.Backups != nil, RestartOn: u.o.Restart != nil,
		Trace: traceForm{Kind: string(trace.Client)},
		Reset: resetForm{KeepDeviceKey: true},
	}
	if v.Goroutines == 0 {
		v.Goroutines = runtime.NumGoroutine()
	}
	if limit := debug.SetMemoryLimit(-1); limit != math.MaxInt64 {
		v.MemLimit = formatBytes(uint64(limit))
	}
	v.Node = u.systemNode()
	if u.o.Logs != nil {
		for _, l := range u.o.Logs.Lines() {
			v.Logs = append(v.Logs, newLogLine(l, loc))
		}
	}
	if u.o.Traces != nil {
		for _, t := range u.o.Traces.List() {
			row := traceRow{
				Kind: string(t.Kind), Target: t.Target, File: filepath.Base(t.File), Size: formatBytes(uint64(t.Bytes)),
				Started: formatTime(t.Started, loc), Running: t.StopReason == "", State: "running",
			}
			if !row.Running {
				row.State = t.StopReason + " " + formatTime(t.Stopped, loc)
			}
			v.Traces = append(v.Traces, row)
		}
	}
	if change != nil {
		change(&v)
	}
	return v
}

// systemNode is the device name, which a factory reset asks to type.
func (u *UI) systemNode() string {
	if u.o.Settings == nil {
		return ""
	}
	return u.o.Settings.Effective().Config.Node
}

func (u *UI) renderSystem(w http.ResponseWriter, r *http.Request, ss *session, status int, v systemView) error {
	p := u.page(ss, "System", "system")
	p.Live = feedLogs
	u.renderStatus(w, r, ss, status, p, systemPage(v))
	return nil
}

func newLogLine(l logtail.Line, loc *time.Location) logLine {
	level := "debug"
	switch {
	case l.Level >= slog.LevelError:
		level = "error"
	case l.Level >= slog.LevelWarn:
		level = "warn"
	case l.Level >= slog.LevelInfo:
		level = "info"
	}
	return logLine{Text: formatTime(l.Time, loc) + " " + l.Text(), Level: level}
}

// followLogs publishes new log lines to the pages showing the log. The
// lines come through a channel, so a log call never waits for the hub nor
// re-enters it (the hub itself logs).
func (u *UI) followLogs() (stop func()) {
	if u.o.Logs == nil {
		return func() {}
	}
	lines, cancel := u.o.Logs.Subscribe(liveQueue)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for l := range lines {
			if u.live.anyWants(feedLogs) {
				u.live.publish(feedLogs, liveEvent{Type: "log", Data: newLogLine(l, u.location())})
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// --- traces ---

func (u *UI) traceStart(w http.ResponseWriter, r *http.Request, ss *session) error {
	if u.o.Traces == nil {
		return userError(http.StatusServiceUnavailable, "Tracing is not available on this gateway.")
	}
	f := traceForm{
		Kind: r.PostFormValue("kind"), Target: strings.TrimSpace(r.PostFormValue("target")),
		Name: strings.TrimSpace(r.PostFormValue("name")), Errors: formErrors{},
	}
	kind := trace.Kind(f.Kind)
	if kind != trace.Client && kind != trace.Topic {
		f.Errors["trace-kind"] = "Choose what to trace."
	}
	name := f.Name
	if name == "" {
		name = f.Kind + "-" + u.o.Now().In(u.location()).Format("20060102-150405")
	}
	if len(f.Errors) == 0 {
		_, err := u.o.Traces.Start(kind, f.Target, name)
		switch {
		case err == nil:
			u.log.Info("trace started from the web UI", "kind", kind, "target", f.Target)
			return u.redirect(w, r, ss, "/system#traces", "Trace started.")
		case errors.Is(err, trace.ErrBadTarget) && kind == trace.Client:
			f.Errors["trace-target"] = "Enter the client id to trace."
		case errors.Is(err, trace.ErrBadTarget):
			f.Errors["trace-target"] = "Not a valid topic filter (a shared subscription cannot be traced)."
		case errors.Is(err, trace.ErrExists):
			f.Errors["trace-target"] = "This is traced already."
		case errors.Is(err, trace.ErrBadName):
			f.Errors["trace-name"] = "Use 1–128 letters, digits, '.', '_' or '-', not starting with '.'."
		case errors.Is(err, trace.ErrFileInUse):
			f.Errors["trace-name"] = "A running trace writes to this file; choose another name."
		default:
			return fmt.Errorf("start trace: %w", err)
		}
	}
	return u.renderSystem(w, r, ss, http.StatusUnprocessableEntity, u.systemView(func(v *systemView) { v.Trace = f }))
}

func (u *UI) traceStop(w http.ResponseWriter, r *http.Request, ss *session) error {
	if u.o.Traces == nil {
		return userError(http.StatusServiceUnavailable, "Tracing is not available on this gateway.")
	}
	kind, target := trace.Kind(r.PostFormValue("kind")), r.PostFormValue("target")
	err := u.o.Traces.StopTrace(kind, target)
	switch {
	case errors.Is(err, trace.ErrNotFound):
		return u.redirect(w, r, ss, "/system#traces", "That trace had stopped already.")
	case err != nil:
		return fmt.Errorf("stop trace: %w", err)
	}
	u.log.Info("trace stopped from the web UI", "kind", kind, "target", target)
	return u.redirect(w, r, ss, "/system#traces", "Trace stopped.")
}

// traceDownload serves a trace file the tracer lists, running or stopped;
// no other file can be named.
func (u *UI) traceDownload(w http.ResponseWriter, r *http.Request, ss *session) error {
	if u.o.Traces == nil {
		return userError(http.StatusServiceUnavailable, "Tracing is not available on this gateway.")
	}
	name := r.PathValue("file")
	path := ""
	for _, t := range u.o.Traces.List() {
		if filepath.Base(t.File) == name {
			path = t.File
			break
		}
	}
	if path == "" {
		return userError(http.StatusNotFound, "There is no trace file %q.", name)
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return userError(http.StatusNotFound, "The trace file %q was removed.", name)
	}
	if err != nil {
		return fmt.Errorf("open trace file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open trace file: %w", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, name, fi.ModTime(), f)
	return nil
}

// --- backup and restore ---

func (u *UI) backupDownload(w http.ResponseWriter, r *http.Request, ss *session) error {
	if u.o.Backups == nil {
		return userError(http.StatusServiceUnavailable, "Backups are not available on this gateway.")
	}
	pass, confirm := r.PostFormValue("passphrase"), r.PostFormValue("confirm")
	errs := formErrors{}
	switch {
	case len([]rune(pass)) < backup.MinPassphrase:
		errs["backup-passphrase"] = fmt.Sprintf("Use at least %d characters.", backup.MinPassphrase)
	case pass != confirm:
		errs["backup-confirm"] = "The two passphrases differ."
	}
	if len(errs) > 0 {
		return u.renderSystem(w, r, ss, http.StatusUnprocessableEntity, u.systemView(func(v *systemView) { v.Backup = errs }))
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(transferTimeout))
	name := fmt.Sprintf("edgegate-%s-%s.backup", fileSafe(u.systemNode()), u.o.Now().In(u.location()).Format("2006-01-02"))
	out := &headersOnWrite{w: w, set: func(h http.Header) {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
		h.Set("Cache-Control", "no-store")
	}}
	if err := u.o.Backups.Create(out, pass); err != nil {
		if !out.started {
			return fmt.Errorf("backup: %w", err)
		}
		// The download is cut off; the browser shows it failed, and a
		// partial file does not open.
		u.log.Error("backup download failed", "error", err)
		return nil
	}
	u.log.Info("backup downloaded from the web UI", "file", name)
	return nil
}

// headersOnWrite sets the download's headers at the first byte, so that
// an error before it can still be answered with an error page.
type headersOnWrite struct {
	w       http.ResponseWriter
	set     func(http.Header)
	started bool
}

func (h *headersOnWrite) Write(p []byte) (int, error) {
	if !h.started {
		h.started = true
		h.set(h.w.Header())
	}
	return h.w.Write(p)
}

// fileSafe keeps a device name usable in a file name.
func fileSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 128 && (r == '-' || r == '_' || r == '.' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return r
		}
		return '-'
	}, s)
	if s == "" || s[0] == '.' {
		s = "edgegate" + s
	}
	return s
}

// restoreSubmit streams the upload straight into the restore: the
// passphrase field comes first in the form, then the file, which is
// decrypted and checked as it arrives and never held in memory whole.
func (u *UI) restoreSubmit(w http.ResponseWriter, r *http.Request, ss *session) error {
	if u.o.Backups == nil || u.o.Restart == nil {
		return userError(http.StatusServiceUnavailable, "Restoring a backup is not available on this gateway.")
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(transferTimeout))
	_ = rc.SetWriteDeadline(time.Now().Add(transferTimeout)) // it runs from the request's start
	r.Body = http.MaxBytesReader(w, r.Body, maxRestoreBytes)
	// Whatever is refused, read the rest of the upload, so the browser
	// sees the answer rather than a connection reset mid-upload.
	defer func() { _, _ = io.Copy(io.Discard, r.Body) }()
	mr, err := r.MultipartReader()
	if err != nil {
		return userError(http.StatusBadRequest, "Send the backup file with the restore form.")
	}
	errs := formErrors{}
	pass, staged := "", false
	for !staged && len(errs) == 0 {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			errs["restore-file"] = "Choose a backup file."
			break
		}
		if err != nil {
			return restoreReadError(err)
		}
		switch part.FormName() {
		case "passphrase":
			b, err := io.ReadAll(io.LimitReader(part, 1024))
			if err != nil {
				return restoreReadError(err)
			}
			pass = string(b)
		case "file":
			switch {
			case part.FileName() == "":
				errs["restore-file"] = "Choose a backup file."
			case pass == "":
				errs["restore-passphrase"] = "Enter the passphrase the backup was made with."
			default:
				err := u.o.Backups.Stage(part, pass)
				switch {
				case err == nil:
					staged = true
				case errors.Is(err, backup.ErrPassphrase):
					errs["restore-passphrase"] = "Wrong passphrase for this backup."
				case errors.Is(err, backup.ErrDamaged):
					errs["restore-file"] = "This file is not an edgegate backup, or it is damaged or incomplete. Nothing was changed."
				case errors.Is(err, backup.ErrUnsupported):
					errs["restore-file"] = "This backup was made by a newer edgegate. Update this gateway first. Nothing was changed."
				default:
					return restoreReadError(err)
				}
			}
		}
	}
	if !staged {
		return u.renderSystem(w, r, ss, http.StatusUnprocessableEntity, u.systemView(func(v *systemView) { v.Restore = errs }))
	}
	u.log.Warn("backup restored from the web UI; restarting to apply it")
	return u.restarting(w, r, "The backup is checked and restores as the gateway restarts. Log in again in a moment.")
}

// restoreReadError tells an upload that broke off or was too large from
// a failure of the gateway.
func restoreReadError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return userError(http.StatusRequestEntityTooLarge, "The file is larger than any backup of this gateway can be.")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return userError(http.StatusBadRequest, "The upload broke off. Nothing was changed; try again.")
	}
	return fmt.Errorf("restore: %w", err)
}

// --- restart and factory reset ---

func (u *UI) restartSubmit(w http.ResponseWriter, r *http.Request, ss *session) error {
	if u.o.Restart == nil {
		return userError(http.StatusServiceUnavailable, "Restarting from here is not available on this gateway.")
	}
	u.log.Warn("restart requested from the web UI")
	return u.restarting(w, r, "The gateway is restarting. Log in again in a moment.")
}

func (u *UI) resetSubmit(w http.ResponseWriter, r *http.Request, ss *session) error {
	if u.o.Backups == nil || u.o.Restart == nil {
		return userError(http.StatusServiceUnavailable, "A factory reset is not available on this gateway.")
	}
	f := resetForm{KeepDeviceKey: r.PostFormValue("keep_device_key") != "", Errors: formErrors{}}
	node := u.systemNode()
	if strings.TrimSpace(r.PostFormValue("confirm_name")) != node {
		f.Errors["reset-confirm"] = fmt.Sprintf("Type the device name, %s, to confirm.", node)
		return u.renderSystem(w, r, ss, http.StatusUnprocessableEntity, u.systemView(func(v *systemView) { v.Reset = f }))
	}
	if err := u.o.Backups.StageReset(f.KeepDeviceKey); err != nil {
		return fmt.Errorf("factory reset: %w", err)
	}
	u.log.Warn("factory reset requested from the web UI; restarting to apply it", "keep_device_key", f.KeepDeviceKey)
	return u.restarting(w, r, "The gateway is being reset and restarts. Set it up again with the new setup code printed on its console.")
}

// restarting ends every session, answers with a page that reloads once
// the gateway is back, and asks for the restart. The gateway stops its
// web server gracefully, so this answer is sent in full first.
func (u *UI) restarting(w http.ResponseWriter, r *http.Request, message string) error {
	u.sessions.deleteAll()
	w.Header().Set("Refresh", restartRefresh)
	err := u.render(w, r, nil, u.page(nil, "Restarting", ""), systemRestarting(message))
	u.o.Restart()
	return err
}
