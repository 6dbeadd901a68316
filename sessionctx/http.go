package sessionctx

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

func init() {
	registerDialect(&dialect{
		name:    "http",
		tokens:  []TokenSource{{From: FromBearer}},
		options: func() Options { return newHTTPOptions() },
		backend: func(svc *service, opts Options) (backend, error) {
			return newHTTPBackend(svc, opts.(*HTTPOptions))
		},
		info: infoShape{render: renderHTTPInfo},
	})
}

// TokenSink says how the http dialect hands the token to the service.
type TokenSink struct {
	// To is header, cookie, query or body. Default header.
	To string `json:"to,omitempty"`
	// Name is the header, cookie or query parameter. Default Authorization.
	Name string `json:"name,omitempty"`
	// Prefix goes before the token in a header. Default "Bearer " for
	// Authorization.
	Prefix string `json:"prefix,omitempty"`
	// Body is a JSON template in which {token} is replaced by the token as
	// a JSON string (quotes included), for to=body.
	Body string `json:"body,omitempty"`
}

// Mapping holds GJSON paths from a session-service answer to the normalized
// fields. An empty path leaves its field empty. Preset dialects are
// mappings of their own.
type Mapping struct {
	IDFrom      string `json:"id_from,omitempty"`
	UserIDFrom  string `json:"user_id_from,omitempty"`
	UserFrom    string `json:"user_from,omitempty"`
	EmailFrom   string `json:"email_from,omitempty"`
	NameFrom    string `json:"name_from,omitempty"`
	OrgIDFrom   string `json:"org_id_from,omitempty"`
	OrgFrom     string `json:"org_from,omitempty"`
	RolesFrom   string `json:"roles_from,omitempty"`
	PermsFrom   string `json:"perms_from,omitempty"`
	AdminFrom   string `json:"admin_from,omitempty"`
	ExpiresFrom string `json:"expires_from,omitempty"`
	TTLFrom     string `json:"ttl_from,omitempty"`
	// ValidFrom, when set, names a boolean that must be true for the
	// session to be live.
	ValidFrom string `json:"valid_from,omitempty"`
}

// HTTPOptions configure the http dialect.
type HTTPOptions struct {
	// Method of the session-service request. Default GET.
	Method string `json:"method,omitempty"`
	// TokenTo says how the token is sent. Default the Authorization header
	// with the "Bearer " prefix.
	TokenTo TokenSink `json:"token_to,omitzero"`
	// UnauthenticatedStatus lists the statuses that reject the token.
	// Default 401 and 403; any other non-2xx is a service error.
	UnauthenticatedStatus []int `json:"unauthenticated_status,omitempty"`
	Mapping
}

// newHTTPOptions returns the defaults: a GET with a bearer token, and a
// mapping that reads sessiongate's own normalized shape, so one
// sessiongate can resolve against another's session_info.
func newHTTPOptions() *HTTPOptions {
	return &HTTPOptions{Mapping: Mapping{
		IDFrom: "id", UserIDFrom: "user_id", UserFrom: "user", EmailFrom: "email",
		NameFrom: "name", OrgIDFrom: "org_id", OrgFrom: "org", RolesFrom: "roles",
		PermsFrom: "perms", AdminFrom: "admin", ExpiresFrom: "expires_at",
	}}
}

// SetOption implements Options with the Caddyfile syntax docs/dialects.md gives.
func (o *HTTPOptions) SetOption(name string, args []string) error {
	one := func(dst *string) error {
		if len(args) != 1 {
			return fmt.Errorf("%s takes exactly one argument", name)
		}
		*dst = args[0]
		return nil
	}
	switch name {
	case "method":
		if err := one(&o.Method); err != nil {
			return err
		}
		o.Method = strings.ToUpper(o.Method)
		return nil
	case "token_to":
		return o.setTokenTo(args)
	case "unauthenticated_status":
		if len(args) == 0 {
			return fmt.Errorf("unauthenticated_status needs at least one status code")
		}
		o.UnauthenticatedStatus = nil
		for _, a := range args {
			n, err := strconv.Atoi(a)
			if err != nil || n < 100 || n > 599 {
				return fmt.Errorf("unauthenticated_status: %q is not an HTTP status", a)
			}
			o.UnauthenticatedStatus = append(o.UnauthenticatedStatus, n)
		}
		return nil
	}
	if dst := o.field(name); dst != nil {
		return one(dst)
	}
	return fmt.Errorf("unrecognized http backend option %q", name)
}

