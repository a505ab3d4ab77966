package webui

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/broker"
	"github.com/edgegate/edgegate/gateway/broker/sys"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
)

// fakeAdmin is the administrator's credentials with a known setup code.
// The API key methods are not faked (the embedded nil interface panics).
type fakeAdmin struct {
	Admin

	mu       sync.Mutex
	code     string
	password string // empty until setup is done
}

func (a *fakeAdmin) SetupDone() (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.password != "", nil
}

func (a *fakeAdmin) CompleteSetup(code, password string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.password != "":
		return admin.ErrSetupDone
	case code != a.code:
		return admin.ErrBadSetupCode
	}
	a.password = password
	return nil
}

func (a *fakeAdmin) CheckAdmin(password string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.password != "" && password == a.password
}

// fakeSettings holds the defaults and records every patch applied; a patch
// is merged by decoding it over the current configuration.
type fakeSettings struct {
	mu      sync.Mutex
	cfg     config.Config
	patches []string
}

func newFakeSettings() *fakeSettings { return &fakeSettings{cfg: config.Defaults()} }

func (s *fakeSettings) Effective() config.Effective {
	s.mu.Lock()
	defer s.mu.Unlock()
	return config.Effective{Config: s.cfg}
}

func (s *fakeSettings) Apply(_ context.Context, patch []byte, _ string) (store.SettingsVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := json.Unmarshal(patch, &s.cfg); err != nil {
		return store.SettingsVersion{}, err
	}
	s.patches = append(s.patches, string(patch))
	return store.SettingsVersion{Version: uint64(len(s.patches))}, nil
}

// fakeBroker is an idle broker: no clients, no listeners, zero figures.
// Other methods are not faked.
type fakeBroker struct{ Broker }

func (fakeBroker) Stats() sys.Stats                                    { return sys.Stats{} }
func (fakeBroker) Listeners() []broker.ListenerStatus                  { return nil }
func (fakeBroker) WatchClients(func(broker.ClientEvent)) (stop func()) { return func() {} }
