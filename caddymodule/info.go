package caddymodule

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

func init() {
	caddy.RegisterModule(SessionInfo{})
	httpcaddyfile.RegisterHandlerDirective("session_info", parseSessionInfo)
	httpcaddyfile.RegisterDirectiveOrder("session_info", httpcaddyfile.Before, "respond")
}

// SessionInfo answers with the request's own session, from the context
// session_auth filled (so from its cache, with no session-service call),
// in the shape the front end already expects: sessiongate's normalized
// JSON, or what one of the session services answers its own clients.
type SessionInfo struct {
	// Dialect is the shape of the answer: a dialect's name (see
	// docs/dialects.md) or normalized. Default normalized.
	Dialect string `json:"dialect,omitempty"`

	shape sessionctx.InfoShape
}

// maxInfoBody bounds the request body read for the shape (TR50 command
// envelopes are a few hundred bytes).
const maxInfoBody = 64 << 10

// CaddyModule returns the Caddy module information.
func (SessionInfo) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.session_info",
		New: func() caddy.Module { return new(SessionInfo) },
	}
}

// Provision implements caddy.Provisioner: it looks the shape up.
func (h *SessionInfo) Provision(caddy.Context) error {
	shape, err := sessionctx.LookupInfoShape(h.Dialect)
	if err != nil {
		return fmt.Errorf("session_info: %w", err)
	}
	h.shape = shape
	return nil
}

// Validate checks that the shape is one sessiongate can render.
func (h *SessionInfo) Validate() error {
	if _, err := sessionctx.LookupInfoShape(h.Dialect); err != nil {
		return fmt.Errorf("session_info: %w", err)
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler. It answers the
// session reads of its dialect's clients and passes every other request
// (a login, a logout) to next, so it can sit on the product's own paths in
// front of the product.
func (h *SessionInfo) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	req, pass, err := infoRequest(r, h.shape)
	if err != nil {
		return err
	}
	if pass || !h.shape.Handles(req) {
		return next.ServeHTTP(w, r)
	}
	s, ok := requestSession(r.Context())
	if !ok {
		req.Rejection = requestRejection(r.Context())
	}
	answer := h.shape.Render(s, req)
	if s != nil && h.shape.Name() == "normalized" {
		answer.Body = withAssertion(answer.Body, r, req.Query)
	}
	return writeInfo(w, r, answer)
}

// infoRequest reads what shape depends on. For some
// (TR50) it is in the body, which is put back whole for whatever handles the request; pass
// is true for a body too large to be a session read.
func infoRequest(r *http.Request, shape sessionctx.InfoShape) (req sessionctx.InfoRequest, pass bool, err error) {
	req = sessionctx.InfoRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()}
	if shape.ReadsBody() && r.Method == http.MethodPost && r.Body != nil {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxInfoBody+1))
		if err != nil {
			return req, false, caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("session_info: reading request: %w", err))
		}
		r.Body = restoredBody{Reader: io.MultiReader(bytes.NewReader(body), r.Body), Closer: r.Body}
		if len(body) > maxInfoBody {
			// No session.info envelope is this large: a command of the
			// service's own (an upload).
			return req, true, nil
		}
		req.Body = body
	}
	return req, false, nil
}

func writeInfo(w http.ResponseWriter, r *http.Request, answer sessionctx.InfoAnswer) error {
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Length", strconv.Itoa(len(answer.Body)))
	if answer.Status == http.StatusUnauthorized {
		hdr.Set("WWW-Authenticate", sessionChallenge)
	}
	w.WriteHeader(answer.Status)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(answer.Body)
	return err
}

// restoredBody puts back the bytes read ahead of the rest of a body.
type restoredBody struct {
	io.Reader
	io.Closer
}

func parseSessionInfo(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	si := new(SessionInfo)
	err := si.UnmarshalCaddyfile(h.Dispenser)
	return si, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	session_info [<matcher>] [<dialect>]
func (h *SessionInfo) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
	case 1:
		h.Dialect = args[0]
		if err := h.Validate(); err != nil {
			return d.Err(err.Error())
		}
	default:
		return d.Errf("want session_info [<dialect>], got %d arguments", len(args))
	}
	if d.NextBlock(0) {
		return d.Errf("unrecognized subdirective %q", d.Val())
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*SessionInfo)(nil)
	_ caddy.Validator             = (*SessionInfo)(nil)
	_ caddyhttp.MiddlewareHandler = (*SessionInfo)(nil)
	_ caddyfile.Unmarshaler       = (*SessionInfo)(nil)
)
