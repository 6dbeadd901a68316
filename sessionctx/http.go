package sessionctx

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
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
// fields. An empty path leaves its field empty: no field is ever filled
// from another, or from a path the mapping does not name. Preset dialects
// are mappings of their own.
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
	// RolesSplit, when set, splits a roles string on this exact
	// separator; without it a string is one role ("Sales admin").
	// Elements are never trimmed. Default none.
	RolesSplit string `json:"roles_split,omitempty"`
	// PermsSplit is RolesSplit for permissions. Default none.
	PermsSplit string `json:"perms_split,omitempty"`
}

// defaultMapping reads sessiongate's own normalized shape, so that one
// sessiongate can resolve against another's session_info.
func defaultMapping() Mapping {
	return Mapping{
		IDFrom: "id", UserIDFrom: "user_id", UserFrom: "user", EmailFrom: "email",
		NameFrom: "name", OrgIDFrom: "org_id", OrgFrom: "org", RolesFrom: "roles",
		PermsFrom: "perms", AdminFrom: "admin", ExpiresFrom: "expires_at",
	}
}

// mapsIdentity reports whether any identity field is mapped.
func (m Mapping) mapsIdentity() bool {
	return m.IDFrom != "" || m.UserIDFrom != "" || m.UserFrom != "" || m.EmailFrom != "" || m.NameFrom != "" ||
		m.OrgIDFrom != "" || m.OrgFrom != "" || m.RolesFrom != "" || m.PermsFrom != "" || m.AdminFrom != ""
}

// resolved is the mapping in force. One that maps no identity field
// reads the default shape (whose expires_from applies unless the mapping
// gives expires_from or ttl_from); one that maps any identity field reads
// exactly what it says and nothing else, so a field left unmapped can
// never be filled from a path the answer happens to hold.
func (m Mapping) resolved() Mapping {
	if m.mapsIdentity() {
		return m
	}
	d := defaultMapping()
	d.ValidFrom, d.RolesSplit, d.PermsSplit = m.ValidFrom, m.RolesSplit, m.PermsSplit
	if m.ExpiresFrom != "" || m.TTLFrom != "" {
		d.ExpiresFrom, d.TTLFrom = m.ExpiresFrom, m.TTLFrom
	}
	return d
}

// rejectedIf reports whether doc satisfies a rejected_if predicate:
// [path] holds when the value at path is present and neither null nor
// false; [path, value] when it is value (a string's content, a number or
// boolean as JSON writes it).
func rejectedIf(pred []string, doc gjson.Result) bool {
	v := doc.Get(pred[0])
	if !v.Exists() || v.Type == gjson.Null {
		return false
	}
	if len(pred) == 1 {
		return v.Type != gjson.False
	}
	if v.Type == gjson.String {
		return v.Str == pred[1]
	}
	return v.Raw == pred[1]
}

// HTTPOptions configure the http dialect.
type HTTPOptions struct {
	// Method of the session-service request. Default GET.
	Method string `json:"method,omitempty"`
	// TokenTo says how the token is sent. Default the Authorization header
	// with the "Bearer " prefix.
	TokenTo TokenSink `json:"token_to,omitzero"`
	// UnauthenticatedStatus lists the statuses that reject the token when
	// the service answers them in JSON; a 401 rejects it whatever its
	// body (empty, text, HTML), listed or not. Default 401 and 403; any
	// other non-2xx is a service error, as is a listed status answered
	// in anything but JSON (a proxy's or a WAF's page).
	UnauthenticatedStatus []int `json:"unauthenticated_status,omitempty"`
	// RejectedIf, when set, is a GJSON path and optionally the value it
	// must have: a JSON answer (2xx, or 4xx other than 408 and 429) in
	// which the path holds a value other than null or false (or the value
	// given) is a rejection, for services that say "no session" in the
	// body ({"error": {"code": ...}}). Default none.
	RejectedIf []string `json:"rejected_if,omitempty"`
	Mapping
}

// newHTTPOptions returns the defaults: a GET with a bearer token. The
// mapping is left empty, so that what a configuration maps can be told
// from what it does not: an empty mapping reads the default shape
// (Mapping.resolved).
func newHTTPOptions() *HTTPOptions { return &HTTPOptions{} }

