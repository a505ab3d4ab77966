package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/edgegate/edgegate/gateway/config"
)

// verdict is a link's answer.
type verdict uint8

const (
	ignore verdict = iota // no opinion: ask the next link
	allow
	deny
)

func (v verdict) String() string {
	switch v {
	case allow:
		return "allow"
	case deny:
		return "deny"
	}
	return "ignore"
}

// login is what the chain decides on.
type login struct {
	clientID string // effective: from the certificate when mapped
	username string // effective: from the certificate when mapped
	password string // as sent in the CONNECT; never logged
	addr     netip.Addr
	cert     certIdentity // mapped from a verified client certificate
}

// outcome is the chain's decision.
type outcome struct {
	verdict   verdict
	superuser bool
	link      string // the link that decided; "" when all ignored
	reason    string // for the log
}

// chain asks its links in order; the first that does not ignore decides,
// and when all ignore the client is denied.
type chain struct {
	links          []string
	allowAnonymous bool
	users          *Users
	http           *httpBackend
	log            *slog.Logger
}

func newChain(c config.Auth, users *Users, http *httpBackend, log *slog.Logger) (*chain, error) {
	known := []string{config.AuthCertificate, config.AuthUsername, config.AuthClientID, config.AuthHTTP, config.AuthAnonymous}
	for _, l := range c.Chain {
		if !slices.Contains(known, l) {
			return nil, fmt.Errorf("auth.chain: unknown link %q", l)
		}
	}
	return &chain{
		links:          slices.Clone(c.Chain),
		allowAnonymous: c.AllowAnonymous,
		users:          users,
		http:           http,
		log:            log,
	}, nil
}

func (c *chain) authenticate(ctx context.Context, l login) outcome {
	for _, link := range c.links {
		var o outcome
		switch link {
		case config.AuthCertificate:
			o = c.certificate(l)
		case config.AuthUsername:
			o = c.username(l)
		case config.AuthClientID:
			o = c.clientID(l)
		case config.AuthHTTP:
			o = c.httpLink(ctx, l)
		case config.AuthAnonymous:
			o = c.anonymous()
		}
		if o.verdict != ignore {
			o.link = link
			return o
		}
	}
	return outcome{verdict: deny, reason: "no link accepted the client"}
}

func (c *chain) certificate(l login) outcome {
	if !l.cert.mapped() {
		return outcome{}
	}
	o := outcome{verdict: allow, reason: "verified client certificate"}
	// Only a username taken from the certificate may carry a superuser
	// flag: one the client merely sent has not been authenticated.
	if l.cert.Username != "" && c.users != nil {
		u, err := c.users.Get(l.cert.Username)
		switch {
		case err == nil:
			o.superuser = u.Superuser
		case !errors.Is(err, ErrUserNotFound):
			c.log.Error("auth: read user", "username", l.cert.Username, "error", err)
		}
	}
	return o
}

func (c *chain) username(l login) outcome {
	if l.username == "" || c.users == nil || validName("username", l.username) != nil {
		return outcome{}
	}
	u, err := c.users.Get(l.username)
	switch {
	case errors.Is(err, ErrUserNotFound):
		return outcome{}
	case err != nil:
		// Failing closed: ignoring would let the client reach a later
		// link (anonymous) under a name it could not prove.
		c.log.Error("auth: read user", "username", l.username, "error", err)
		return outcome{verdict: deny, reason: "user store error"}
	}
	if !VerifyPassword(u.PasswordHash, l.password) {
		return outcome{verdict: deny, reason: "wrong password"}
	}
	return outcome{verdict: allow, superuser: u.Superuser, reason: "password"}
}

func (c *chain) clientID(l login) outcome {
	if c.users == nil || validName("client id", l.clientID) != nil {
		return outcome{}
	}
	e, err := c.users.GetClientID(l.clientID)
	switch {
	case errors.Is(err, ErrClientIDNotFound):
		return outcome{}
	case err != nil:
		c.log.Error("auth: read client id entry", "client", l.clientID, "error", err)
		return outcome{verdict: deny, reason: "user store error"}
	}
	if !VerifyPassword(e.PasswordHash, l.password) {
		return outcome{verdict: deny, reason: "wrong password"}
	}
	return outcome{verdict: allow, reason: "client id password"}
}

func (c *chain) httpLink(ctx context.Context, l login) outcome {
	if c.http == nil || c.http.auth == nil {
		return outcome{}
	}
	v := paramVars{username: l.username, clientID: l.clientID, password: l.password}
	if l.addr.IsValid() {
		v.addr = l.addr.String()
	}
	o := outcome{verdict: c.http.ask(ctx, c.http.auth, v), reason: "http auth_req"}
	if o.verdict == allow && c.http.super != nil {
		o.superuser = c.http.ask(ctx, c.http.super, v) == allow
	}
	return o
}

func (c *chain) anonymous() outcome {
	if c.allowAnonymous {
		return outcome{verdict: allow, reason: "anonymous allowed"}
	}
	return outcome{verdict: deny, reason: "anonymous not allowed"}
}
