package webui

func (u *UI) trustRoutes() {}
