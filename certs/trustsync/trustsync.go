// Package trustsync keeps the trust and issuer lists (certs/trust) in step
// with a vault (certs/vault): it runs the vault syncer with the current
// settings, stages what the vault holds and, when asked to, applies it;
// it writes uploads to the vault on apply and reports the gateway's applied
// version back for the fleet view. It is what the API and the web UI call
// for everything trust-related.
package trustsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegate/edgegate/certs/trust"
	"github.com/edgegate/edgegate/certs/vault"
)

// ErrVaultOff is returned by the vault calls of [Service] when no vault is
// configured.
var ErrVaultOff = errors.New("vault sync is not configured (settings: trust.vault.address)")

// Config is what the service runs with; a change restarts the sync.
type Config struct {
	// AutoApply applies a synced version at once unless it needs an
	// operator's confirmation (it would lock connected clients out);
	// rejected entries are left out and reported either way.
	AutoApply bool
	// Vault is the vault to sync from; nil turns sync off.
	Vault *vault.Config
	// PollInterval is the time between syncs.
	PollInterval time.Duration
	// Publish writes uploaded certificates to the vault on apply;
	// ReportStatus writes this gateway's applied version there after
	// every sync.
	Publish, ReportStatus bool
}

// Service is the trust store with its vault sync. The embedded store
// stages, applies and rolls back; Service adds the vault.
type Service struct {
	*trust.Store
	deviceID string
	log      *slog.Logger

	// current is what the sync runs with. It is read without locks: a
	// sync attempt reads it (to report, to auto-apply) while Configure,
	// holding mu, waits for that attempt to end.
	current atomic.Pointer[running]

	// mu serialises Run and Configure, which start and stop the periodic
	// sync.
	mu      sync.Mutex
	runCtx  context.Context // set while Run runs
	stopRun context.CancelFunc
	done    chan struct{}
}

// running is a configuration with its vault client and syncer (nil while
// sync is off).
type running struct {
	cfg    Config
	client *vault.Client
	syncer *vault.Syncer
}

// New returns a service with sync off. The caller opens the store with
// the service as its trust.Publisher (see [Service.Publish]) and hands it
// over with SetStore; Configure sets the vault, Run runs the sync.
func New(deviceID string, logger *slog.Logger) *Service {
	s := &Service{deviceID: deviceID, log: logger}
	s.current.Store(&running{})
	return s
}

// SetStore sets the trust store; it must be called once, before Run.
func (s *Service) SetStore(st *trust.Store) { s.Store = st }

// Status is the vault sync's state for the API, the UI and metrics.
type Status struct {
	Enabled  bool   `json:"enabled"`
	Address  string `json:"address,omitempty"`
	Path     string `json:"path,omitempty"`
	Method   string `json:"authMethod,omitempty"`
	DeviceID string `json:"deviceId"`
	vault.SyncStatus
}

// Status returns the sync's state.
func (s *Service) Status() Status {
	st := Status{DeviceID: s.deviceID}
	r := s.current.Load()
	if r.syncer == nil {
		return st
	}
	v := r.cfg.Vault
	st.Enabled, st.Address, st.Path, st.Method = true, v.Address, v.Mount+"/"+v.Prefix, string(v.Auth.Method)
	st.SyncStatus = r.syncer.Status()
	return st
}

// SyncNow runs a sync at once and returns its result.
func (s *Service) SyncNow(ctx context.Context) (vault.SyncResult, error) {
	syncer, _, err := s.vault()
	if err != nil {
		return vault.SyncResult{}, err
	}
	return syncer.SyncNow(ctx)
}

// VaultSecrets lists the vault's certificate secrets, for "add from vault".
func (s *Service) VaultSecrets(ctx context.Context) ([]vault.Ref, error) {
	_, client, err := s.vault()
	if err != nil {
		return nil, err
	}
	return client.List(ctx)
}

// AddFromVault stages the vault secret name of list at its current
// version, also when it was deleted locally before.
func (s *Service) AddFromVault(ctx context.Context, list trust.ListName, name, by string) (trust.Version, error) {
	_, client, err := s.vault()
	if err != nil {
		return trust.Version{}, err
	}
	refs, err := client.List(ctx)
	if err != nil {
		return trust.Version{}, err
	}
	i := slices.IndexFunc(refs, func(r vault.Ref) bool { return r.List == string(list) && r.Name == name })
	if i < 0 {
		return trust.Version{}, fmt.Errorf("%w: no secret %q in the vault's %s list", trust.ErrNotFound, name, list)
	}
	secret, err := client.Read(ctx, refs[i])
	if err != nil {
		return trust.Version{}, err
	}
	return s.StageAdd(list, trust.Remote{List: list, Name: name, Version: secret.Version, Data: secret.Data}, by)
}

// Fleet reads every gateway's reported status from the vault.
func (s *Service) Fleet(ctx context.Context) ([]vault.DeviceStatus, error) {
	_, client, err := s.vault()
	if err != nil {
		return nil, err
	}
	return client.Devices(ctx)
}

func (s *Service) vault() (*vault.Syncer, *vault.Client, error) {
	r := s.current.Load()
	if r.syncer == nil {
		return nil, nil, ErrVaultOff
	}
	return r.syncer, r.client, nil
}

