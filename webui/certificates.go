package webui

func (u *UI) certificateRoutes() {}