func (o *HTTPOptions) setTokenTo(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("token_to needs header <name> [<prefix>], cookie <name>, query <name> or body <template>")
	}
	sink := TokenSink{To: args[0]}
	switch {
	case sink.To == "header" && (len(args) == 2 || len(args) == 3):
		sink.Name = args[1]
		if len(args) == 3 {
			sink.Prefix = args[2]
		}
	case (sink.To == "cookie" || sink.To == "query") && len(args) == 2:
		sink.Name = args[1]
	case sink.To == "body" && len(args) == 2:
		sink.Body = args[1]
	default:
		return fmt.Errorf("token_to needs header <name> [<prefix>], cookie <name>, query <name> or body <template>")
	}
	o.TokenTo = sink
	return nil
}

func (m *Mapping) field(option string) *string {
	switch option {
	case "id_from":
		return &m.IDFrom
	case "user_id_from":
		return &m.UserIDFrom
	case "user_from":
		return &m.UserFrom
	case "email_from":
		return &m.EmailFrom
	case "name_from":
		return &m.NameFrom
	case "org_id_from":
		return &m.OrgIDFrom
	case "org_from":
		return &m.OrgFrom
	case "roles_from":
		return &m.RolesFrom
	case "perms_from":
		return &m.PermsFrom
	case "admin_from":
		return &m.AdminFrom
	case "expires_from":
		return &m.ExpiresFrom
	case "ttl_from":
		return &m.TTLFrom
	case "valid_from":
		return &m.ValidFrom
	}
	return nil
}

// httpBackend is the http dialect's client.
type httpBackend struct {
	svc    *service
	opts   HTTPOptions
	target string
	now    func() time.Time
}

// newHTTPBackend checks opts and builds the client.
func newHTTPBackend(svc *service, opts *HTTPOptions) (*httpBackend, error) {
	o := *opts
	if o.Method == "" {
		o.Method = http.MethodGet
	}
	if o.Mapping == (Mapping{}) {
		// Options built in Go that set no path read sessiongate's own
		// shape, as the defaults do.
		o.Mapping = newHTTPOptions().Mapping
	}
	if o.TokenTo.To == "" {
		o.TokenTo.To = "header"
	}
	switch o.TokenTo.To {
	case "header":
		if o.TokenTo.Name == "" {
			o.TokenTo.Name = "Authorization"
			if o.TokenTo.Prefix == "" {
				o.TokenTo.Prefix = "Bearer "
			}
		}
	case "cookie", "query":
		if o.TokenTo.Name == "" {
			return nil, fmt.Errorf("token_to %s needs a name", o.TokenTo.To)
		}
	case "body":
		if !strings.Contains(o.TokenTo.Body, "{token}") {
			return nil, fmt.Errorf("token_to body template must contain {token}")
		}
		if !json.Valid([]byte(strings.ReplaceAll(o.TokenTo.Body, "{token}", `""`))) {
			return nil, fmt.Errorf("token_to body template is not JSON once {token} is filled in")
		}
	default:
		return nil, fmt.Errorf("token_to %q: want header, cookie, query or body", o.TokenTo.To)
	}
	if len(o.UnauthenticatedStatus) == 0 {
		o.UnauthenticatedStatus = []int{http.StatusUnauthorized, http.StatusForbidden}
	}
	if o.UserIDFrom == "" && o.UserFrom == "" {
		return nil, fmt.Errorf("need user_id_from or user_from: a session without a user is no identity")
	}
	return &httpBackend{svc: svc, opts: o, target: svc.URL.String(), now: time.Now}, nil
}

