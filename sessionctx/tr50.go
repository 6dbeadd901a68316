package sessionctx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

func init() {
	registerDialect(&dialect{
		name:       "tr50",
		tokens:     []TokenSource{{From: FromHeader, Name: "sessionId"}, {From: FromCookie, Name: "sessionId"}},
		bodyTokens: []TokenSource{tr50BodySource},
		extract:    func(Options) extractor { return extractTR50 },
		backend: func(svc *service, _ Options) (backend, error) {
			b := newPreset(svc, http.MethodPost, "/api")
			b.body, b.rejects, b.decode = tr50Request, tr50Rejects, decodeTR50
			return b, nil
		},
		info: infoShape{render: renderTR50Info, handles: tr50InfoHandles, productRead: func(InfoRequest) bool { return true }, readsBody: true},
	})
}

// tr50BodySource names a session id read from a TR50 request envelope's
// auth.sessionId, where TR50 clients send it.
var tr50BodySource = TokenSource{From: fromBody, Name: "auth.sessionId"}

// maxTR50Envelope bounds the body read for auth.sessionId: a command
// envelope is a few hundred bytes, and a larger body is some other upload.
const maxTR50Envelope = 64 << 10

// extractTR50 reads the configured sources and the auth.sessionId of a
// POSTed JSON envelope; with no token in the sources, the envelope's is
// the credential. The body is put back whole for the handlers that
// follow. An envelope that parsers may read differently (two auth
// objects, two sessionId keys, in any case), or that names another
// session than the sources do, is refused with errAmbiguous: the app
// behind must never act on a session other than the one resolved.
func extractTR50(r *http.Request, sources []TokenSource) (credential, error) {
	cred, err := extractToken(r, sources)
	if cred.Source.From != "" && err != nil {
		return cred, err // a malformed token in a source: refused as it is
	}
	if r.Method != http.MethodPost || r.Body == nil || r.Body == http.NoBody || r.ContentLength > maxTR50Envelope {
		return cred, err
	}
	body, rerr := io.ReadAll(io.LimitReader(r.Body, maxTR50Envelope+1))
	r.Body = readBackBody{Reader: io.MultiReader(bytes.NewReader(body), r.Body), Closer: r.Body}
	if rerr != nil || len(body) > maxTR50Envelope {
		return cred, err
	}
	id, found, aerr := tr50EnvelopeSessionID(body)
	switch {
	case aerr != nil:
		return credential{Source: tr50BodySource}, fmt.Errorf("%w: %w", errAmbiguous, aerr)
	case !found:
		return cred, err
	case cred.Value != "":
		if id != cred.Value {
			return credential{Source: cred.Source}, fmt.Errorf("%w: the envelope's auth.sessionId and the %s name different sessions", errAmbiguous, cred.Source)
		}
		return cred, nil
	}
	if cerr := checkToken(id); cerr != nil {
		return credential{Source: tr50BodySource}, fmt.Errorf("%w: token in %s: %w", ErrUnauthenticated, tr50BodySource, cerr)
	}
	return credential{Value: id, Source: tr50BodySource}, nil
}

// tr50EnvelopeSessionID reads auth.sessionId from a command envelope the
// way no JSON parser can read otherwise. Parsers disagree on duplicate
// keys (GJSON and many others take the first, Go's encoding/json and
// Jackson's default the last) and on case (encoding/json matches a
// struct field's name in any case, with Unicode folding: "SESSIONID",
// "ſessionId"), so a top-level key that folds to "auth", or a key of an
// auth object that folds to "sessionId", given twice is an error, as is
// a session id that is not valid UTF-8 (kept as bytes by some, replaced
// by others). Keys are compared unescaped. found is false when body is
// not a JSON object or holds no non-empty string there.
func tr50EnvelopeSessionID(body []byte) (id string, found bool, err error) {
	if !json.Valid(body) {
		return "", false, nil
	}
	auth, n := foldedMember(body, "auth")
	if n > 1 {
		return "", false, fmt.Errorf("envelope has more than one auth object")
	}
	sid, n := foldedMember(auth, "sessionId")
	if n > 1 {
		return "", false, fmt.Errorf("envelope's auth has more than one sessionId")
	}
	v := gjson.ParseBytes(sid)
	if sid == nil || v.Type != gjson.String || v.Str == "" {
		return "", false, nil
	}
	if !utf8.ValidString(v.Str) {
		// Parsers differ here too: some keep the bytes, Go's replaces
		// them with U+FFFD.
		return "", false, fmt.Errorf("envelope's sessionId is not valid UTF-8")
	}
	return v.Str, true, nil
}

