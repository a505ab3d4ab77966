package webui

func (u *UI) accessRoutes() {}