// Resolve implements Backend.
func (b *httpBackend) Resolve(ctx context.Context, cred credential) (*Session, error) {
	target := b.target
	var body io.Reader
	if b.opts.TokenTo.To == "query" {
		u := *b.svc.URL
		q := u.Query()
		q.Set(b.opts.TokenTo.Name, cred.Value)
		u.RawQuery = q.Encode()
		target = u.String()
	}
	if b.opts.TokenTo.To == "body" {
		tok, _ := json.Marshal(cred.Value)
		body = strings.NewReader(strings.ReplaceAll(b.opts.TokenTo.Body, "{token}", string(tok)))
	}
	if b.opts.TokenTo.To == "cookie" && !cookieOctets(cred.Value) {
		// Sent as it is, a ';' would add cookies of the client's choosing
		// to the service request; any other encoding would be a different
		// token to the service.
		return nil, fmt.Errorf("%w: token cannot be sent as a cookie value", ErrUnauthenticated)
	}
	req, err := b.svc.NewRequest(ctx, b.opts.Method, target, body)
	if err != nil {
		return nil, err
	}
	switch b.opts.TokenTo.To {
	case "header":
		req.Header.Set(b.opts.TokenTo.Name, b.opts.TokenTo.Prefix+cred.Value)
	case "cookie":
		req.Header.Set("Cookie", b.opts.TokenTo.Name+"="+cred.Value)
	case "body":
		req.Header.Set("Content-Type", "application/json")
	}
	status, raw, err := b.svc.Do(req)
	if err != nil {
		return nil, err
	}
	if status < 200 || status > 299 {
		if !json.Valid(bytes.TrimSpace(raw)) {
			// The service answers in JSON; a rejection page in anything
			// else (a WAF's HTML 403, a proxy's empty 401) is from what
			// stands in front of it, not a verdict on the token.
			return nil, statusError(status)
		}
		return nil, statusError(status, b.opts.UnauthenticatedStatus...)
	}
	s, err := b.opts.Decode(raw, b.now())
	if err != nil {
		return nil, err
	}
	s.Dialect = "http"
	return s, nil
}

// cookieOctets reports whether v can be a cookie value as it is: RFC 6265
// cookie-octets only (no space, '"', ',', ';', '\\', control or non-ASCII
// bytes).
func cookieOctets(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}

// Decode maps a JSON answer to a session. An answer that is not a JSON
// object, or names no user, wraps ErrUnavailable: the service (or the
// mapping) is broken, which says nothing about the token. A valid_from
// field that is not true wraps ErrUnauthenticated.
func (m *Mapping) Decode(raw []byte, now time.Time) (*Session, error) {
	doc, err := parseObject(raw, "answer")
	if err != nil {
		return nil, err
	}
	if m.ValidFrom != "" {
		if v := doc.Get(m.ValidFrom); v.Type != gjson.True {
			return nil, fmt.Errorf("%w: session is not valid (%s is %s)", ErrUnauthenticated, m.ValidFrom, orMissing(v))
		}
	}
	s := &Session{
		ID:     str(doc, m.IDFrom),
		UserID: str(doc, m.UserIDFrom),
		User:   str(doc, m.UserFrom),
		Email:  str(doc, m.EmailFrom),
		Name:   str(doc, m.NameFrom),
		OrgID:  str(doc, m.OrgIDFrom),
		Org:    str(doc, m.OrgFrom),
		Roles:  list(doc, m.RolesFrom),
		Perms:  list(doc, m.PermsFrom),
		Kind:   kindUser,
		Raw:    raw,
	}
	if m.AdminFrom != "" {
		s.Admin = truthy(doc.Get(m.AdminFrom))
	}
	if err := s.fillUser("answer names no user (check user_id_from/user_from)"); err != nil {
		return nil, err
	}
	if m.ExpiresFrom != "" {
		if t, ok := timeValue(doc.Get(m.ExpiresFrom)); ok {
			s.ExpiresAt = t
		}
	}
	if m.TTLFrom != "" {
		if v := doc.Get(m.TTLFrom); v.Exists() {
			if secs, ok := number(v); ok {
				exp := now.Add(secondsOf(secs))
				if s.ExpiresAt.IsZero() || exp.Before(s.ExpiresAt) {
					s.ExpiresAt = exp
				}
			}
		}
	}
	return s, nil
}
