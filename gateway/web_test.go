package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edgegate/edgegate/gateway/api"
)

func TestHTTPHandlerRedirectsToTheWebUI(t *testing.T) {
	g := &Gateway{api: api.New(api.Options{})}
	tests := []struct {
		name, method, target, remote, host, httpsPort string
		status                                        int
		location                                      string
	}{
		{"page from the network", "GET", "/clients?q=a", "192.0.2.7:5000", "gw.local:8080", "8443", http.StatusMovedPermanently, "https://gw.local:8443/clients?q=a"},
		{"standard port", "GET", "/", "192.0.2.7:5000", "gw.local", "443", http.StatusMovedPermanently, "https://gw.local/"},
		{"IPv6 host", "GET", "/", "[2001:db8::1]:5000", "[2001:db8::2]:8080", "8443", http.StatusMovedPermanently, "https://[2001:db8::2]:8443/"},
		{"API from the network", "GET", "/api/v1/users", "192.0.2.7:5000", "gw.local:8080", "8443", http.StatusMovedPermanently, "https://gw.local:8443/api/v1/users"},
		{"API post keeps its method", "POST", "/api/v1/publish", "192.0.2.7:5000", "gw.local:8080", "8443", http.StatusPermanentRedirect, "https://gw.local:8443/api/v1/publish"},
		{"page from loopback", "GET", "/", "127.0.0.1:5000", "127.0.0.1:8080", "8443", http.StatusMovedPermanently, "https://127.0.0.1:8443/"},
		// The API answers (503: this one has no credentials store) rather than redirecting.
		{"API from loopback stays on HTTP", "GET", "/api/v1/users", "127.0.0.1:5000", "127.0.0.1:8080", "8443", http.StatusServiceUnavailable, ""},
		{"PKI for everyone", "GET", "/pki/ca", "192.0.2.7:5000", "gw.local:8080", "8443", http.StatusServiceUnavailable, ""},
		{"bad Host", "GET", "/", "192.0.2.7:5000", "evil.example/x", "8443", http.StatusBadRequest, ""},
		{"UI off: the API answers alone", "GET", "/", "192.0.2.7:5000", "gw.local:8080", "", http.StatusForbidden, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			r.RemoteAddr, r.Host = tc.remote, tc.host
			w := httptest.NewRecorder()
			g.httpHandler(tc.httpsPort).ServeHTTP(w, r)
			if w.Code != tc.status || w.Header().Get("Location") != tc.location {
				t.Fatalf("%s %s from %s: %d Location %q; want %d %q", tc.method, tc.target, tc.remote,
					w.Code, w.Header().Get("Location"), tc.status, tc.location)
			}
		})
	}
}
