package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/certs/bundle"
	"github.com/edgegate/edgegate/certs/tlsconf"
	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/config"
)

// The deployment TLS API is the EMQX Platform contract of seed 001 on this
// gateway, so that scripts written for it work unchanged: the gateway is
// the one deployment, and its TLS listeners serve the uploaded certificate.

// Ids of the certificates the deployment TLS API manages in the store.
const (
	deploymentCertID = "deployment-tls"
	deploymentCAID   = "deployment-tls-ca"
)

// Seed 001's rate limits, per API key and per hour.
const (
	deploymentReadsPerHour  = 60
	deploymentWritesPerHour = 6
	deploymentLimitWindow   = time.Hour
)

// expireLayout is seed 001's "expire" format, in UTC.
const expireLayout = "2006-01-02 15:04:05"

type deploymentTLS struct {
	Expire  string `json:"expire"`
	Status  string `json:"status"`
	TLSType string `json:"tlsType"`
}

type deploymentTLSRequest struct {
	TLSType string `json:"tlsType"`
	Cert    string `json:"cert"`
	Key     string `json:"key"`
	CACert  string `json:"cacert"`
}

func (a *API) deploymentRoutes() {
	for _, p := range []string{"/api/deployments/{deployment_id}/tls", "/api/v1/deployments/{deployment_id}/tls"} {
		a.scoped(admin.ScopeCertificates, "GET "+p, a.deploymentLimited(deploymentReadsPerHour, a.getDeploymentTLS))
		a.scoped(admin.ScopeCertificates, "POST "+p, a.deploymentLimited(deploymentWritesPerHour, a.putDeploymentTLS))
		a.scoped(admin.ScopeCertificates, "PUT "+p, a.deploymentLimited(deploymentWritesPerHour, a.putDeploymentTLS))
		a.scoped(admin.ScopeCertificates, "DELETE "+p, a.deploymentLimited(deploymentWritesPerHour, a.deleteDeploymentTLS))
	}
}

// deploymentLimited checks the deployment id, then the caller's hourly
// budget for this kind of request (reads and writes are counted apart).
func (a *API) deploymentLimited(perHour int, h handlerFunc) handlerFunc {
	window := newRateWindow(perHour, deploymentLimitWindow)
	return func(w http.ResponseWriter, r *http.Request) error {
		if a.o.Certificates == nil || a.o.DeploymentID == "" {
			return unavailable("the deployment TLS API")
		}
		if id := r.PathValue("deployment_id"); id != a.o.DeploymentID {
			return notFound("deployment", id)
		}
		if wait := window.take(callerOf(r), a.o.Now()); wait > 0 {
			e := errorf(http.StatusTooManyRequests, "too_many_requests",
				"this API key may make %d such requests per %s", perHour, deploymentLimitWindow)
			e.retryAfter = wait
			return e
		}
		return h(w, r)
	}
}

// callerOf is what the deployment rate limits count by: the API key, or
// the administrator.
func callerOf(r *http.Request) string {
	p, _ := r.Context().Value(principalKey{}).(principal)
	if p.keyID != "" {
		return p.keyID
	}
	return p.author
}

