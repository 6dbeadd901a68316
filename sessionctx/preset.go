package sessionctx

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"
)

// preset is the backend of a product that answers one fixed request with
// the session (Amplify's findSession, Trifacta's /v2/session, TR50's
// session.info). What differs between the products is data and two small
// functions; the request, status and decode sequence is this one.
type preset struct {
	svc    *service
	method string
	target string
	// cookie is the name a cookie credential is sent on as ("": the
	// cookie it came in); anything else goes as a bearer token. Unused
	// when body is set.
	cookie string
	// body, when set, builds a JSON request body carrying the credential
	// instead of a cookie or bearer.
	body func(cred credential) string
	// rejects reports whether a non-200 answer is the product's own
	// verdict on the token. Any other is service trouble: the same status
	// from a WAF or proxy in front of it says nothing about the token.
	rejects func(status int, raw []byte) bool
	// rejection, when set, may give a rejection its own error (one that
	// keeps the product's answer for its clients); nil takes the plain
	// one.
	rejection func(raw []byte) error
	decode    func(raw []byte, now time.Time) (*Session, error)
	now       func() time.Time
}

func newPreset(svc *service, method, path string) *preset {
	return &preset{svc: svc, method: method, target: svc.Endpoint(path, ""), now: time.Now}
}

// Resolve implements backend.
func (b *preset) Resolve(ctx context.Context, cred credential) (*Session, error) {
	var body io.Reader
	if b.body != nil {
		body = strings.NewReader(b.body(cred))
	}
	req, err := b.svc.NewRequest(ctx, b.method, b.target, body)
	if err != nil {
		return nil, err
	}
	if b.body != nil {
		req.Header.Set("Content-Type", "application/json")
	} else {
		forwardToken(req, cred, b.cookie)
	}
	status, raw, err := b.svc.Do(req)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		if b.rejects(status, raw) {
			if b.rejection != nil {
				if err := b.rejection(raw); err != nil {
					return nil, err
				}
			}
			return nil, statusError(status, status)
		}
		return nil, statusError(status)
	}
	return b.decode(raw, b.now())
}
