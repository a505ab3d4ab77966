package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/edgegate/edgegate/gateway/broker/trace"
)

// Traces runs client and topic traces (*trace.Tracer).
type Traces interface {
	// Start returns trace.ErrExists, ErrFileInUse, ErrBadName or
	// ErrBadTarget for a request it refuses.
	Start(kind trace.Kind, target, name string) (trace.Info, error)
	// StopTrace returns trace.ErrNotFound when no such trace runs.
	StopTrace(kind trace.Kind, target string) error
	List() []trace.Info
}

// traceStart is the body of POST /api/v1/traces. Name is the trace file's
// name in the gateway's trace directory (".log" is added unless present).
type traceStart struct {
	Kind   string `json:"kind"`
	Target string `json:"target"`
	Name   string `json:"name"`
}

func parseKind(s string) (trace.Kind, error) {
	switch k := trace.Kind(s); k {
	case trace.Client, trace.Topic:
		return k, nil
	}
	return "", errorf(http.StatusBadRequest, "invalid_kind", "kind must be \"client\" or \"topic\", not %q", s)
}

func (a *API) listTraces(w http.ResponseWriter, r *http.Request) error {
	if a.o.Traces == nil {
		return unavailable("tracing")
	}
	writeJSON(w, http.StatusOK, nonNil(a.o.Traces.List()))
	return nil
}

func (a *API) startTrace(w http.ResponseWriter, r *http.Request) error {
	if a.o.Traces == nil {
		return unavailable("tracing")
	}
	var req traceStart
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	kind, err := parseKind(req.Kind)
	if err != nil {
		return err
	}
	info, err := a.o.Traces.Start(kind, req.Target, req.Name)
	switch {
	case err == nil:
	case errors.Is(err, trace.ErrExists), errors.Is(err, trace.ErrFileInUse):
		return errorf(http.StatusConflict, "trace_conflict", "%s", err)
	case errors.Is(err, trace.ErrBadName):
		return errorf(http.StatusUnprocessableEntity, "invalid_trace_name", "%s", err)
	case errors.Is(err, trace.ErrBadTarget):
		return errorf(http.StatusUnprocessableEntity, "invalid_trace_target", "%s", err)
	default:
		return fmt.Errorf("start trace: %w", err)
	}
	a.log.Info("trace started", "kind", kind, "target", req.Target, "by", authorOf(r))
	w.Header().Set("Location", "/api/v1/traces/"+string(kind)+"/"+url.PathEscape(req.Target))
	writeJSON(w, http.StatusCreated, info)
	return nil
}

// stopTrace stops a running trace. A topic filter's "/" may stay as it is,
// but "#" must be sent as %23 and a leading "/" or an empty level as %2F.
func (a *API) stopTrace(w http.ResponseWriter, r *http.Request) error {
	if a.o.Traces == nil {
		return unavailable("tracing")
	}
	kind, err := parseKind(r.PathValue("kind"))
	if err != nil {
		return err
	}
	target := r.PathValue("target")
	err = a.o.Traces.StopTrace(kind, target)
	if errors.Is(err, trace.ErrNotFound) {
		return errorf(http.StatusNotFound, "trace_not_found", "no %s trace of %q is running", kind, target)
	}
	if err != nil {
		return fmt.Errorf("stop trace: %w", err)
	}
	a.log.Info("trace stopped", "kind", kind, "target", target, "by", authorOf(r))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
