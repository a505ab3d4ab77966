package certs

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/edgegate/edgegate/certs/ca"
)

// Renewal timing.
const (
	// renewBackoffBase is the wait after a first failed renewal; it doubles
	// with each further failure up to renewBackoffCap.
	renewBackoffBase = time.Minute
	renewBackoffCap  = 6 * time.Hour
	// renewJitter spreads renewals of a fleet so they do not all hit one
	// ACME CA or vault at the same minute.
	renewJitter = 10 * time.Minute
	// schedulerMaxSleep bounds the scheduler's sleep, so a changed clock
	// (NTP after a cold boot) is noticed.
	schedulerMaxSleep = time.Hour
)

// needsRenewal reports whether a certificate valid from..to (ms) is due: a
// third of its lifetime or less left, or already expired.
func needsRenewal(from, to int64, now time.Time) bool {
	lifetime := to - from
	return now.UnixMilli() >= to-lifetime/3
}

// renewAt is when a certificate valid from..to becomes due.
func renewAt(from, to int64) time.Time {
	return time.UnixMilli(to - (to-from)/3)
}

// backoff is the wait after the n-th consecutive failure (n ≥ 1), plus up to
// 10 % jitter.
func backoff(n int, jitter func(time.Duration) time.Duration) time.Duration {
	d := renewBackoffBase
	for i := 1; i < n && d < renewBackoffCap; i++ {
		d *= 2
	}
	d = min(d, renewBackoffCap)
	return d + jitter(d/10)
}

func randomJitter(upTo time.Duration) time.Duration {
	if upTo <= 0 {
		return 0
	}
	return rand.N(upTo) //nolint:gosec // spreads renewals in time; nothing to guess
}

// ErrNotRenewable is returned when renewing a certificate whose source
// cannot renew it (an imported one, or a local one without the names to
// issue again).
var ErrNotRenewable = errors.New("certs: certificate cannot be renewed automatically")

// Renew renews id now, whatever its due date, and records the outcome in its
// renewal state. The listeners pick up a renewed serving certificate at
// their next handshake.
func (m *Manager) Renew(ctx context.Context, id string) (Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.renewLocked(ctx, id)
}