// Resolved returns the options with the mapping in force filled in: what
// the Caddyfile adapter writes out, so that `caddy adapt` shows every
// path that is read.
func (o *HTTPOptions) Resolved() Options {
	c := *o
	c.Mapping = o.resolved()
	return &c
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
	case "rejected_if":
		if len(args) != 1 && len(args) != 2 {
			return fmt.Errorf("rejected_if takes <gjson-path> [<value>]")
		}
		if args[0] == "" {
			return fmt.Errorf("rejected_if: empty path")
		}
		o.RejectedIf = append([]string(nil), args...)
		return nil
	case "roles_split", "perms_split":
		if len(args) != 1 || args[0] == "" {
			return fmt.Errorf("%s takes one non-empty separator", name)
		}
		if name == "roles_split" {
			o.RolesSplit = args[0]
		} else {
			o.PermsSplit = args[0]
		}
		return nil
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
	o.Mapping = o.resolved()
	if n := len(o.RejectedIf); n > 2 || (n > 0 && o.RejectedIf[0] == "") {
		return nil, fmt.Errorf("rejected_if: want [<gjson-path>] or [<gjson-path>, <value>]")
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
	if err := b.rejection(status, raw); err != nil {
		return nil, err
	}
	s, err := b.opts.Decode(raw, b.now())
	if err != nil {
		return nil, err
	}
	s.Dialect = "http"
	return s, nil
}

// rejection classifies an answer that is not a session: nil for a 2xx
// the service did not mark as a rejection (it is decoded next), an error
// wrapping ErrUnauthenticated for a rejection, and one wrapping
// ErrUnavailable for anything else, whose text says why it was not taken
// as a rejection (the warning logged for it).
func (b *httpBackend) rejection(status int, raw []byte) error {
	if status == http.StatusUnauthorized {
		// What many "who am I" endpoints answer an expired token,
		// often with an empty or text body: a verdict whatever the body.
		return fmt.Errorf("%w: session service answered 401", ErrUnauthenticated)
	}
	isJSON := serviceAnswer(raw, "")
	if p := b.opts.RejectedIf; len(p) > 0 && isJSON && (status < 300 || (status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests)) && rejectedIf(p, gjson.ParseBytes(raw)) {
		return fmt.Errorf("%w: session service answered %d and rejected_if %s holds", ErrUnauthenticated, status, p[0])
	}
	if status >= 200 && status < 300 {
		return nil
	}
	if slices.Contains(b.opts.UnauthenticatedStatus, status) {
		if isJSON {
			return fmt.Errorf("%w: session service answered %d", ErrUnauthenticated, status)
		}
		return unavailable(FailureStatus, "session service answered %d with a body that is not a JSON object (%s): not taken as a rejection, which for this status must come from the service itself", status, bodyKind(raw))
	}
	return unavailable(FailureStatus, "session service answered %d, not in unauthenticated_status %v: not taken as a rejection", status, b.opts.UnauthenticatedStatus)
}

// bodyKind describes a body for a log line without quoting it (an error
// page may echo the request, token included).
func bodyKind(raw []byte) string {
	t := bytes.TrimSpace(raw)
	switch {
	case len(t) == 0:
		return "empty"
	case t[0] == '<':
		return "HTML or XML"
	case json.Valid(t):
		return "JSON but not an object"
	}
	return "text"
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

// missing lists the mapped identity paths doc does not hold (or holds as
// null), for a
// debug line: each such field stays empty, never filled from another.
func (m *Mapping) missing(paths []string, vals []gjson.Result) []string {
	var out []string
	for i, p := range paths {
		if v := vals[i]; p != "" && !slices.Contains(out, p) && (!v.Exists() || v.Type == gjson.Null) {
			out = append(out, p)
		}
	}
	return out
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
	// Each path is read once, most in one pass over the answer.
	paths := [...]string{
		m.IDFrom, m.UserIDFrom, m.UserFrom, m.EmailFrom, m.NameFrom, m.OrgIDFrom, m.OrgFrom, m.RolesFrom, m.PermsFrom, m.AdminFrom,
		m.ValidFrom, m.ExpiresFrom, m.TTLFrom,
	}
	const (
		pID = iota
		pUserID
		pUser
		pEmail
		pName
		pOrgID
		pOrg
		pRoles
		pPerms
		pAdmin
		pValid
		pExpires
		pTTL
	)
	var v [len(paths)]gjson.Result
	getAll(doc, paths[:], v[:])
	if m.ValidFrom != "" {
		if v[pValid].Type != gjson.True {
			return nil, fmt.Errorf("%w: session is not valid (%s is %s)", ErrUnauthenticated, m.ValidFrom, orMissing(v[pValid]))
		}
	}
	s := &Session{
		ID:     strOf(v[pID]),
		UserID: strOf(v[pUserID]),
		User:   strOf(v[pUser]),
		Email:  strOf(v[pEmail]),
		Name:   strOf(v[pName]),
		OrgID:  strOf(v[pOrgID]),
		Org:    strOf(v[pOrg]),
		Roles:  splitListOf(v[pRoles], m.RolesSplit),
		Perms:  splitListOf(v[pPerms], m.PermsSplit),
		Kind:   kindUser,
		Raw:    raw,
	}
	if m.AdminFrom != "" {
		s.Admin = truthy(v[pAdmin])
	}
	s.MissingPaths = m.missing(paths[:pValid], v[:pValid])
	if err := s.needsPrincipal("answer names no user (check user_id_from/user_from)"); err != nil {
		return nil, err
	}
	if m.ExpiresFrom != "" {
		if t, ok := timeValue(v[pExpires]); ok {
			s.ExpiresAt = t
		}
	}
	if m.TTLFrom != "" {
		if v := v[pTTL]; v.Exists() {
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
