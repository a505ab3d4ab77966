package webui

import "net/http"

func (u *UI) routes() {
	u.mux.Handle("GET /static/", u.assets)
	u.mux.HandleFunc("GET /setup", u.setupPage)
	u.mux.HandleFunc("POST /setup", u.setupSubmit)
	u.mux.HandleFunc("GET /login", u.loginPage)
	u.mux.HandleFunc("POST /login", u.loginSubmit)
	u.authed("POST /logout", u.logout)
	u.authed("GET /live", u.serveLive)
	u.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.renderError(w, r, http.StatusNotFound, "Not found", "There is no page at this address.")
	})

	u.dashboardRoutes()
	u.clientRoutes()
	u.topicRoutes()
	u.accessRoutes()
	u.settingsRoutes()
	u.certificateRoutes()
	u.trustRoutes()
	u.systemRoutes()
}
