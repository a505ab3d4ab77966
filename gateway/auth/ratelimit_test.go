package auth

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func TestFailureLimiter(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	l := newFailureLimiter(clock.now, 3, time.Minute)
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")

	for i := range 3 {
		if l.blocked(a) {
			t.Fatalf("blocked after %d failures", i)
		}
		l.fail(a)
		clock.advance(time.Second)
	}
	if !l.blocked(a) {
		t.Fatal("not blocked after 3 failures")
	}
	if !l.blocked(netip.MustParseAddr("::ffff:192.0.2.1")) {
		t.Error("IPv4-mapped form of a blocked address is not blocked")
	}
	if l.blocked(b) {
		t.Error("another address is blocked")
	}
	clock.advance(time.Minute - 4*time.Second) // the window started at the first failure
	if !l.blocked(a) {
		t.Error("unblocked before the window ended")
	}
	clock.advance(time.Second)
	if l.blocked(a) {
		t.Error("still blocked after the window")
	}
	l.fail(a) // starts a new window
	if l.blocked(a) {
		t.Error("blocked after one failure in a new window")
	}

	// IPv6 addresses count per /64.
	l.fail(netip.MustParseAddr("2001:db8::1"))
	l.fail(netip.MustParseAddr("2001:db8::2"))
	l.fail(netip.MustParseAddr("2001:db8::3%eth0"))
	if !l.blocked(netip.MustParseAddr("2001:db8::ffff")) {
		t.Error("/64 not blocked")
	}
	if l.blocked(netip.MustParseAddr("2001:db8:0:1::1")) {
		t.Error("another /64 blocked")
	}

	// Changing the limit applies at once.
	l.set(10, time.Minute)
	if l.blocked(netip.MustParseAddr("2001:db8::1")) {
		t.Error("still blocked after the limit was raised")
	}
	l.set(0, time.Minute)
	for range 20 {
		l.fail(b)
	}
	if l.blocked(b) {
		t.Error("limit 0 blocks")
	}
}

func TestFailureLimiterBounded(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	l := newFailureLimiter(clock.now, 2, time.Minute)
	l.limit = 100
	first := netip.MustParseAddr("10.0.0.0")
	l.fail(first)
	l.fail(first)
	for i := range 250 {
		clock.advance(time.Millisecond)
		l.fail(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}))
	}
	if n := l.len(); n != 100 {
		t.Errorf("table holds %d addresses, want 100", n)
	}
	if l.blocked(first) {
		t.Error("oldest entry was not evicted")
	}
	// Expired windows go first, so the table shrinks once time passes.
	clock.advance(2 * time.Minute)
	l.fail(first)
	if n := l.len(); n != 1 {
		t.Errorf("after expiry the table holds %d addresses, want 1", n)
	}
}

func BenchmarkFailureLimiterScan(b *testing.B) {
	clock := newFakeClock()
	l := newFailureLimiter(clock.now, 5, time.Minute)
	for i := 0; b.Loop(); i++ {
		l.fail(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	_ = fmt.Sprint(l.len())
}
