package webui

func (u *UI) settingsRoutes() {}
