package caddymodule

import (
	"context"
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// What session_auth does with answers beyond "a session" and "none": a
// credential the app behind could read differently, a rejection that
// carries the product's own answer, a mapping the answer did not fill.

// errAmbiguous is the 400 of a request whose credential parsers may read
// differently (a TR50 envelope with two sessionId keys).
var errAmbiguous = errors.New("session_auth: ambiguous session credential")

// ambiguous refuses a request whose credential is ambiguous, optional or
// not: the app behind would act on a session other than the one
// resolved, or on none that was checked.
func (h *SessionAuth) ambiguous(r *http.Request, res sessionctx.Result, err error) error {
	h.logRequest(res.Key, nil, "unauthenticated", false) // counted as such: the label set stays fixed
	if ce := h.logger.Check(zapcore.DebugLevel, "session credential refused"); ce != nil {
		ce.Write(zap.Error(err))
	}
	if h.StripToken {
		h.client.StripTokens(r)
	}
	return caddyhttp.Error(http.StatusBadRequest, errAmbiguous)
}

// rejectionVar is the key, in the request's Caddy vars, of the rejection
// of an optional session_auth's request, for session_info.
const rejectionVar = "sessiongate.rejection"

// carryRejection keeps the rejection of a request that goes on without a
// session, so that session_info gives the product's own answer when the
// rejection carries one (an Amplify session awaiting device
// authorization) rather than "no session".
func carryRejection(r *http.Request, err error) {
	if _, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		caddyhttp.SetVar(r.Context(), rejectionVar, rejectionHolder{err})
	}
}

// rejectionHolder keeps the error out of {http.vars.*} as text.
type rejectionHolder struct{ err error }

func (rejectionHolder) String() string { return "" }

func requestRejection(ctx context.Context) error {
	if h, ok := caddyhttp.GetVar(ctx, rejectionVar).(rejectionHolder); ok {
		return h.err
	}
	return nil
}

// logMissingPaths notes, at debug level, the mapped paths a fresh answer
// did not hold: their fields are empty, never filled from elsewhere.
func (h *SessionAuth) logMissingPaths(key sessionctx.Key, s *sessionctx.Session) {
	if ce := h.logger.Check(zapcore.DebugLevel, "session answer lacks mapped paths"); ce != nil {
		ce.Write(zap.String("token_hash", h.tokenHash(key)), zap.Strings("missing", s.MissingPaths))
	}
}
