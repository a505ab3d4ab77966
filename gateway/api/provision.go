package api

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"

	"github.com/edgegate/edgegate/provisioning"
)

// ProvisionOptions configure POST /api/v1/provision.
type ProvisionOptions struct {
	// KeysPath is the trusted provisioning keys' file or directory; ""
	// means provisioning.DefaultKeysPath, the image's.
	KeysPath string
	// DeviceID is this gateway's device id, which a bundle naming a
	// device must name; "" accepts only bundles for any device.
	DeviceID string
}

// provisionRequest is the JSON form of POST /api/v1/provision: the bytes
// of edgegate-provision.json and of its .sig file, in base64.
type provisionRequest struct {
	Bundle    []byte `json:"bundle"`
	Signature []byte `json:"signature"`
}

// provision applies a signed provisioning bundle and answers the report:
// 200 applied, 422 refused (nothing changed), 500 failed part way. The
// USB companion hands bundles in over the local socket; the admin may
// over HTTPS. The bundle's signature is checked whoever sends it.
func (a *API) provision(w http.ResponseWriter, r *http.Request) error {
	bundle, sig, err := a.readProvisionRequest(w, r)
	if err != nil {
		return err
	}
	// The admin credentials' provisioning methods are needed here only,
	// so Admin does not ask every implementation for them.
	adm, _ := a.o.Admin.(provisioning.Admin)
	ap := provisioning.Applier{
		KeysPath: a.o.Provision.KeysPath,
		DeviceID: a.o.Provision.DeviceID,
		Gateway: provisioning.Gateway{
			Settings: a.o.Settings, Admin: adm, Users: a.o.Users, Certificates: a.o.Certificates,
		},
		Now:    a.o.Now,
		Logger: a.log,
	}
	rep := ap.Apply(r.Context(), bundle, sig, authorOf(r))
	status := http.StatusOK
	switch rep.Status {
	case provisioning.StatusRefused:
		status = http.StatusUnprocessableEntity
	case provisioning.StatusFailed:
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, rep)
	return nil
}

// readProvisionRequest reads the bundle and signature from a JSON body or
// from a multipart/form-data one with the parts "bundle" and "signature"
// (curl -F bundle=@edgegate-provision.json -F signature=@….sig).
func (a *API) readProvisionRequest(w http.ResponseWriter, r *http.Request) (bundle, sig []byte, err error) {
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		var req provisionRequest
		if err := a.decodeJSON(w, r, &req); err != nil {
			return nil, nil, err
		}
		bundle, sig = req.Bundle, req.Signature
	} else {
		body, err := a.readBody(w, r)
		if err != nil {
			return nil, nil, err
		}
		if bundle, sig, err = readProvisionParts(body, params["boundary"]); err != nil {
			return nil, nil, err
		}
	}
	if len(bundle) == 0 {
		return nil, nil, errorf(http.StatusBadRequest, "bad_request", "the request has no bundle")
	}
	return bundle, sig, nil
}

func readProvisionParts(body []byte, boundary string) (bundle, sig []byte, err error) {
	bad := func(format string, args ...any) error {
		return errorf(http.StatusBadRequest, "bad_request", format, args...)
	}
	if boundary == "" {
		return nil, nil, bad("the multipart body has no boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	seen := map[string]bool{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return bundle, sig, nil
		}
		if err != nil {
			return nil, nil, bad("the multipart body is malformed")
		}
		name := part.FormName()
		if name != "bundle" && name != "signature" {
			return nil, nil, bad("unexpected part %q; send \"bundle\" and \"signature\"", name)
		}
		if seen[name] {
			return nil, nil, bad("part %q appears twice", name)
		}
		seen[name] = true
		data, err := io.ReadAll(part)
		if err != nil {
			return nil, nil, bad("the multipart body is malformed")
		}
		if name == "bundle" {
			bundle = data
		} else {
			sig = data
		}
	}
}
