package vault

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Key names a secret of a list, whatever its version.
type Key struct {
	List, Name string
}

// Target receives what the vault holds: the trust store.
type Target interface {
	// Versions returns the vault versions the target already holds (and
	// those of names it ignores), by list and name, so that only changed
	// versions are fetched.
	Versions() map[Key]int
	// Stage receives the vault's whole current set, sorted by list and
	// name; Secret.Data is nil for a secret whose version equals
	// Versions()[key].
	Stage(ctx context.Context, set []Secret) error
}

// Source is where secrets come from. *Client implements it.
type Source interface {
	List(ctx context.Context) ([]Ref, error)
	Read(ctx context.Context, r Ref) (Secret, error)
}

// Syncer defaults.
const (
	DefaultInterval   = 5 * time.Minute
	DefaultJitter     = 0.1
	DefaultMaxBackoff = 30 * time.Minute
	minBackoff        = 5 * time.Second
)

// SyncerOptions configures a Syncer.
type SyncerOptions struct {
	Source     Source
	Target     Target
	Interval   time.Duration // between successful syncs; default 5m
	Jitter     float64       // each delay varies by ± this fraction; default 0.1
	MaxBackoff time.Duration // failures back off exponentially from Interval/10 (at least 5s) to this; default 30m
	// Report is called after each attempt with its error (nil on success),
	// e.g. to report the device's status. May be nil.
	Report func(ctx context.Context, err error)
	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default slog.Default()
}

// SyncResult is what one successful sync did.
type SyncResult struct {
	Listed, Fetched int
	Duration        time.Duration
}

// SyncStatus is the syncer's state, for the UI and API.
type SyncStatus struct {
	LastAttempt, LastSuccess, NextAttempt time.Time
	LastError                             string
	ConsecutiveFailures                   int
	Syncs, Errors                         uint64
	LastResult                            SyncResult
}

// Syncer polls a Source and hands its set to a Target.
type Syncer struct {
	o   SyncerOptions
	log *slog.Logger

	// attempt holds a token while an attempt runs, Run's or SyncNow's, so
	// they go one at a time; a channel rather than a mutex so that a caller
	// waiting for its turn can give up when its ctx ends.
	attempt chan struct{}

	mu     sync.Mutex // guards status
	status SyncStatus
}

// NewSyncer returns a syncer; Source and Target are required.
func NewSyncer(o SyncerOptions) *Syncer {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Jitter <= 0 || o.Jitter >= 1 {
		o.Jitter = DefaultJitter
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Syncer{o: o, log: o.Logger, attempt: make(chan struct{}, 1)}
}

// Run syncs at once, then after each interval (with jitter), backing off
// exponentially while attempts fail. It returns when ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		_, err := s.SyncNow(ctx)
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		d := s.delay(err, s.status.ConsecutiveFailures, rand.Float64()) //nolint:gosec // G404: jitter spreads a fleet's polls; it needs no secrecy
		s.status.NextAttempt = s.o.Now().Add(d)
		s.mu.Unlock()
		timer.Reset(d)
	}
}

// delay is the wait before the next attempt: the interval after a success,
// otherwise max(Interval/10, 5s) doubled per consecutive failure up to
// MaxBackoff; either varied by ±Jitter, r being uniform in [0, 1).
func (s *Syncer) delay(err error, failures int, r float64) time.Duration {
	d := s.o.Interval
	if err != nil {
		d = max(s.o.Interval/10, minBackoff)
		for i := 1; i < failures && d < s.o.MaxBackoff; i++ {
			d *= 2
		}
		d = min(d, s.o.MaxBackoff)
	}
	return time.Duration(float64(d) * (1 + s.o.Jitter*(2*r-1)))
}

// SyncNow runs one attempt, after any attempt in progress: list the
// source, fetch what changed, stage the whole set. On any failure nothing is
// staged and the target keeps what it has. If ctx ends while it waits for
// its turn, it returns ctx's error without an attempt.
func (s *Syncer) SyncNow(ctx context.Context) (SyncResult, error) {
	select {
	case s.attempt <- struct{}{}:
	case <-ctx.Done():
		return SyncResult{}, fmt.Errorf("vault sync: waiting for the attempt in progress: %w", ctx.Err())
	}
	defer func() { <-s.attempt }()
	start := s.o.Now()
	res, err := s.sync(ctx)
	end := s.o.Now()
	res.Duration = end.Sub(start)

	s.mu.Lock()
	st := &s.status
	st.LastAttempt = end
	if err != nil {
		st.LastError = err.Error()
		st.ConsecutiveFailures++
		st.Errors++
	} else {
		st.LastSuccess = end
		st.LastError = ""
		st.ConsecutiveFailures = 0
		st.Syncs++
		st.LastResult = res
	}
	failures := st.ConsecutiveFailures
	s.mu.Unlock()

	switch {
	case err != nil:
		s.log.Warn("vault sync failed", "err", err, "consecutive_failures", failures)
	case res.Fetched > 0:
		s.log.Info("vault sync", "listed", res.Listed, "fetched", res.Fetched, "duration", res.Duration)
	default:
		s.log.Debug("vault sync: nothing changed", "listed", res.Listed, "duration", res.Duration)
	}
	if s.o.Report != nil {
		s.o.Report(ctx, err)
	}
	return res, err
}

func (s *Syncer) sync(ctx context.Context) (SyncResult, error) {
	if s.o.Source == nil || s.o.Target == nil {
		return SyncResult{}, errors.New("vault sync: no source or target")
	}
	refs, err := s.o.Source.List(ctx)
	if err != nil {
		return SyncResult{}, fmt.Errorf("vault sync: %w", err)
	}
	slices.SortFunc(refs, func(a, b Ref) int {
		return cmp.Or(cmp.Compare(a.List, b.List), cmp.Compare(a.Name, b.Name))
	})
	have := s.o.Target.Versions()
	res := SyncResult{Listed: len(refs)}
	set := make([]Secret, 0, len(refs))
	for _, ref := range refs {
		if v, ok := have[Key{ref.List, ref.Name}]; ok && v == ref.Version {
			set = append(set, Secret{Ref: ref})
			continue
		}
		secret, err := s.o.Source.Read(ctx, ref)
		if err != nil {
			return SyncResult{}, fmt.Errorf("vault sync: %w", err)
		}
		if secret.Data == nil { // nil means "unchanged" to the target
			secret.Data = []byte{}
		}
		set = append(set, secret)
		res.Fetched++
	}
	if err := s.o.Target.Stage(ctx, set); err != nil {
		return SyncResult{}, fmt.Errorf("vault sync: stage: %w", err)
	}
	return res, nil
}

// Status returns the syncer's state.
func (s *Syncer) Status() SyncStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}
