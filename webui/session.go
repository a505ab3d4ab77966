package webui

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// sessionCookie names the login cookie. The __Host- prefix makes browsers
// accept it only when Secure, for path / and without a Domain, so another
// host or a plain-HTTP page cannot plant or read one.
const sessionCookie = "__Host-edgegate-session"

// DefaultIdleTimeout ends a session nobody used for this long.
const DefaultIdleTimeout = 30 * time.Minute

// maxSessions bounds the session table; the oldest idle one makes room.
const maxSessions = 256

// session is one logged-in browser.
type session struct {
	id       string
	lastSeen time.Time
	// flash is shown once, on the next page rendered for the session.
	flash string
	// downloads are files made for this session and fetched once (an
	// exported p12), by token.
	downloads map[string]download
}

// download is a file kept for one fetch.
type download struct {
	name, contentType string
	data              []byte
}

// sessions is the in-memory session table. Sessions do not survive a
// restart: logging in again is the cost of keeping no secret on disk.
type sessions struct {
	idle time.Duration
	now  func() time.Time

	mu sync.Mutex
	m  map[string]*session
}

func newSessions(idle time.Duration, now func() time.Time) *sessions {
	return &sessions{idle: idle, now: now, m: map[string]*session{}}
}

// create starts a session.
func (s *sessions) create() *session {
	now := s.now()
	ss := &session{id: randomToken(), lastSeen: now, downloads: map[string]download{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	if len(s.m) >= maxSessions {
		var oldest *session
		for _, o := range s.m {
			if oldest == nil || o.lastSeen.Before(oldest.lastSeen) {
				oldest = o
			}
		}
		delete(s.m, oldest.id)
	}
	s.m[ss.id] = ss
	return ss
}

// fromRequest returns the request's live session and marks it used.
func (s *sessions) fromRequest(r *http.Request) (*session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[c.Value]
	if !ok {
		return nil, false
	}
	if now.Sub(ss.lastSeen) >= s.idle {
		delete(s.m, ss.id)
		return nil, false
	}
	ss.lastSeen = now
	return ss, true
}

// alive reports whether the session with id still exists, without
// touching it (live updates do not count as use).
func (s *sessions) alive(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[id]
	return ok && s.now().Sub(ss.lastSeen) < s.idle
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// deleteAll ends every session, after a password change or a restore.
func (s *sessions) deleteAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.m)
}

func (s *sessions) expireLocked(now time.Time) {
	for id, ss := range s.m {
		if now.Sub(ss.lastSeen) >= s.idle {
			delete(s.m, id)
		}
	}
}

// setFlash records a message for the session's next page.
func (s *sessions) setFlash(ss *session, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.flash = msg
}

// takeFlash returns and clears the session's message.
func (s *sessions) takeFlash(ss *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	msg := ss.flash
	ss.flash = ""
	return msg
}

// addDownload keeps a file for one fetch and returns its token.
func (s *sessions) addDownload(ss *session, d download) string {
	token := randomToken()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.downloads[token] = d
	return token
}

// takeDownload returns a kept file once.
func (s *sessions) takeDownload(ss *session, token string) (download, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := ss.downloads[token]
	delete(ss.downloads, token)
	return d, ok
}

func setSessionCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: id, Path: "/",
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// randomToken returns 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}
