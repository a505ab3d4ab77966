package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
)

// ErrLocked is returned when a settings change touches a key the image's
// settings file locks.
var ErrLocked = errors.New("setting is locked by the image's settings file")

// applier applies a new effective configuration to the running parts.
type applier interface {
	applySettings(old, next config.Config) error
}

// Settings is the live settings service: the merged, validated
// configuration and the store document the UI and API edit.
type Settings struct {
	store    *store.Store
	file     []byte
	fileName string
	now      func() time.Time

	mu        sync.Mutex // serialises Apply
	effective config.Effective
	apply     applier
	level     *slog.LevelVar
}

// NewSettings loads the effective configuration from the store document and
// the optional image file.
func NewSettings(st *store.Store, file []byte, fileName string) (*Settings, error) {
	s := &Settings{store: st, file: file, fileName: fileName, now: time.Now}
	cur, err := st.Settings()
	if err != nil {
		return nil, err
	}
	eff, err := config.Load(config.Layers{Store: cur.Document, File: file, FileName: fileName})
	if err != nil {
		return nil, err
	}
	s.effective = eff
	return s, nil
}

// Effective returns the configuration in force.
func (s *Settings) Effective() config.Effective {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.effective
}

// Current returns the stored settings document and its version.
func (s *Settings) Current() (store.SettingsVersion, error) { return s.store.Settings() }

// History returns the kept settings versions, newest first.
func (s *Settings) History() ([]store.SettingsVersion, error) { return s.store.SettingsHistory() }

// Apply merges patch (RFC 7396) into the stored document, validates the
// whole result, saves it and applies it to the running gateway. Nothing is
// saved or applied when any part is invalid.
func (s *Settings) Apply(_ context.Context, patch []byte, author string) (store.SettingsVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := config.CheckPatch(patch, "settings patch"); err != nil {
		return store.SettingsVersion{}, err
	}
	if locked := lockedIn(s.effective, patch); len(locked) > 0 {
		return store.SettingsVersion{}, fmt.Errorf("%w: %s", ErrLocked, locked)
	}
	cur, err := s.store.Settings()
	if err != nil {
		return store.SettingsVersion{}, err
	}
	doc, err := config.MergePatch(cur.Document, patch)
	if err != nil {
		return store.SettingsVersion{}, err
	}
	next, err := config.Load(config.Layers{Store: doc, File: s.file, FileName: s.fileName})
	if err != nil {
		return store.SettingsVersion{}, err
	}
	saved, err := s.store.SaveSettings(doc, author, s.now())
	if err != nil {
		return store.SettingsVersion{}, err
	}
	old := s.effective.Config
	s.effective = next
	s.setLogLevel(next.Config.Log)
	if s.apply != nil {
		if err := s.apply.applySettings(old, next.Config); err != nil {
			return saved, fmt.Errorf("settings saved as version %d but not all applied: %w", saved.Version, err)
		}
	}
	return saved, nil
}

// lockedIn lists the locked settings paths a patch touches.
func lockedIn(eff config.Effective, patch []byte) []string {
	var out []string
	for _, p := range config.PatchPaths(patch) {
		if eff.IsLocked(p) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// LoadSettings reads the optional image settings file and builds the
// settings service; the log level follows the effective settings.
func LoadSettings(st *store.Store, fileName string, level *slog.LevelVar) (*Settings, error) {
	file, err := config.ReadFile(fileName)
	if err != nil {
		return nil, err
	}
	s, err := NewSettings(st, file, fileName)
	if err != nil {
		return nil, err
	}
	s.level = level
	s.setLogLevel(s.effective.Config.Log)
	return s, nil
}

func (s *Settings) setLogLevel(l config.Log) {
	if s.level == nil {
		return
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(l.Level)); err == nil {
		s.level.Set(lvl)
	}
}

// NewLogger builds the process logger in the configured format; its level
// follows level, which settings changes update.
func NewLogger(w io.Writer, l config.Log, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
