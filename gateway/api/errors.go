package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgegate/edgegate/gateway/config"
)

// Error is the JSON body of every error answer.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Fields lists the invalid settings of an "invalid_settings" answer.
	Fields []FieldProblem `json:"fields,omitempty"`
	// Paths lists the locked settings of a "locked_setting" answer.
	Paths []string `json:"paths,omitempty"`
	// Confirmation says what a "confirmation_required" answer asks the
	// caller to accept.
	Confirmation *Confirmation `json:"confirmation,omitempty"`
}

// Confirmation is what applying a trust version would cost: the connected
// clients whose CA it removes and those CAs, or an empty trust list.
type Confirmation struct {
	Sessions         int      `json:"sessions"`
	CAs              []string `json:"cas"`
	EmptiesTrustList bool     `json:"emptiesTrustList"`
}

// FieldProblem is one invalid setting.
type FieldProblem struct {
	Path    string `json:"path"`
	Problem string `json:"problem"`
}

// apiError is an error answered with its own status and a message fit for
// the user. Any other error a handler returns is internal: logged, and
// answered 500 with a generic message.
type apiError struct {
	status     int
	body       Error
	retryAfter time.Duration
}

func (e *apiError) Error() string { return e.body.Code + ": " + e.body.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, body: Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

func notFound(what, name string) *apiError {
	return errorf(http.StatusNotFound, strings.ReplaceAll(what, " ", "_")+"_not_found", "%s %q not found", what, name)
}

func unavailable(what string) *apiError {
	return errorf(http.StatusServiceUnavailable, "unavailable", "%s is not available on this gateway", what)
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		a.log.LogAttrs(r.Context(), slog.LevelError, "api internal error",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		ae = errorf(http.StatusInternalServerError, "internal_error", "internal error; the gateway log has the details")
	}
	if ae.retryAfter > 0 {
		secs := int64((ae.retryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	if ae.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="edgegate", charset="UTF-8"`)
	}
	writeJSON(w, ae.status, ae.body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only a bug makes the API's own types unmarshalable.
		status = http.StatusInternalServerError
		body = []byte(`{"code":"internal_error","message":"internal error; the gateway log has the details"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// maxBody is the request body limit in force.
func (a *API) maxBody() int64 {
	if a.o.MaxBodyBytes > 0 {
		return a.o.MaxBodyBytes
	}
	if a.o.Settings != nil {
		if n := a.o.Settings.Effective().Config.API.MaxBodyBytes; n > 0 {
			return n
		}
	}
	return DefaultMaxBodyBytes
}

// readBody reads the whole limited body.
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.maxBody()))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than %d bytes", tooLarge.Limit)
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "bad_request", "the request body could not be read")
	}
	return body, nil
}

// requireJSON checks that a request body is declared as JSON.
func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "the request body must be JSON (Content-Type: application/json)")
	}
	return nil
}

// decodeJSON reads a JSON request body strictly into v: unknown fields,
// wrong types and trailing data are 400 errors naming line and column.
func (a *API) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	body, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeStrict(body, v)
}

// decodeStrict decodes one JSON value from body into v.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errorf(http.StatusBadRequest, "bad_json", "the request body is empty; a JSON object was expected")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(body, err, dec.InputOffset())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "bad_json", "%s: unexpected data after the JSON value", position(body, dec.InputOffset()))
	}
	return nil
}

// jsonError describes a decoding error with its position in body. offset is
// where the decoder stopped, used when the error carries no offset itself.
func jsonError(body []byte, err error, offset int64) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	msg := strings.TrimPrefix(err.Error(), "json: ")
	switch {
	case errors.As(err, &syn):
		// Offset counts the offending byte; point at it.
		offset = syn.Offset - 1
	case errors.As(err, &typ):
		offset = typ.Offset
		field := typ.Field
		if field == "" {
			field = "value"
		}
		msg = fmt.Sprintf("%s must be %s, not JSON %s", field, jsonTypeName(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		offset = int64(len(body))
		msg = "unexpected end of JSON input"
	}
	return errorf(http.StatusBadRequest, "bad_json", "invalid JSON at %s: %s", position(body, offset), msg)
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	if strings.HasPrefix(kind, "int") || strings.HasPrefix(kind, "uint") || strings.HasPrefix(kind, "float") {
		return "a number of type " + kind
	}
	return kind
}

// position turns a byte offset into "line L, column C" (both from 1).
func position(src []byte, offset int64) string {
	line, col := config.LineCol(src, offset)
	return fmt.Sprintf("line %d, column %d", line, col)
}
