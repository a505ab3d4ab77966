package gateway

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/edgegate/edgegate/certs/tlsconf"
)

// The paths the JSON API answers on both web servers; everything else on
// the HTTPS server is the web UI.
func isAPIPath(p string) bool {
	return strings.HasPrefix(p, "/api/") || p == "/metrics" || strings.HasPrefix(p, "/mqtt/")
}

// isPublicPath is what the plain-HTTP server answers for everyone: CA and
// CRL downloads for sensors that cannot do HTTPS yet, and ACME http-01.
func isPublicPath(p string) bool {
	return strings.HasPrefix(p, "/pki/") || strings.HasPrefix(p, "/.well-known/")
}

// httpHandler serves the plain-HTTP listener: the public paths, the admin
// API for loopback tools (curl, scripts on the device), and a redirect to
// the web UI over HTTPS for everything else. Without an HTTPS listener it
// is the API alone, as before the UI existed.
func (g *Gateway) httpHandler(httpsPort string) http.Handler {
	apiHTTP := g.api.Handler()
	if httpsPort == "" {
		return apiHTTP
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if isPublicPath(p) || (isAPIPath(p) && fromLoopback(r)) {
			apiHTTP.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" || strings.ContainsAny(host, "/\\@") {
			http.Error(w, "bad Host header", http.StatusBadRequest)
			return
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		if httpsPort != "443" {
			host += ":" + httpsPort
		}
		code := http.StatusMovedPermanently
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			code = http.StatusPermanentRedirect // keeps the method and body
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), code) //nolint:gosec // G710: the same host the browser asked for, over HTTPS
	})
}

func fromLoopback(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// httpsHandler serves the HTTPS listener: the admin API and public paths,
// and the web UI for everything else.
func (g *Gateway) httpsHandler() http.Handler {
	apiTLS := g.api.TLSHandler()
	ui := g.ui.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isAPIPath(r.URL.Path) || isPublicPath(r.URL.Path) {
			apiTLS.ServeHTTP(w, r)
			return
		}
		ui.ServeHTTP(w, r)
	})
}

// webTLSConfig is the web UI's TLS: the listeners' certificate from
// certs/tlsconf (rotated with no restart), no client certificate, and
// HTTP/1.1 only, which the UI's websockets need.
func (g *Gateway) webTLSConfig() *tls.Config {
	return g.tls.ServerConfig(tlsconf.ServerOptions{ClientAuth: tlsconf.None, NextProtos: []string{"http/1.1"}})
}
