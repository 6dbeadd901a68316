package caddymodule

import (
	"net/http"
	"path"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// LogoutRoute is a request that ends the session it carries.
type LogoutRoute struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

// logoutPath reduces a request path to what an app's router matches a
// logout route against: `;` path parameters cut from every segment
// (`/logout;jsessionid=1`, which servlet containers route to /logout),
// the path cleaned (`//logout`, `/logout/`, `/a/../logout`), and
// lower-cased, since many routers match without regard to case. A
// configured logout path goes through the same, so the two compare
// equal whenever the app would take the request for its logout.
func logoutPath(p string) string {
	if strings.IndexByte(p, ';') >= 0 {
		segs := strings.Split(p, "/")
		for i, s := range segs {
			segs[i], _, _ = strings.Cut(s, ";")
		}
		p = strings.Join(segs, "/")
	}
	return strings.ToLower(path.Clean("/" + p))
}

// isLogout reports whether r is one of the configured logout requests:
// the method in any case, the path as logoutPath reads it.
func (h *SessionAuth) isLogout(r *http.Request) bool {
	if len(h.Logout) == 0 {
		return false
	}
	p := logoutPath(r.URL.Path)
	for _, l := range h.Logout {
		if strings.EqualFold(r.Method, l.Method) && p == logoutPath(l.Path) {
			return true
		}
	}
	return false
}

// forgetOnLogout evicts the token of a logout request the upstream
// accepted, so the next request with it asks the session service again.
func (h *SessionAuth) forgetOnLogout(key sessionctx.Key) {
	evicted := h.client.Forget(key)
	if evicted && h.metricsOn {
		observeEvictions("logout", 1)
	}
	if ce := h.logger.Check(zapcore.DebugLevel, "session logout"); ce != nil {
		ce.Write(zap.String("token_hash", h.tokenHash(key)), zap.Bool("evicted", evicted))
	}
}
