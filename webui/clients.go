package webui

func (u *UI) clientRoutes() {}
