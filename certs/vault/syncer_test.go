package vault_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegate/edgegate/certs/vault"
	"github.com/edgegate/edgegate/certs/vault/vaulttest"
)

// memTarget is a trust store: it keeps the last staged set.
type memTarget struct {
	mu     sync.Mutex
	held   map[vault.Key]vault.Secret
	stages int
	last   []vault.Secret
}

func newMemTarget() *memTarget { return &memTarget{held: map[vault.Key]vault.Secret{}} }

func (m *memTarget) Versions() map[vault.Key]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[vault.Key]int, len(m.held))
	for k, s := range m.held {
		out[k] = s.Version
	}
	return out
}

func (m *memTarget) Stage(_ context.Context, set []vault.Secret) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := map[vault.Key]vault.Secret{}
	for _, s := range set {
		k := vault.Key{List: s.List, Name: s.Name}
		if s.Data == nil {
			s = m.held[k] // unchanged
		}
		next[k] = s
	}
	m.held, m.last = next, set
	m.stages++
	return nil
}

func (m *memTarget) snapshot() (map[vault.Key]string, int, []vault.Secret) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[vault.Key]string{}
	for k, s := range m.held {
		out[k] = string(s.Data)
	}
	return out, m.stages, m.last
}

func TestSyncFetchesOnlyChangedVersions(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{})
	srv.Put("edgegate/trust/a", map[string]string{"certificate": pemA})
	srv.Put("edgegate/trust/b", map[string]string{"certificate": pemA})
	srv.Put("edgegate/issuer/c", map[string]string{"certificate": pemB})
	c, _ := newClient(t, srv, appRoleAuth(srv))
	target := newMemTarget()
	var reports []error
	s := vault.NewSyncer(vault.SyncerOptions{Source: c, Target: target,
		Report: func(_ context.Context, err error) { reports = append(reports, err) }})

	res, err := s.SyncNow(t.Context())
	if err != nil || res.Listed != 3 || res.Fetched != 3 {
		t.Fatalf("first sync = %+v, %v; want 3 listed and fetched", res, err)
	}
	if n := srv.Counts().DataReads; n != 3 {
		t.Errorf("%d data reads in the first sync, want 3", n)
	}

	srv.ResetCounts()
	res, err = s.SyncNow(t.Context())
	if err != nil || res.Listed != 3 || res.Fetched != 0 {
		t.Fatalf("sync with nothing changed = %+v, %v", res, err)
	}
	_, stages, last := target.snapshot()
	for _, sec := range last {
		if sec.Data != nil {
			t.Errorf("unchanged %s/%s staged with data; want nil", sec.List, sec.Name)
		}
	}
	if n := srv.Counts().DataReads; n != 0 || stages != 2 {
		t.Errorf("%d data reads and %d stages after an unchanged sync, want 0 and 2", n, stages)
	}

	srv.Put("edgegate/trust/b", map[string]string{"certificate": pemB})
	srv.Delete("edgegate/issuer/c")
	srv.ResetCounts()
	res, err = s.SyncNow(t.Context())
	if err != nil || res.Listed != 2 || res.Fetched != 1 {
		t.Fatalf("sync after one change = %+v, %v", res, err)
	}
	if n := srv.Counts().DataReads; n != 1 {
		t.Errorf("%d data reads for one changed secret, want 1", n)
	}
	held, _, _ := target.snapshot()
	want := map[vault.Key]string{{List: "trust", Name: "a"}: pemA, {List: "trust", Name: "b"}: pemB}
	if !maps.Equal(held, want) {
		t.Errorf("target holds %v, want %v", held, want)
	}
	if len(reports) != 3 || reports[0] != nil || reports[2] != nil {
		t.Errorf("reports %v, want three successes", reports)
	}
	if st := s.Status(); st.Syncs != 3 || st.Errors != 0 || st.LastResult.Fetched != 1 || st.LastSuccess.IsZero() {
		t.Errorf("status %+v", st)
	}
}

