package acme

import (
	"context"
	"net/http"
)

// opTransport binds every request to the context of the operation that
// issued it. lego and its DNS providers build their requests without the
// caller's context; through this transport, cancelling the operation (or its
// deadline) aborts whatever request is in flight and fails the next one at
// once.
type opTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

// newOpClient returns an HTTP client for one operation: no overall timeout of
// its own, the operation's context is the bound.
func newOpClient(ctx context.Context, base http.RoundTripper) *http.Client {
	return &http.Client{Transport: &opTransport{ctx: ctx, base: base}}
}

func (t *opTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.ctx.Err(); err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, context.Cause(t.ctx)
	}
	// The request keeps its own context (an http.Client timeout, say) and is
	// also cancelled with the operation. The derived context lives until the
	// operation ends, which always cancels t.ctx, so nothing outlives it.
	ctx, cancel := context.WithCancelCause(req.Context())
	context.AfterFunc(t.ctx, func() { cancel(context.Cause(t.ctx)) })
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err == nil && t.ctx.Err() != nil {
		// The response raced the cancellation (seen under load: an empty
		// 200 from a server that noticed the closed connection first); the
		// operation is over, whatever the response says.
		_ = resp.Body.Close()
		return nil, context.Cause(t.ctx)
	}
	return resp, err
}
