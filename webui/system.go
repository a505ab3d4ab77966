package webui

func (u *UI) systemRoutes() {}
