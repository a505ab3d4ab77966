package webui

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"unicode/utf8"

	"github.com/edgegate/edgegate/gateway/broker"
)

// messagePreview is a message as the inspector shows it: the payload as
// text when it is UTF-8, indented when it is JSON, and always as hex.
type messagePreview struct {
	Topic     string `json:"topic"`
	QoS       byte   `json:"qos"`
	Retain    bool   `json:"retain"`
	From      string `json:"from"`
	Time      int64  `json:"t"` // unix milliseconds
	Size      int    `json:"size"`
	Truncated bool   `json:"truncated"`
	Text      string `json:"text,omitempty"`
	JSON      string `json:"json,omitempty"`
	Hex       string `json:"hex"`
}

func preview(m broker.WatchedMessage) messagePreview {
	p := messagePreview{
		Topic: m.Topic, QoS: m.QoS, Retain: m.Retain, From: m.From,
		Time: m.Time.UnixMilli(), Size: len(m.Payload),
	}
	payload := m.Payload
	if len(payload) > previewBytes {
		payload, p.Truncated = payload[:previewBytes], true
	}
	p.Hex = hex.EncodeToString(payload)
	if utf8.Valid(payload) {
		p.Text = string(payload)
		var out bytes.Buffer
		if !p.Truncated && json.Valid(payload) && json.Indent(&out, payload, "", "  ") == nil {
			p.JSON = out.String()
		}
	}
	return p
}