// A failed attempt stages nothing, so the target keeps its last-known-good
// set; once the vault is back the next attempt converges.
func TestSyncFailureKeepsLastKnownGood(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{})
	srv.Put("edgegate/trust/a", map[string]string{"certificate": pemA})
	srv.Put("edgegate/trust/b", map[string]string{"certificate": pemA})
	c, _ := newClient(t, srv, tokenAuth(srv), func(c *vault.Config) { c.Timeout = 2 * time.Second })
	target := newMemTarget()
	s := vault.NewSyncer(vault.SyncerOptions{Source: c, Target: target})
	if _, err := s.SyncNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	good, _, _ := target.snapshot()

	srv.Put("edgegate/trust/a", map[string]string{"certificate": pemB})
	srv.Put("edgegate/trust/b", map[string]string{"certificate": pemB})
	// One of the two reads fails: the other must not be staged alone.
	srv.Fail(func(r *http.Request) (int, string, bool) {
		return 500, `{"errors":["internal error"]}`, r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/data/edgegate/trust/b")
	})
	_, err := s.SyncNow(t.Context())
	if !errors.Is(err, vault.ErrUnavailable) {
		t.Fatalf("sync with a failing read: %v, want ErrUnavailable", err)
	}
	srv.Fail(nil)
	srv.Stop()
	if _, err := s.SyncNow(t.Context()); !errors.Is(err, vault.ErrUnavailable) {
		t.Fatalf("sync with the vault down: %v, want ErrUnavailable", err)
	}
	held, stages, _ := target.snapshot()
	if stages != 1 || !maps.Equal(held, good) {
		t.Fatalf("after failed syncs: %d stages, target %v; want 1 stage and the last good set", stages, held)
	}
	if st := s.Status(); st.ConsecutiveFailures != 2 || st.Errors != 2 || st.LastError == "" {
		t.Errorf("status after two failures: %+v", st)
	}

	srv.Start()
	if _, err := s.SyncNow(t.Context()); err != nil {
		t.Fatalf("sync with the vault back: %v", err)
	}
	held, _, _ = target.snapshot()
	want := map[vault.Key]string{{List: "trust", Name: "a"}: pemB, {List: "trust", Name: "b"}: pemB}
	if !maps.Equal(held, want) {
		t.Errorf("target holds %v, want %v", held, want)
	}
	if st := s.Status(); st.ConsecutiveFailures != 0 || st.LastError != "" {
		t.Errorf("status after recovery: %+v", st)
	}
}

// memSource is a vault in memory for the timer tests, which run in a
// synctest bubble where real network I/O has no place.
type memSource struct {
	mu       sync.Mutex
	refs     []vault.Ref
	failing  bool
	gate     chan struct{} // if not nil, List waits for it
	entered  chan struct{} // if not nil, List signals here first
	inFlight int
	maxIn    int
	lists    int
	reads    int
}

func (m *memSource) List(ctx context.Context) ([]vault.Ref, error) {
	m.mu.Lock()
	m.lists++
	m.inFlight++
	m.maxIn = max(m.maxIn, m.inFlight)
	gate, entered := m.gate, m.entered
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.inFlight--
		m.mu.Unlock()
	}()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failing {
		return nil, vault.ErrUnavailable
	}
	return append([]vault.Ref(nil), m.refs...), nil
}

func (m *memSource) Read(_ context.Context, r vault.Ref) (vault.Secret, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	return vault.Secret{Ref: r, Data: []byte(pemA)}, nil
}

func (m *memSource) set(fn func(*memSource)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(m)
}

func TestRunBacksOffThenConverges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &memSource{failing: true, refs: []vault.Ref{{List: vault.TrustList, Name: "a", Version: 1}}}
		target := newMemTarget()
		s := vault.NewSyncer(vault.SyncerOptions{
			Source: src, Target: target,
			Interval: 10 * time.Minute, Jitter: 0.1, MaxBackoff: 5 * time.Minute,
		})
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() { s.Run(ctx) })

		// The first attempt is immediate; then 1m (Interval/10), 2m, 4m, 5m (the cap), 5m.
		for i, base := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute} {
			synctest.Wait()
			st := s.Status()
			if st.ConsecutiveFailures != i+1 {
				t.Fatalf("attempt %d: %d consecutive failures", i+1, st.ConsecutiveFailures)
			}
			checkDelay(t, st, base, 0.1)
			time.Sleep(time.Until(st.NextAttempt)) // fake time: jumps to the next attempt
		}
		synctest.Wait()
		if _, stages, _ := target.snapshot(); stages != 0 {
			t.Fatalf("Stage called %d times while every attempt failed", stages)
		}

		src.set(func(m *memSource) { m.failing = false })
		time.Sleep(time.Until(s.Status().NextAttempt))
		synctest.Wait()
		st := s.Status()
		if st.ConsecutiveFailures != 0 || st.Syncs != 1 || st.Errors != 6 {
			t.Fatalf("after the vault came back: %+v", st)
		}
		checkDelay(t, st, 10*time.Minute, 0.1)
		if held, _, _ := target.snapshot(); held[vault.Key{List: vault.TrustList, Name: "a"}] != pemA {
			t.Errorf("target holds %v after convergence", held)
		}
		cancel()
		wg.Wait()
	})
}