// RenewDue renews every auto-renewed certificate that is due and whose
// back-off has passed, and returns the ids it attempted.
func (m *Manager) RenewDue(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	due, _, err := m.dueLocked()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, id := range due {
		if _, err := m.renewLocked(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return due, errors.Join(errs...)
}

// dueLocked lists the certificates to renew now and when the next one
// becomes due (zero if none).
func (m *Manager) dueLocked() (due []string, next time.Time, err error) {
	now := m.now()
	err = m.view(func(t tx) error {
		recs, err := t.records()
		if err != nil {
			return err
		}
		for _, r := range recs {
			if !r.AutoRenew || r.Source == SourceImported || r.Revoked {
				continue
			}
			chain, err := ParseChainPEM(r.Chain)
			if err != nil {
				return fmt.Errorf("%w: %q: %w", ErrCorrupt, r.ID, err)
			}
			at := renewAt(chain[0].NotBefore.UnixMilli(), chain[0].NotAfter.UnixMilli())
			if r.Renewal.NextAttempt > 0 {
				at = time.UnixMilli(r.Renewal.NextAttempt)
			}
			if !now.Before(at) {
				due = append(due, r.ID)
			} else if next.IsZero() || at.Before(next) {
				next = at
			}
		}
		return nil
	})
	return due, next, err
}

func (m *Manager) renewLocked(ctx context.Context, id string) (Certificate, error) {
	var r record
	if err := m.view(func(t tx) error {
		var err error
		r, err = t.record(id)
		return err
	}); err != nil {
		return Certificate{}, fmt.Errorf("certs: renew %q: %w", id, err)
	}
	now := m.now()
	newRec, key, renewErr := m.reissue(ctx, r)
	var next time.Time
	if renewErr == nil {
		chain, err := ParseChainPEM(newRec.Chain)
		if err != nil {
			return Certificate{}, err
		}
		next = m.nextAttempt(ctx, newRec.Source, chain[0])
		newRec.Renewal = r.Renewal
		newRec.Renewal.Failures, newRec.Renewal.LastError, newRec.Renewal.FellBack = 0, "", false
		newRec.Renewal.NextAttempt = next.UnixMilli()
		newRec.Renewal.record(RenewalEvent{At: now.UnixMilli(), OK: true, Serial: chain[0].SerialNumber.Text(16)})
	}
	var serving, fellBack bool
	err := m.update(func(t tx) error {
		cur, err := t.record(id)
		if err != nil {
			return err
		}
		serving = t.serving() == id
		if renewErr != nil {
			cur.Renewal.Failures++
			cur.Renewal.LastError = renewErr.Error()
			cur.Renewal.NextAttempt = now.Add(backoff(cur.Renewal.Failures, randomJitter)).UnixMilli()
			cur.Renewal.record(RenewalEvent{At: now.UnixMilli(), Error: renewErr.Error()})
			if serving && cur.Source == SourceACME && now.Add(acmeFallbackBefore).UnixMilli() > m.notAfter(cur) {
				cur.Renewal.FellBack = true
			}
			return t.put(cur, nil, false)
		}
		fellBack = cur.Renewal.FellBack
		return t.put(newRec, key, false)
	})
	if err != nil {
		return Certificate{}, fmt.Errorf("certs: renew %q: record outcome: %w", id, err)
	}
	if renewErr != nil {
		m.log.Warn("certificate renewal failed", "id", id, "error", renewErr)
		if serving && r.Source == SourceACME {
			m.fallBackIfExpiring(id)
		}
		return Certificate{}, fmt.Errorf("certs: renew %q: %w", id, renewErr)
	}
	m.log.Info("certificate renewed", "id", id)
	switch {
	case serving:
		if err := m.publishServing(); err != nil {
			return Certificate{}, err
		}
	case fellBack:
		// The ACME CA answers again: serve its certificate again.
		if err := m.update(func(t tx) error { return t.setServing(id) }); err != nil {
			return Certificate{}, err
		}
		if err := m.publishServing(); err != nil {
			return Certificate{}, err
		}
		m.log.Info("serving the ACME certificate again", "id", id)
	}
	return m.Get(id)
}

// nextAttempt is when a certificate just obtained from source becomes due:
// the ACME CA's window when it has one, else a third of its life before
// expiry, spread by jitter (zero would make a fleet renew at once).
func (m *Manager) nextAttempt(ctx context.Context, source Source, leaf *x509.Certificate) time.Time {
	if c := m.acmeClient(); source == SourceACME && c != nil {
		return m.nextACMEAttempt(ctx, c, leaf)
	}
	return dueWithJitter(leaf)
}

// dueWithJitter is when leaf is due (a third of its life left) plus a random
// delay of up to renewJitter, or a tenth of its lifetime for short-lived
// certificates, which must not wait minutes.
func dueWithJitter(leaf *x509.Certificate) time.Time {
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	return renewAt(leaf.NotBefore.UnixMilli(), leaf.NotAfter.UnixMilli()).Add(randomJitter(min(renewJitter, lifetime/10)))
}

// notAfter is the expiry (ms) of r's leaf, 0 if it does not parse.
func (m *Manager) notAfter(r record) int64 {
	chain, err := ParseChainPEM(r.Chain)
	if err != nil {
		return 0
	}
	return chain[0].NotAfter.UnixMilli()
}

// fallBackIfExpiring makes the listeners serve a local certificate when the
// ACME certificate id, which cannot be renewed, expires within
// acmeFallbackBefore. Its renewal keeps being retried; success serves it
// again. Callers hold m.mu.
func (m *Manager) fallBackIfExpiring(id string) {
	c, err := m.Get(id)
	if err != nil || !c.Renewal.FellBack {
		return
	}
	m.log.Error("ACME renewal keeps failing close to expiry: the listeners serve the local CA's certificate",
		"id", id, "expires", time.UnixMilli(c.To).UTC(), "error", c.Renewal.LastError)
	if err := m.update(func(t tx) error { return t.setServing(ServerCertificateID) }); err != nil {
		m.log.Error("fall back to the local certificate", "error", err)
		return
	}
	if err := m.ensureServing(); err != nil {
		m.log.Error("fall back to the local certificate", "error", err)
	}
}

// reissue obtains a new certificate for r from its source. It runs without
// a transaction: issuing may take a while (ACME).
func (m *Manager) reissue(ctx context.Context, r record) (record, crypto.Signer, error) {
	var (
		chain []*x509.Certificate
		key   crypto.Signer
		err   error
	)
	switch {
	case r.Source == SourceLocal && r.ID == ServerCertificateID:
		chain, key, err = m.issueServerPair()
	case r.Source == SourceLocal && r.Issue != nil:
		var issued *ca.Issued
		if issued, err = m.issue(r.CARef, *r.Issue); err == nil {
			chain, key = append([]*x509.Certificate{issued.Cert}, issued.Chain...), issued.Key
		}
	case r.Source == SourceACME:
		chain, key, err = m.renewACME(ctx, r)
	default:
		err = fmt.Errorf("%w: source %q", ErrNotRenewable, r.Source)
	}
	if err != nil {
		return record{}, nil, err
	}
	r.Chain = EncodeChainPEM(chain)
	if r.Source != SourceACME { // an ACME certificate keeps the names it was ordered for
		r.Names = sans(chain[0])
	}
	r.Revoked, r.RevocationReason, r.RevokedAt = false, "", 0
	return r, key, nil
}

// maintainCA runs the local CA's maintenance and acts on what changed: a
// new issuer gets the listeners a certificate from it, a changed trust
// bundle is published. It returns when the CA is next due.
func (m *Manager) maintainCA(ctx context.Context) time.Time {
	res, err := m.o.CA.Maintain()
	if err != nil {
		m.log.Error("local CA maintenance", "error", err)
		return m.now().Add(time.Hour)
	}
	m.afterCAChange(ctx, res.IssuerChanged, res.TrustBundleChanged)
	if res.RootRenewalDue {
		m.log.Warn("the local CA's root has a third of its life left: rotate it (edgegate ca rotate) so sensors get the new root in time")
	}
	if res.ImportedIssuerRenewalDue {
		m.log.Warn("the imported issuer has a third of its life left: import its successor, or the local issuer takes over when it expires")
	}
	return res.NextMaintenance
}

// afterCAChange gets the listeners a certificate from a new issuer and
// publishes a changed trust bundle.
func (m *Manager) afterCAChange(ctx context.Context, issuerChanged, bundleChanged bool) {
	if issuerChanged {
		if _, err := m.Renew(ctx, ServerCertificateID); err != nil {
			m.log.Error("re-issue the listener certificate from the new issuer", "error", err)
		}
	}
	if bundleChanged {
		if err := m.publishClientCAs(); err != nil {
			m.log.Error("publish the new trust bundle", "error", err)
		}
		if m.o.OnTrustBundleChange != nil {
			m.o.OnTrustBundleChange()
		}
	}
}

// RotateRoot starts a root rotation of the local CA (a new root and
// intermediate, the old root trusted during the overlap) and re-issues the
// listener certificate from the new intermediate.
func (m *Manager) RotateRoot(kt ca.KeyType) error {
	if err := m.o.CA.RotateRoot(kt); err != nil {
		return err
	}
	m.afterCAChange(context.Background(), true, true)
	return nil
}

// FinishRootRotation ends a root rotation's overlap: the old root is no
// longer trusted.
func (m *Manager) FinishRootRotation() error {
	if err := m.o.CA.FinishRootRotation(); err != nil {
		return err
	}
	m.afterCAChange(context.Background(), false, true)
	return nil
}

// Run renews due certificates until ctx ends: at start (a gateway that was
// off for months renews what expired), then whenever the next one is due,
// looking again after every change to the store.
func (m *Manager) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var caDue time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-m.wake:
			timer.Stop()
		}
		if !m.now().Before(caDue) {
			caDue = m.maintainCA(ctx)
		}
		if _, err := m.RenewDue(ctx); err != nil {
			m.log.Warn("certificate renewal", "error", err)
		}
		m.mu.Lock()
		_, next, err := m.dueLocked()
		m.mu.Unlock()
		sleep := schedulerMaxSleep
		if err != nil {
			m.log.Error("certificate renewal schedule", "error", err)
		} else if !next.IsZero() {
			sleep = min(sleep, max(time.Second, next.Sub(m.now())))
		}
		if !caDue.IsZero() {
			sleep = min(sleep, max(time.Second, caDue.Sub(m.now())))
		}
		timer.Reset(sleep)
	}
}
