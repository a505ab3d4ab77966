package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
)

// recordingApplier remembers what Apply handed to the running gateway.
type recordingApplier struct {
	applied []config.Config
	err     error
}

func (r *recordingApplier) applySettings(_, next config.Config) error {
	r.applied = append(r.applied, next)
	return r.err
}

func newTestSettings(t *testing.T, file string) (*Settings, *store.Store, *recordingApplier) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s, err := NewSettings(st, []byte(file), "edgegate.json")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingApplier{}
	s.apply = rec
	return s, st, rec
}

func TestSettingsApply(t *testing.T) {
	s, st, rec := newTestSettings(t, `{"node":"locked-node"}`)
	ctx := context.Background()

	v, err := s.Apply(ctx, []byte(`{"sys":{"interval":"5s"}}`), "tester")
	if err != nil {
		t.Fatalf("valid patch: %v", err)
	}
	if v.Version != 1 || v.Author != "tester" {
		t.Errorf("saved version = %+v", v)
	}
	if got := s.Effective().Config.Sys.Interval.Std(); got != 5*time.Second {
		t.Errorf("effective sys.interval = %v", got)
	}
	if len(rec.applied) != 1 || rec.applied[0].Sys.Interval.Std() != 5*time.Second {
		t.Errorf("change not handed to the gateway: %+v", rec.applied)
	}

	tests := []struct {
		name, patch, want string
	}{
		{"locked key", `{"node":"other"}`, "locked"},
		{"unknown key", `{"sys":{"intervall":"5s"}}`, `unknown setting "intervall"`},
		{"invalid value", `{"sys":{"interval":"1ms"}}`, "sys.interval: must be at least 1s"},
		{"not an object", `[1]`, "settings patch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Apply(ctx, []byte(tt.patch), "tester")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply(%s) = %v, want error containing %q", tt.patch, err, tt.want)
			}
			cur, err := st.Settings()
			if err != nil || cur.Version != 1 {
				t.Fatalf("a refused patch changed the store: version %d, %v", cur.Version, err)
			}
			if len(rec.applied) != 1 {
				t.Fatal("a refused patch was applied")
			}
		})
	}
	if _, err := s.Apply(ctx, []byte(`{"node":"x"}`), "t"); !errors.Is(err, ErrLocked) {
		t.Errorf("locked change: %v, want ErrLocked", err)
	}
}

func TestSettingsApplyReportsPartialFailure(t *testing.T) {
	s, st, rec := newTestSettings(t, "")
	rec.err = errors.New("listener tcp: address in use")
	v, err := s.Apply(context.Background(), []byte(`{"acl":{"nomatch":"deny"}}`), "t")
	if err == nil || !strings.Contains(err.Error(), "saved as version 1 but not all applied") {
		t.Fatalf("Apply = %v", err)
	}
	if cur, _ := st.Settings(); cur.Version != v.Version || v.Version != 1 {
		t.Errorf("saved %d, store %d", v.Version, cur.Version)
	}
}