// foldedMember returns the value of the member of the JSON object obj
// whose unescaped key equals name under Unicode case folding, and how
// many members have such a key; nil and 0 when obj is not an object.
func foldedMember(obj json.RawMessage, name string) (json.RawMessage, int) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, 0
	}
	var val json.RawMessage
	n := 0
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, 0
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, 0
		}
		if key, _ := t.(string); strings.EqualFold(key, name) {
			val = v
			n++
		}
	}
	return val, n
}

// readBackBody is a request body with the bytes already read put back.
type readBackBody struct {
	io.Reader
	io.Closer
}

// tr50Request is the session.info command envelope for cred.
func tr50Request(cred credential) string {
	tok, _ := json.Marshal(cred.Value)
	return `{"auth":{"sessionId":` + string(tok) + `},"1":{"command":"session.info"}}`
}

// tr50Rejects: TR50 reports a bad session inside a 200; an HTTP 401/403
// can only come from a gateway in front of it that refused the same
// session, so it is a verdict too, when it answers in JSON.
func tr50Rejects(status int, raw []byte) bool {
	return (status == http.StatusUnauthorized || status == http.StatusForbidden) && serviceAnswer(raw, "")
}

// decodeTR50 maps a session.info answer to a session. The command may be
// keyed "1", "cmd" or anything else: the first object other than "auth"
// is taken as its answer. Raw is its params object.
func decodeTR50(raw []byte, now time.Time) (*Session, error) {
	doc, err := parseObject(raw, "tr50 answer")
	if err != nil {
		return nil, err
	}
	if auth := doc.Get("auth"); auth.IsObject() && auth.Get("success").Type == gjson.False {
		return nil, fmt.Errorf("%w: tr50 rejected the session (%s)", ErrUnauthenticated, tr50Errors(auth))
	}
	var cmd gjson.Result
	doc.ForEach(func(k, v gjson.Result) bool {
		if k.Str != "auth" && v.IsObject() {
			cmd = v
			return false
		}
		return true
	})
	if !cmd.Exists() {
		return nil, fmt.Errorf("%w: tr50 answer holds no command result", ErrUnavailable)
	}
	if cmd.Get("success").Type == gjson.False {
		return nil, fmt.Errorf("%w: tr50 session.info failed (%s)", ErrUnauthenticated, tr50Errors(cmd))
	}
	p := cmd.Get("params")
	if !p.IsObject() {
		return nil, fmt.Errorf("%w: tr50 session.info answered no params", ErrUnavailable)
	}

	s := &Session{
		ID:      str(p, "id"),
		OrgID:   str(p, "orgId"),
		Org:     str(p, "orgKey"),
		Roles:   list(p, "roleKeys"),
		Admin:   truthy(p.Get("hasSuperAdmin")) || truthy(p.Get("hasOrgAdmin")),
		Kind:    kindUser,
		Dialect: "tr50",
		Raw:     []byte(p.Raw),
	}
	s.UserID, s.User = str(p, "userId"), str(p, "userName")
	if s.UserID == "" && s.User == "" {
		s.UserID, s.User = str(p, "appId"), str(p, "appName")
		s.Kind = kindApp
	}
	if err := s.needsPrincipal("tr50 session names neither user nor app"); err != nil {
		return nil, err
	}
	if s.Kind == kindUser && strings.Contains(s.User, "@") {
		s.Email = s.User
	}
	if perms := p.Get("perms"); perms.IsObject() {
		perms.ForEach(func(k, v gjson.Result) bool {
			if truthy(v) && k.Str != "" {
				s.Perms = append(s.Perms, k.Str)
			}
			return true
		})
	}
	s.CreatedAt, _ = timeValue(p.Get("startTime"))
	s.LastAccessedAt, _ = timeValue(p.Get("lastAccessed"))
	if ttl, ok := number(p.Get("ttl")); ok && ttl > 0 && ttl < 1e9 {
		s.ExpiresAt = idleExpiry(s.LastAccessedAt, secondsOf(ttl), now)
	}

	attrs := map[string]any{}
	for _, k := range []string{"serverId", "locale", "whoAmI", "tokenId", "tokenName", "thingKey"} {
		if v := str(p, k); v != "" {
			attrs[k] = v
		}
	}
	if p.Get("hasSuperOps").Type == gjson.True {
		attrs["hasSuperOps"] = true
	}
	if len(attrs) > 0 {
		s.Attrs = attrs
	}
	return s, nil
}

// tr50Errors renders a failure's error messages for the error chain (they
// describe the failure, never the token).
func tr50Errors(r gjson.Result) string {
	msgs := list(r, "errorMessages")
	if len(msgs) == 0 {
		msgs = list(r, "errorCodes")
	}
	if len(msgs) == 0 {
		return "no reason given"
	}
	out := strings.Join(msgs, "; ")
	if len(out) > 200 {
		out = out[:200]
	}
	return out
}
