package sessionctx

import (
	"net/http"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/dialecttest"
)

// sixth is a dialect that exists only in this package's tests: a sixth
// product, added the way docs/dialects.md says a dialect is added (its
// registration, its conformance case, nothing else), so that every
// cross-dialect test of this package, and the Caddyfile parser in
// sixth_dialect_caddy_test.go, show they take it without an edit of
// their own.
const sixth = "sixth"

func init() {
	registerDialect(&dialect{
		name:   sixth,
		tokens: []TokenSource{{From: FromHeader, Name: "X-Sixth-Session"}, {From: FromBearer}},
		backend: func(svc *service, _ Options) (backend, error) {
			b := newPreset(svc, http.MethodGet, "/me")
			b.rejects = func(status int, _ []byte) bool { return status == http.StatusUnauthorized }
			b.decode = decodeSixth
			return b, nil
		},
		info: infoShape{
			render:      renderSixthInfo,
			handles:     isRead,
			productRead: func(req InfoRequest) bool { return req.Path == "/me" },
		},
	})
	dialecttest.Register(dialecttest.Case{
		Dialect: sixth,
		Sources: []dialecttest.Source{{From: FromHeader, Name: "X-Sixth-Session"}, {From: FromBearer}},
		// Its service answers what the http dialect's default reads.
		NewService: func() *dialecttest.Service {
			c, _ := dialecttest.Lookup("http")
			return c.NewService()
		},
		InfoReads:    []dialecttest.InfoRead{{Request: dialecttest.Request{Method: http.MethodGet, Target: "/me"}, Status: http.StatusUnauthorized, Key: "sixth_error"}},
		ProductReads: true,
		InfoPasses:   []dialecttest.Request{{Method: http.MethodPost, Target: "/me"}},
	})
}

func decodeSixth(raw []byte, _ time.Time) (*Session, error) {
	doc, err := parseObject(raw, "sixth answer")
	if err != nil {
		return nil, err
	}
	s := &Session{UserID: str(doc, "user_id"), User: str(doc, "user"), Kind: kindUser, Dialect: sixth, Raw: []byte(doc.Raw)}
	if err := s.needsPrincipal("sixth session names no user"); err != nil {
		return nil, err
	}
	return s, nil
}

func renderSixthInfo(s *Session, _ InfoRequest) InfoAnswer {
	if s == nil {
		return infoJSON(http.StatusUnauthorized, map[string]any{"sixth_error": "no session"})
	}
	return infoJSON(http.StatusOK, map[string]any{"who": s.User})
}
