package webui

import (
	"errors"

	"github.com/edgegate/edgegate/gateway/config"
)

// fieldErrors lists the settings problems in err, an errors.Join of
// *config.FieldError as config.Validate and Settings.Apply return.
func fieldErrors(err error) []*config.FieldError {
	if err == nil {
		return nil
	}
	var out []*config.FieldError
	var fe *config.FieldError
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			out = append(out, fieldErrors(e)...)
		}
		return out
	}
	if errors.As(err, &fe) {
		out = append(out, fe)
	}
	return out
}
