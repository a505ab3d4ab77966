package webui

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
)

// fakeStoredSettings layers a stored document and an image file over the
// defaults with config.Load, as the gateway's settings service does, so
// validation, locked paths and defaults behave as in the daemon.
type fakeStoredSettings struct {
	mu      sync.Mutex
	doc     []byte
	file    []byte
	eff     config.Effective
	patches []string
	authors []string
	// applyErr, when set, is what applying a saved change returns (a
	// listener that cannot bind, say).
	applyErr error
}

// newFakeStoredSettings starts from the stored document doc ("" for none)
// and the image file file ("" for none).
func newFakeStoredSettings(t *testing.T, doc, file string) *fakeStoredSettings {
	t.Helper()
	s := &fakeStoredSettings{doc: []byte(doc), file: []byte(file)}
	eff, err := config.Load(config.Layers{Store: s.doc, File: s.file, FileName: "edgegate.json"})
	if err != nil {
		t.Fatalf("load settings: %v", err)
	}
	s.eff = eff
	return s
}

func (s *fakeStoredSettings) Effective() config.Effective {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eff
}

func (s *fakeStoredSettings) Apply(_ context.Context, patch []byte, author string) (store.SettingsVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := config.CheckPatch(patch, "settings patch"); err != nil {
		return store.SettingsVersion{}, err
	}
	for _, p := range config.PatchPaths(patch) {
		if s.eff.IsLocked(p) {
			return store.SettingsVersion{}, errors.New("setting is locked by the image's settings file: " + p)
		}
	}
	doc, err := config.MergePatch(s.doc, patch)
	if err != nil {
		return store.SettingsVersion{}, err
	}
	eff, err := config.Load(config.Layers{Store: doc, File: s.file, FileName: "edgegate.json"})
	if err != nil {
		return store.SettingsVersion{}, err
	}
	s.doc, s.eff = doc, eff
	s.patches = append(s.patches, string(patch))
	s.authors = append(s.authors, author)
	saved := store.SettingsVersion{Version: uint64(len(s.patches))}
	return saved, s.applyErr
}

// applied returns the patches saved so far.
func (s *fakeStoredSettings) applied() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.patches...)
}