func (a *API) getDeploymentTLS(w http.ResponseWriter, r *http.Request) error {
	st, err := a.deploymentState()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// deploymentState describes what the TLS listeners serve now.
func (a *API) deploymentState() (deploymentTLS, error) {
	list, err := a.o.Certificates.List()
	if err != nil {
		return deploymentTLS{}, err
	}
	st := deploymentTLS{Status: "running", TLSType: "one-way"}
	for _, c := range list {
		switch {
		case len(c.Usage) > 0 && c.Usage[0] == certs.RoleServer:
			st.Expire = time.UnixMilli(c.To).UTC().Format(expireLayout)
		case c.ID == deploymentCAID:
			st.TLSType = "two-way"
		}
	}
	return st, nil
}

func (a *API) putDeploymentTLS(w http.ResponseWriter, r *http.Request) error {
	var req deploymentTLSRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	server, clientCA, err := req.parse()
	if err != nil {
		return err
	}
	if err := a.storeAndServe(deploymentCertID, "Deployment TLS certificate", server, false); err != nil {
		return err
	}
	if clientCA != nil {
		if err := a.storeAndServe(deploymentCAID, "Deployment TLS client CA", clientCA, true); err != nil {
			return err
		}
	} else if err := a.o.Certificates.Delete(deploymentCAID); err != nil && !errors.Is(err, certs.ErrNotFound) {
		return err
	}
	if err := a.setListenerClientAuth(r, clientCA != nil); err != nil {
		return err
	}
	a.log.Info("deployment TLS set", "tls_type", req.TLSType, "subject", server.Leaf().Subject.String(), "by", authorOf(r))
	st, err := a.deploymentState()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// parse checks the request as seed 001 says: 422 for a wrong tlsType, a
// two-way request without cacert, or a cert/key that does not parse or
// match.
func (req deploymentTLSRequest) parse() (server, clientCA *bundle.Bundle, err error) {
	if req.TLSType != "one-way" && req.TLSType != "two-way" {
		return nil, nil, errorf(http.StatusUnprocessableEntity, "invalid_tls_type", "tlsType must be \"one-way\" or \"two-way\", not %q", req.TLSType)
	}
	if req.Cert == "" || req.Key == "" {
		return nil, nil, errorf(http.StatusUnprocessableEntity, "invalid_certificate", "cert and key are required")
	}
	server, err = bundle.ParsePEM([]byte(req.Cert+"\n"+req.Key), nil)
	if err != nil {
		return nil, nil, invalidCertificate(err)
	}
	if server.Key == nil {
		return nil, nil, errorf(http.StatusUnprocessableEntity, "invalid_certificate", "key holds no private key")
	}
	if req.TLSType == "one-way" {
		return server, nil, nil
	}
	if req.CACert == "" {
		return nil, nil, errorf(http.StatusUnprocessableEntity, "invalid_certificate", "cacert is required for two-way TLS")
	}
	if clientCA, err = bundle.ParsePEM([]byte(req.CACert), nil); err != nil {
		return nil, nil, errorf(http.StatusUnprocessableEntity, "invalid_certificate", "cacert: %s", err)
	}
	if !clientCA.Leaf().IsCA {
		return nil, nil, errorf(http.StatusUnprocessableEntity, "invalid_certificate", "cacert is not a CA certificate")
	}
	return server, clientCA, nil
}

// storeAndServe adds or replaces certificate id with bd; the server one is
// then served by every TLS listener.
func (a *API) storeAndServe(id, name string, bd *bundle.Bundle, clientCA bool) error {
	meta := certs.Meta{ID: id, Name: name, ClientCA: clientCA, Description: "Set through the deployment TLS API."}
	_, err := a.o.Certificates.Update(id, meta, bd.Chain, bd.Key)
	if errors.Is(err, certs.ErrNotFound) {
		_, err = a.o.Certificates.Add(meta, bd.Chain, bd.Key, certs.SourceImported)
	}
	if err != nil {
		return certificateError(err, id)
	}
	if clientCA {
		return nil
	}
	if err := a.o.Certificates.Serve(id); err != nil {
		return certificateError(err, id)
	}
	return nil
}

// setListenerClientAuth makes every TLS listener require a client
// certificate from the local client-CA pool (two-way) or ask for none.
func (a *API) setListenerClientAuth(r *http.Request, twoWay bool) error {
	if a.o.Settings == nil {
		return nil
	}
	mode := tlsconf.None.String()
	if twoWay {
		mode = tlsconf.Required.String()
	}
	listeners := map[string]any{}
	for name, l := range a.o.Settings.Effective().Config.Listeners {
		if l.TLS == nil || l.TLS.ClientAuth == mode {
			continue
		}
		listeners[name] = map[string]any{"tls": map[string]any{"client_auth": mode, "client_ca": config.ClientCALocal}}
	}
	if len(listeners) == 0 {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"listeners": listeners})
	if err != nil {
		return err
	}
	return a.applySettings(r, patch)
}

func (a *API) deleteDeploymentTLS(w http.ResponseWriter, r *http.Request) error {
	if err := a.o.Certificates.ServeLocal(); err != nil {
		return err
	}
	for _, id := range []string{deploymentCertID, deploymentCAID} {
		if err := a.o.Certificates.Delete(id); err != nil && !errors.Is(err, certs.ErrNotFound) {
			return err
		}
	}
	if err := a.setListenerClientAuth(r, false); err != nil {
		return err
	}
	a.log.Info("deployment TLS removed; listeners serve the local CA's certificate", "by", authorOf(r))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// rateWindow allows n events per window and per key (a sliding log).
type rateWindow struct {
	n      int
	window time.Duration
	mu     sync.Mutex
	seen   map[string][]time.Time
}

func newRateWindow(n int, window time.Duration) *rateWindow {
	return &rateWindow{n: n, window: window, seen: map[string][]time.Time{}}
}

// take records an event for key at now, or returns how long until one is
// allowed again.
func (w *rateWindow) take(key string, now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	log := w.seen[key]
	i := 0
	for i < len(log) && !now.Before(log[i].Add(w.window)) {
		i++
	}
	log = log[i:]
	if len(log) >= w.n {
		w.seen[key] = log
		return log[0].Add(w.window).Sub(now)
	}
	w.seen[key] = append(log, now)
	return 0
}
