package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
)

// Layers are the sources of the effective configuration, weakest first:
// the built-in defaults, the live document kept in the store (edited
// through the API and UI) and the optional file shipped in the image, whose
// keys win and are locked.
type Layers struct {
	// Store is the live settings document, a JSON merge patch (RFC 7396)
	// over the defaults. Nil or empty means none.
	Store []byte
	// File is the image's settings file, a merge patch applied last.
	File []byte
	// FileName names File in error messages.
	FileName string
}

// Effective is a merged, validated configuration and the settings paths the
// image file locks (for example "listeners.tcp.bind").
type Effective struct {
	Config Config
	Locked []string
}

// Load merges the layers, decodes the result strictly and validates it. Any
// problem is returned as an error naming the file, line:col or setting; the
// caller applies nothing in that case.
func Load(l Layers) (Effective, error) {
	var eff Effective
	merged, err := toTree(Defaults())
	if err != nil {
		return eff, err
	}
	if len(bytes.TrimSpace(l.Store)) > 0 {
		if merged, err = applyLayer(merged, l.Store, "stored settings"); err != nil {
			return eff, err
		}
	}
	if len(bytes.TrimSpace(l.File)) > 0 {
		name := l.FileName
		if name == "" {
			name = "settings file"
		}
		if merged, err = applyLayer(merged, l.File, name); err != nil {
			return eff, err
		}
		var patch map[string]any
		if err := json.Unmarshal(l.File, &patch); err != nil {
			return eff, fmt.Errorf("%s: %w", name, err)
		}
		eff.Locked = leafPaths("", patch)
	}
	doc, err := json.Marshal(merged)
	if err != nil {
		return eff, fmt.Errorf("encode merged settings: %w", err)
	}
	cfg, err := Decode(doc, "merged settings")
	if err != nil {
		return eff, err
	}
	if err := cfg.Validate(); err != nil {
		return eff, err
	}
	eff.Config = cfg
	return eff, nil
}

// ReadFile reads an optional settings file; a missing file is not an error
// and yields nil.
func ReadFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read settings file: %w", err)
	}
	return b, nil
}

// Decode strictly decodes a complete settings document: unknown keys,
// wrong types and trailing data are errors carrying line:col within src.
func Decode(src []byte, name string) (Config, error) {
	var cfg Config
	if err := strictUnmarshal(src, &cfg); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, locate(src, err))
	}
	return cfg, nil
}

// CheckPatch verifies that a merge patch only names known settings with
// values of the right type, without merging it. It reports line:col.
func CheckPatch(src []byte, name string) error {
	// A patch may hold null to delete a key (e.g. a listener); nulls decode
	// to zero values, so a strict decode checks names and types.
	var cfg Config
	if err := strictUnmarshal(src, &cfg); err != nil {
		return fmt.Errorf("%s: %w", name, locate(src, err))
	}
	return nil
}

func strictUnmarshal(src []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &trailingDataError{offset: dec.InputOffset()}
	}
	return nil
}

type trailingDataError struct{ offset int64 }

func (e *trailingDataError) Error() string { return "unexpected data after the settings object" }

func applyLayer(base map[string]any, patch []byte, name string) (map[string]any, error) {
	if err := CheckPatch(patch, name); err != nil {
		return nil, err
	}
	var p any
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", name, locate(patch, err))
	}
	obj, ok := p.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: settings must be a JSON object", name)
	}
	return mergePatch(base, obj), nil
}

// mergePatch applies an RFC 7396 merge patch: objects merge key by key,
// null deletes, anything else replaces.
func mergePatch(target map[string]any, patch map[string]any) map[string]any {
	if target == nil {
		target = map[string]any{}
	}
	for k, pv := range patch {
		if pv == nil {
			delete(target, k)
			continue
		}
		if pobj, ok := pv.(map[string]any); ok {
			tobj, _ := target[k].(map[string]any)
			target[k] = mergePatch(tobj, pobj)
			continue
		}
		target[k] = pv
	}
	return target
}

// MergePatch applies patch to doc (both JSON objects) and returns the result.
func MergePatch(doc, patch []byte) ([]byte, error) {
	var d, p map[string]any
	if len(bytes.TrimSpace(doc)) > 0 {
		if err := json.Unmarshal(doc, &d); err != nil {
			return nil, fmt.Errorf("settings document: %w", err)
		}
	}
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, fmt.Errorf("settings patch: %w", locate(patch, err))
	}
	return json.Marshal(mergePatch(d, p))
}

func toTree(c Config) (map[string]any, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode settings: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode settings: %w", err)
	}
	return m, nil
}

// leafPaths lists the dotted paths of the non-object values in a patch.
func leafPaths(prefix string, m map[string]any) []string {
	var out []string
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if obj, ok := v.(map[string]any); ok && len(obj) > 0 {
			out = append(out, leafPaths(p, obj)...)
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// IsLocked reports whether path or one of its parents is locked.
func (e Effective) IsLocked(path string) bool {
	for _, l := range e.Locked {
		if path == l || strings.HasPrefix(path, l+".") || strings.HasPrefix(l, path+".") {
			return true
		}
	}
	return false
}

// locate adds line:col to a JSON decoding error.
func locate(src []byte, err error) error {
	var (
		syn   *json.SyntaxError
		typ   *json.UnmarshalTypeError
		trail *trailingDataError
	)
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("%s: %s", position(src, syn.Offset), syn.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "value"
		}
		offset := typ.Offset
		if offset == 0 {
			// Errors from a type's own UnmarshalJSON carry no offset; point
			// at the key instead.
			key := field[strings.LastIndex(field, ".")+1:]
			offset = int64(bytes.Index(src, []byte(`"`+key+`"`)) + 1)
		}
		want := typ.Type.String()
		if typ.Type == reflect.TypeFor[Duration]() {
			want = `a duration string such as "60s"`
		}
		return fmt.Errorf("%s: %s: expected %s, got %s", position(src, offset), field, want, typ.Value)
	case errors.As(err, &trail):
		return fmt.Errorf("%s: %s", position(src, trail.offset), trail.Error())
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return fmt.Errorf("%s: unexpected end of settings", position(src, int64(len(src))))
	}
	const unknown = "json: unknown field "
	if msg := err.Error(); strings.HasPrefix(msg, unknown) {
		name := strings.TrimPrefix(msg, unknown)
		off := int64(bytes.Index(src, []byte(name)))
		if off < 0 {
			return fmt.Errorf("unknown setting %s", name)
		}
		return fmt.Errorf("%s: unknown setting %s", position(src, off+1), name)
	}
	return err
}

func position(src []byte, offset int64) string {
	line, col := LineCol(src, offset)
	return fmt.Sprintf("%d:%d", line, col)
}

// LineCol turns a byte offset into src into a line and column, both from 1;
// offsets outside src are clamped to it.
func LineCol(src []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(src)))
	line, col = 1, 1
	for _, c := range src[:offset] {
		if c == '\n' {
			line++
			col = 1
			continue
		}
		col++
	}
	return line, col
}

// PatchPaths lists the dotted settings paths a merge patch sets or deletes.
// An invalid patch yields none; CheckPatch reports it.
func PatchPaths(patch []byte) []string {
	var p map[string]any
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil
	}
	return leafPaths("", p)
}
