package webui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
)

//go:embed static
var staticFS embed.FS

// assets serves the embedded CSS, JS and icons. Pages link each file with
// its content hash in the query, so a browser may cache it forever and a
// new build is fetched at once (cache busting without renamed files).
type assets struct {
	files  map[string][]byte
	hashes map[string]string
}

func loadAssets() *assets {
	a := &assets{files: map[string][]byte{}, hashes: map[string]string{}}
	entries, err := fs.ReadDir(staticFS, "static")
	if err != nil {
		panic("webui: embedded static directory: " + err.Error()) // the build embeds it
	}
	for _, e := range entries {
		data, err := staticFS.ReadFile("static/" + e.Name())
		if err != nil {
			panic("webui: embedded asset " + e.Name() + ": " + err.Error())
		}
		sum := sha256.Sum256(data)
		a.files[e.Name()] = data
		a.hashes[e.Name()] = hex.EncodeToString(sum[:6])
	}
	return a
}

// url is the cache-busting address of an asset.
func (a *assets) url(name string) string {
	return "/static/" + name + "?v=" + a.hashes[name]
}

func (a *assets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := path.Base(r.URL.Path)
	data, ok := a.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	if r.URL.Query().Get("v") == a.hashes[name] {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Header().Set("ETag", `"`+a.hashes[name]+`"`)
	if r.Header.Get("If-None-Match") == `"`+a.hashes[name]+`"` {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(data)
}