// Publish writes an uploaded certificate to the vault on apply (it is the
// store's trust.Publisher), when publishing is on.
func (s *Service) Publish(ctx context.Context, list trust.ListName, name string, pemData []byte) (int, error) {
	r := s.current.Load()
	if r.client == nil || !r.cfg.Publish {
		return 0, trust.ErrNotPublished
	}
	return r.client.Write(ctx, string(list), name, pemData)
}

// Run syncs with the vault periodically while ctx lasts, restarting with
// the new settings whenever Configure changes them.
func (s *Service) Run(ctx context.Context) {
	s.mu.Lock()
	s.runCtx = ctx
	s.startLocked()
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	s.stopLocked()
	s.runCtx = nil
	s.mu.Unlock()
}

// Configure replaces the settings: the vault client and syncer are built
// anew, and the periodic sync, if running, restarts with them. On error
// the sync is off.
func (s *Service) Configure(cfg Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	next := &running{cfg: cfg}
	var err error
	if cfg.Vault != nil {
		if next.client, err = vault.New(*cfg.Vault); err != nil {
			err = fmt.Errorf("vault client: %w", err)
			next = &running{cfg: cfg}
		} else {
			next.syncer = vault.NewSyncer(vault.SyncerOptions{
				Source: next.client, Target: syncTarget{s}, Interval: cfg.PollInterval, Report: s.report, Logger: s.log,
			})
		}
	}
	s.current.Store(next)
	s.startLocked()
	return err
}

// startLocked starts the periodic sync when Run runs and a vault is set.
func (s *Service) startLocked() {
	r := s.current.Load()
	if s.runCtx == nil || r.syncer == nil {
		return
	}
	ctx, cancel := context.WithCancel(s.runCtx)
	s.stopRun, s.done = cancel, make(chan struct{})
	go func(syncer *vault.Syncer, done chan struct{}) {
		defer close(done)
		syncer.Run(ctx)
	}(r.syncer, s.done)
	v := r.cfg.Vault
	s.log.Info("vault sync started", "address", v.Address, "path", v.Mount+"/"+v.Prefix, "auth", v.Auth.Method, "device", s.deviceID)
}

// stopLocked stops the periodic sync and waits for it.
func (s *Service) stopLocked() {
	if s.stopRun == nil {
		return
	}
	s.stopRun()
	<-s.done
	s.stopRun, s.done = nil, nil
}

// report runs after every sync attempt: with ReportStatus on it writes this
// gateway's applied version and fingerprints to the vault.
func (s *Service) report(ctx context.Context, syncErr error) {
	r := s.current.Load()
	// An unreachable vault would only make the report wait out its
	// timeout as well.
	if r.client == nil || !r.cfg.ReportStatus || errors.Is(syncErr, vault.ErrUnavailable) {
		return
	}
	applied, err := s.Applied()
	if err != nil {
		s.log.Error("trust status report", "error", err)
		return
	}
	st := vault.DeviceStatus{
		DeviceID: s.deviceID, AppliedVersion: applied.Number,
		Fingerprints: map[string][]string{}, SyncedAt: time.Now().UTC(),
	}
	if h, err := os.Hostname(); err == nil {
		st.Hostname = h
	}
	if syncErr != nil {
		st.LastError = syncErr.Error()
	}
	for _, e := range applied.Entries {
		st.Fingerprints[string(e.List)] = append(st.Fingerprints[string(e.List)], e.Fingerprint)
	}
	for _, fps := range st.Fingerprints {
		slices.Sort(fps)
	}
	// After a failed sync the report's failure says nothing new.
	if err := r.client.ReportStatus(ctx, st); err != nil && syncErr == nil {
		s.log.Warn("report trust status to the vault", "error", err)
	}
}

// syncTarget hands the vault's set to the trust store and, with
// auto-apply on, applies what it staged.
type syncTarget struct{ s *Service }

func (t syncTarget) Versions() map[vault.Key]int {
	known := t.s.Known()
	out := make(map[vault.Key]int, len(known))
	for k, v := range known {
		out[vault.Key{List: string(k.List), Name: k.Name}] = v
	}
	return out
}

func (t syncTarget) Stage(ctx context.Context, set []vault.Secret) error {
	remote := make([]trust.Remote, 0, len(set))
	for _, sec := range set {
		remote = append(remote, trust.Remote{List: trust.ListName(sec.List), Name: sec.Name, Version: sec.Version, Data: sec.Data})
	}
	v, changed, err := t.s.StageSync(remote, "vault sync")
	if err != nil || !changed {
		return err
	}
	for _, r := range v.Rejected {
		t.s.log.Warn("vault certificate rejected", "list", r.List, "name", r.Name, "reason", r.Reason)
	}
	if !t.s.current.Load().cfg.AutoApply {
		t.s.log.Info("vault sync staged a new trust version; apply it to use it", "version", v.Number)
		return nil
	}
	if _, err := t.s.Apply(ctx, v.Number, trust.ApplyOptions{By: "vault sync (auto-apply)"}); err != nil {
		var ce *trust.ConfirmationError
		if errors.As(err, &ce) {
			t.s.log.Warn("synced trust version left staged: it needs an operator's confirmation", "version", v.Number, "reason", err)
			return nil
		}
		return fmt.Errorf("auto-apply trust version %d: %w", v.Number, err)
	}
	return nil
}
