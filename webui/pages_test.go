package webui

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
)

// serveSession serves one request of the logged-in session ss; a non-nil
// form is posted URL-encoded.
func serveSession(u *UI, ss *session, method, target string, form url.Values) *httptest.ResponseRecorder {
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: ss.id})
	w := httptest.NewRecorder()
	u.Handler().ServeHTTP(w, r)
	return w
}

// parseHTML parses a rendered page.
func parseHTML(t *testing.T, w *httptest.ResponseRecorder) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(w.Body)
	if err != nil {
		t.Fatalf("parse page: %v", err)
	}
	return doc
}

// byTestID selects the elements with data-testid id.
func byTestID(id string) string { return `[data-testid="` + id + `"]` }

// textOf is the whitespace-normalised text of the selection.
func textOf(s *goquery.Selection) string { return strings.Join(strings.Fields(s.Text()), " ") }