// checkDelay checks that the next attempt is base away, within the jitter.
func checkDelay(t *testing.T, st vault.SyncStatus, base time.Duration, jitter float64) {
	t.Helper()
	d := st.NextAttempt.Sub(st.LastAttempt)
	lo, hi := time.Duration(float64(base)*(1-jitter)), time.Duration(float64(base)*(1+jitter))
	if d < lo || d > hi {
		t.Errorf("next attempt in %v, want within [%v, %v]", d, lo, hi)
	}
}

func TestRunJitterWithinBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &memSource{}
		s := vault.NewSyncer(vault.SyncerOptions{Source: src, Target: newMemTarget(), Interval: time.Minute, Jitter: 0.2})
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() { s.Run(ctx) })
		seen := map[time.Duration]bool{}
		for range 50 {
			synctest.Wait()
			st := s.Status()
			checkDelay(t, st, time.Minute, 0.2)
			seen[st.NextAttempt.Sub(st.LastAttempt)] = true
			time.Sleep(time.Until(st.NextAttempt))
		}
		if len(seen) < 10 {
			t.Errorf("%d distinct delays in 50 syncs: no jitter?", len(seen))
		}
		cancel()
		wg.Wait()
	})
}

func TestSyncNowWaitsForRunsAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		src := &memSource{gate: gate, entered: make(chan struct{}, 4)}
		s := vault.NewSyncer(vault.SyncerOptions{Source: src, Target: newMemTarget(), Interval: time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() { s.Run(ctx) })
		<-src.entered // Run's first attempt is in List

		done := make(chan error, 1)
		wg.Go(func() {
			_, err := s.SyncNow(ctx)
			done <- err
		})
		synctest.Wait()
		src.mu.Lock()
		lists := src.lists
		src.mu.Unlock()
		if lists != 1 {
			t.Fatalf("SyncNow started listing while Run's attempt was in progress (%d lists)", lists)
		}

		// A SyncNow that gives up while waiting for its turn returns at once.
		short, stop := context.WithCancel(ctx)
		stop()
		if _, err := s.SyncNow(short); !errors.Is(err, context.Canceled) {
			t.Errorf("SyncNow with a canceled context while busy: %v", err)
		}

		close(gate)
		if err := <-done; err != nil {
			t.Fatalf("SyncNow: %v", err)
		}
		synctest.Wait()
		if src.maxIn != 1 || src.lists != 2 || s.Status().Syncs != 2 {
			t.Errorf("max %d attempts at once, %d lists, %d syncs; want 1, 2, 2", src.maxIn, src.lists, s.Status().Syncs)
		}
		cancel()
		wg.Wait()
	})
}

// Stage errors fail the attempt too.
type failingTarget struct{ memTarget }

func (*failingTarget) Stage(context.Context, []vault.Secret) error { return errors.New("disk full") }

func TestStageErrorFailsAttempt(t *testing.T) {
	t.Parallel()
	src := &memSource{refs: []vault.Ref{{List: vault.TrustList, Name: "a", Version: 1}}}
	var reported error
	s := vault.NewSyncer(vault.SyncerOptions{Source: src, Target: &failingTarget{},
		Report: func(_ context.Context, err error) { reported = err }})
	if _, err := s.SyncNow(t.Context()); err == nil || reported == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("SyncNow = %v, reported %v; want the stage error", err, reported)
	}
}
