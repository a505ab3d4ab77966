package admin

import (
	"sync"
	"time"
)

// FailLimiter blocks an address after max failed logins (wrong password,
// API key or setup code) within a fixed window that starts with its first
// failure. The admin API and the web UI share one, so guesses through either
// count together.
type FailLimiter struct {
	max    int
	window time.Duration

	mu sync.Mutex
	m  map[string]*failWindow
}

type failWindow struct {
	start time.Time
	n     int
}

// maxTracked bounds the limiter's memory; past it, expired entries are
// dropped.
const maxTracked = 4096

func NewFailLimiter(limit int, window time.Duration) *FailLimiter {
	return &FailLimiter{max: limit, window: window, m: map[string]*failWindow{}}
}

// RetryAfter returns how long key stays blocked, or 0.
func (l *FailLimiter) RetryAfter(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.m[key]
	if w == nil || w.n < l.max {
		return 0
	}
	end := w.start.Add(l.window)
	if !now.Before(end) {
		delete(l.m, key)
		return 0
	}
	return end.Sub(now)
}

// Fail records a failed attempt by key.
func (l *FailLimiter) Fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.m[key]
	if w == nil || !now.Before(w.start.Add(l.window)) {
		if len(l.m) >= maxTracked {
			for k, v := range l.m {
				if !now.Before(v.start.Add(l.window)) {
					delete(l.m, k)
				}
			}
		}
		w = &failWindow{start: now}
		l.m[key] = w
	}
	w.n++
}
