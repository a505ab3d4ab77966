package trust

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Apply applies staged version number: it validates it again (time has
// passed since it was staged; entries no longer valid move to Rejected),
// asks for confirmation when it removes CAs in use or empties the trust list
// (*ConfirmationError), publishes uploaded entries when a Publisher is set,
// then in one transaction makes it the applied version and the old one
// superseded. Only after that commits does the live snapshot change and
// OnApply run. ErrNoStaged when nothing is staged, ErrStale when number is
// not the staged version.
func (s *Store) Apply(ctx context.Context, number uint64, o ApplyOptions) (Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v, applied Version
	err := s.view(func(t tx) error {
		staged := t.meta(keyStaged)
		switch {
		case staged == 0:
			return ErrNoStaged
		case staged != number:
			return fmt.Errorf("%w (version %d is staged)", ErrStale, staged)
		}
		var err error
		if v, err = t.version(staged); err != nil {
			return err
		}
		applied, err = t.versionOrEmpty(t.meta(keyApplied))
		return err
	})
	if err != nil {
		return Version{}, fmt.Errorf("trust: apply version %d: %w", number, err)
	}
	v, err = s.apply(ctx, v, applied, o)
	if err != nil {
		return Version{}, fmt.Errorf("trust: apply version %d: %w", number, err)
	}
	return v, nil
}

// Rollback makes a new version with the entries (and tombstones) of the
// version applied before the current one, and applies it at once, like
// Apply. A staged version is discarded: it was built on the version rolled
// back from. ErrNotFound when there is no previous version (or it was
// pruned). Rolling back twice returns to where the first began.
func (s *Store) Rollback(ctx context.Context, o ApplyOptions) (Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var prev, applied Version
	err := s.view(func(t tx) error {
		var err error
		if applied, err = t.versionOrEmpty(t.meta(keyApplied)); err != nil {
			return err
		}
		if applied.Previous == 0 {
			return fmt.Errorf("%w: no previous applied version", ErrNotFound)
		}
		if prev, err = t.version(applied.Previous); err != nil {
			return fmt.Errorf("previous version %d: %w", applied.Previous, err)
		}
		return nil
	})
	if err != nil {
		return Version{}, fmt.Errorf("trust: rollback: %w", err)
	}
	v := Version{
		Origin:    OriginRollback,
		Note:      fmt.Sprintf("rollback to version %d", prev.Number),
		CreatedAt: s.now(),
		CreatedBy: o.By,
		Base:      applied.Number,
		Entries:   slices.Clone(prev.Entries),
		Rejected:  slices.Clone(prev.Rejected),
		Removed:   slices.Clone(prev.Removed),
	}
	v, err = s.apply(ctx, v, applied, o)
	if err != nil {
		return Version{}, fmt.Errorf("trust: rollback to version %d: %w", prev.Number, err)
	}
	s.log.Info("trust: rolled back", "version", v.Number, "to", prev.Number, "from", applied.Number, "by", o.By)
	return v, nil
}

// apply validates, confirms, publishes and commits v (numbering it when it
// has no number yet) in place of applied. Callers hold s.mu.
func (s *Store) apply(ctx context.Context, v, applied Version, o ApplyOptions) (Version, error) {
	now := s.now()
	valid, rejected := Validate(v.Entries, now)
	v.Entries = valid
	v.Rejected = append(v.Rejected, rejected...)
	if err := s.confirm(v, applied, o); err != nil {
		return Version{}, err
	}
	v = s.publish(ctx, v)
	err := s.update(func(t tx) error {
		if v.Number == 0 {
			n, err := t.nextNumber()
			if err != nil {
				return err
			}
			v.Number = n
		}
		// Read again inside the transaction: what counts is what is stored.
		current, staged := t.meta(keyApplied), t.meta(keyStaged)
		if current != 0 {
			if err := t.setState(current, StateSuperseded); err != nil {
				return err
			}
		}
		if staged != 0 && staged != v.Number {
			if err := t.setState(staged, StateDiscarded); err != nil {
				return err
			}
		}
		v.State, v.AppliedAt, v.AppliedBy, v.Previous = StateApplied, now, o.By, current
		if err := t.put(v); err != nil {
			return err
		}
		if err := t.setMeta(keyApplied, v.Number); err != nil {
			return err
		}
		if err := t.setMeta(keyStaged, 0); err != nil {
			return err
		}
		return t.prune(s.history)
	})
	if err != nil {
		return Version{}, err
	}
	v.normalize()
	s.logRejections(v.Number, rejected)
	s.log.Info("trust: version applied", "version", v.Number, "origin", v.Origin, "by", o.By, "previous", v.Previous,
		"trust", v.Counts.Trust, "issuer", v.Counts.Issuer, "rejected", v.Counts.Rejected, "confirmed", o.Confirm)
	s.publishSnapshot(v)
	return v, nil
}

// confirm returns a *ConfirmationError when v removes CAs of applied that
// connected sessions use, or empties its trust list, and o does not confirm.
func (s *Store) confirm(v, applied Version, o ApplyOptions) error {
	if o.Confirm {
		return nil
	}
	type key struct {
		list ListName
		fp   string
	}
	kept := make(map[key]bool)
	for _, e := range v.Entries {
		kept[key{e.List, e.Fingerprint}] = true
	}
	var (
		names []string
		certs []*x509.Certificate
	)
	for _, e := range applied.Entries {
		if kept[key{e.List, e.Fingerprint}] {
			continue
		}
		c, err := e.Certificate()
		if err != nil {
			continue // it cannot have authenticated anyone
		}
		names = append(names, e.Name)
		certs = append(certs, c)
	}
	ce := &ConfirmationError{
		Version:          v.Number,
		EmptiesTrustList: len(applied.List(TrustList)) > 0 && len(v.List(TrustList)) == 0,
	}
	if s.o.SessionsUsing != nil && len(certs) > 0 {
		ce.Sessions = s.o.SessionsUsing(certs)
		if ce.Sessions > 0 {
			// Name the CAs in use; asking per CA is cheap next to an apply.
			for i, c := range certs {
				if len(certs) == 1 || s.o.SessionsUsing([]*x509.Certificate{c}) > 0 {
					ce.CAs = append(ce.CAs, names[i])
				}
			}
		}
	}
	if ce.Sessions > 0 || ce.EmptiesTrustList {
		return ce
	}
	return nil
}

// publish writes v's uploaded entries to the vault, making them
// vault-sourced. A failure does not stop the apply: it is logged and kept
// in v.PublishError, and the entry stays upload-sourced (a later apply
// tries again). A Publisher returning ErrNotPublished leaves entries
// upload-sourced with no error.
func (s *Store) publish(ctx context.Context, v Version) Version {
	if s.o.Publisher == nil {
		return v
	}
	v.Entries = slices.Clone(v.Entries)
	var failed []string
	for i, e := range v.Entries {
		if e.Source.Kind != SourceUpload {
			continue
		}
		n, err := s.o.Publisher.Publish(ctx, e.List, e.Name, e.PEM())
		if errors.Is(err, ErrNotPublished) {
			s.log.Debug("trust: uploaded entry not published: publishing is off", "version", v.Number, "list", e.List, "name", e.Name)
			continue
		}
		if err != nil {
			s.log.Error("trust: publish uploaded entry to the vault", "version", v.Number, "list", e.List, "name", e.Name, "error", err)
			failed = append(failed, fmt.Sprintf("%s/%s: %v", e.List, e.Name, err))
			continue
		}
		v.Entries[i].Source = Source{Kind: SourceVault, Name: e.Name, Version: n}
		s.log.Info("trust: uploaded entry published to the vault", "version", v.Number, "list", e.List, "name", e.Name, "secretVersion", n)
	}
	v.PublishError = strings.Join(failed, "; ")
	return v
}
