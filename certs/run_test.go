package certs

import (
	"context"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/certs/keyseal"
)

// A certificate stored while Run sleeps (its timer an hour away, the local
// listener certificate being months from due) is renewed on time: here a
// 30-minute ACME certificate, due after 20.
func TestRunWakesForNewCertificates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		db, err := bbolt.Open(filepath.Join(dir, "run.db"), 0o600, &bbolt.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		seal, err := keyseal.LoadOrCreate(filepath.Join(dir, "device.key"), true)
		if err != nil {
			t.Fatal(err)
		}
		authority, err := ca.Open(db, ca.Options{DeviceName: "run", Sealer: seal})
		if err != nil {
			t.Fatal(err)
		}
		m, err := Open(Options{DB: db, Sealer: seal, CA: authority, TLS: &tlsRecorder{}, ServerNames: []string{"localhost"},
			ServerValidity: 90 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			m.Run(ctx)
		}()
		synctest.Wait() // Run is asleep, its timer at an hour

		acme := newFakeACME(t, time.Now)
		acme.validity = 30 * time.Minute
		m.SetACME(acme)
		c, err := m.ObtainACME(ctx, Meta{}, []string{"gw.example.com"}, true)
		if err != nil {
			t.Fatal(err)
		}
		// Due at 20 of 30 minutes, plus up to a tenth of the lifetime of jitter.
		time.Sleep(time.Until(time.UnixMilli(c.Renewal.NextAttempt)) + time.Second)
		synctest.Wait()
		got, err := m.Get(c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Serial == c.Serial {
			t.Fatalf("not renewed a second after its planned time (%v)", time.UnixMilli(c.Renewal.NextAttempt))
		}
		cancel()
		<-done
	})
}
