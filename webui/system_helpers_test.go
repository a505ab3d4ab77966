package webui

import (
	"bytes"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/edgegate/edgegate/gateway/backup"
	"github.com/edgegate/edgegate/gateway/broker/trace"
	"github.com/edgegate/edgegate/gateway/logtail"
	"github.com/edgegate/edgegate/gateway/store"
)

// systemTest is a UI with the System page's real parts: a log tail, a
// tracer writing into a temporary directory and a backup manager on a
// store in a temporary data directory. Restart only counts.
type systemTest struct {
	u        *UI
	ss       *session
	log      *slog.Logger
	tail     *logtail.Tail
	tracer   *trace.Tracer
	st       *store.Store
	layout   backup.Layout
	restarts atomic.Int32
}

func newSystemTest(t *testing.T) *systemTest {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s := &systemTest{
		tail: logtail.New(50), tracer: trace.New(trace.Options{Dir: t.TempDir()}), st: st,
		layout: backup.Layout{Dir: dir, DeviceKey: "device.key"},
	}
	if err := os.WriteFile(filepath.Join(dir, "device.key"), bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	s.log = slog.New(s.tail.Handler(slog.NewTextHandler(io.Discard, nil)))
	s.u = New(Options{
		Admin: &fakeAdmin{password: "set"}, Broker: fakeBroker{}, Settings: newFakeSettings(),
		Version: "1.2.3", Commit: "abc1234", DataDir: dir, Logs: s.tail, Traces: s.tracer,
		Backups: backup.NewManager(st.DB(), s.layout), Restart: func() { s.restarts.Add(1) },
		Logger: s.log,
	})
	t.Cleanup(s.u.Close)
	s.ss = s.u.sessions.create()
	return s
}

// do serves one request of the session; a non-nil form is posted.
func (s *systemTest) do(t *testing.T, method, target string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return s.serve(r)
}

func (s *systemTest) serve(r *http.Request) *httptest.ResponseRecorder {
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: s.ss.id})
	w := httptest.NewRecorder()
	s.u.Handler().ServeHTTP(w, r)
	return w
}

// restore posts the restore form: the passphrase, then the file.
func (s *systemTest) restore(t *testing.T, passphrase, fileName string, file []byte) *httptest.ResponseRecorder {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("passphrase", passphrase)
	fw, err := mw.CreateFormFile("file", fileName)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(file)
	_ = mw.Close()
	r := httptest.NewRequest(http.MethodPost, "/system/restore", &body)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	return s.serve(r)
}

// systemDoc requires status want and parses the page.
func systemDoc(t *testing.T, w *httptest.ResponseRecorder, want int) *goquery.Document {
	t.Helper()
	if w.Code != want {
		t.Fatalf("status %d, want %d\n%s", w.Code, want, w.Body)
	}
	doc, err := goquery.NewDocumentFromReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// systemFind selects the elements with data-testid id.
func systemFind(doc *goquery.Document, id string) *goquery.Selection {
	return doc.Find(byTestID(id))
}
