package auth

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// maxLimiterEntries bounds the failed-login table: a scan from many
// addresses evicts the oldest windows instead of growing memory.
const maxLimiterEntries = 10_000

// failureLimiter counts failed logins per remote address in fixed windows
// that start at an address's first failure. An address with max failures in
// its current window is refused until the window ends. A successful login
// does not reset the count, so one valid account cannot be used to keep
// guessing another's password.
type failureLimiter struct {
	now func() time.Time

	mu     sync.Mutex
	max    int
	window time.Duration
	limit  int                          // table size bound
	byKey  map[netip.Addr]*list.Element // of *failWindow
	order  list.List                    // *failWindow, oldest start first
}

type failWindow struct {
	key      netip.Addr
	start    time.Time
	failures int
}

func newFailureLimiter(now func() time.Time, maxFailures int, window time.Duration) *failureLimiter {
	return &failureLimiter{now: now, max: maxFailures, window: window, limit: maxLimiterEntries, byKey: map[netip.Addr]*list.Element{}}
}

// set changes the limit; counts already taken are kept.
func (l *failureLimiter) set(maxFailures int, window time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.max, l.window = maxFailures, window
}

// limiterKey groups addresses: an IPv6 client usually controls a whole /64,
// so that is what is counted. An unknown address (a pipe) is one key, the
// zero Addr.
func limiterKey(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// blocked reports whether logins from addr are refused now.
func (l *failureLimiter) blocked(addr netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max <= 0 {
		return false
	}
	e, ok := l.byKey[limiterKey(addr)]
	if !ok {
		return false
	}
	w := e.Value.(*failWindow)
	return w.failures >= l.max && l.now().Sub(w.start) < l.window
}

// fail records a failed login from addr.
func (l *failureLimiter) fail(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max <= 0 {
		return
	}
	now := l.now()
	l.expire(now)
	key := limiterKey(addr)
	if e, ok := l.byKey[key]; ok {
		w := e.Value.(*failWindow)
		if now.Sub(w.start) < l.window {
			w.failures++
			return
		}
		// The old window is over: this failure starts a new one, which
		// is now the youngest.
		w.start, w.failures = now, 1
		l.order.MoveToBack(e)
		return
	}
	for len(l.byKey) >= l.limit {
		oldest := l.order.Front()
		l.order.Remove(oldest)
		delete(l.byKey, oldest.Value.(*failWindow).key)
	}
	l.byKey[key] = l.order.PushBack(&failWindow{key: key, start: now, failures: 1})
}

// expire drops the windows that have ended; they are at the front.
func (l *failureLimiter) expire(now time.Time) {
	for e := l.order.Front(); e != nil; e = l.order.Front() {
		w := e.Value.(*failWindow)
		if now.Sub(w.start) < l.window {
			return
		}
		l.order.Remove(e)
		delete(l.byKey, w.key)
	}
}

// len returns the number of addresses tracked.
func (l *failureLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byKey)
}
