package webui

func (u *UI) topicRoutes() {}
