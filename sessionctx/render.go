package sessionctx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// InfoRequest is what a session_info client sent, as far as the shape of
// the answer depends on it: vSphere wraps answers under /rest/, TR50
// mirrors the command key of the body, ETERNUS filters by ?fields=.
type InfoRequest struct {
	Method string
	Path   string
	Query  url.Values
	Body   []byte
	// Now is when the answer is rendered; remaining lifetimes (ETERNUS
	// lifetime, TR50 ttl) count from it. Zero means time.Now().
	Now time.Time
	// Rejection, for a request without a session, is why its token was
	// refused (Client.Authenticate's error). A product that answers some
	// rejections its own way gets that answer rendered in place of "no
	// session": Amplify's 400 with internalCode 232 for a session that
	// awaits device authorization, on which its SDK asks for it.
	Rejection error
}

// InfoAnswer is a rendered session_info answer: always JSON.
type InfoAnswer struct {
	Status int
	Body   []byte
}

// normalizedShape is the shape name of sessiongate's own session JSON,
// the default of session_info. It is the one shape that is no dialect.
const normalizedShape = "normalized"

// infoShape is a product's own session API as session_info answers it.
type infoShape struct {
	// render renders s in the product's shape; s nil means the request
	// has no session and gets the product's unauthenticated answer.
	render func(s *Session, req InfoRequest) InfoAnswer
	// handles reports whether req is one the product's clients send to
	// read their session; nil: every request is. Other requests to the
	// same paths (vSphere login and logout, ETERNUS DELETE) belong to the
	// product itself, and session_info passes them on.
	handles func(req InfoRequest) bool
	// productRead reports whether req, which handles accepted, is the
	// product's own session read on its own path; nil: none is.
	productRead func(req InfoRequest) bool
	// readsBody is set when handles looks at a POST's body (TR50's
	// command envelope).
	readsBody bool
}

var normalizedInfo = infoShape{render: renderNormalizedInfo}

// InfoShape is one product's own session API, as session_info answers
// it: how its clients ask for their session, and what they get back, so
// that a front end written for that product keeps working behind
// sessiongate. LookupInfoShape returns each; the zero InfoShape is
// "normalized", sessiongate's own session JSON.
type InfoShape struct {
	name string
	info *infoShape
}

// LookupInfoShape returns the shape called name: a dialect's (the name of
// the dialect), or "normalized", sessiongate's own, which "" names too.
// An unknown name is an error that lists the known ones.
func LookupInfoShape(name string) (InfoShape, error) {
	if name == "" || name == normalizedShape {
		return InfoShape{}, nil
	}
	if d, ok := dialects[name]; ok {
		return InfoShape{name: name, info: &d.info}, nil
	}
	return InfoShape{}, fmt.Errorf("unknown dialect %q (known: %s)", name, strings.Join(infoShapeNames(), ", "))
}

// InfoShapes lists every shape, sorted by name: each dialect's, and
// "normalized".
func InfoShapes() []InfoShape {
	names := infoShapeNames()
	shapes := make([]InfoShape, len(names))
	for i, name := range names {
		shapes[i], _ = LookupInfoShape(name)
	}
	return shapes
}

// infoShapeNames lists the shapes LookupInfoShape knows, sorted: every
// dialect's, and "normalized".
func infoShapeNames() []string {
	return slices.Sorted(slices.Values(append(dialectNames(), normalizedShape)))
}

// Name is the shape's name: its dialect's, or "normalized".
func (sh InfoShape) Name() string {
	if sh.info == nil {
		return normalizedShape
	}
	return sh.name
}

func (sh InfoShape) shape() *infoShape {
	if sh.info == nil {
		return &normalizedInfo
	}
	return sh.info
}

// Render renders s (nil: no session) the way the product's session
// service answers its own clients. A session that came from the same
// dialect is rendered from its raw answer, faithfully; one from another
// dialect is translated from the normalized fields. With no session, a
// req.Rejection that carries the product's own answer for the state of
// the session (Amplify's device authorization) gives that answer, else
// the product's "no session".
func (sh InfoShape) Render(s *Session, req InfoRequest) InfoAnswer {
	if req.Now.IsZero() {
		req.Now = time.Now()
	}
	if s == nil {
		if answer, ok := rejectionAnswer(sh.Name(), req.Rejection); ok {
			return answer
		}
	}
	return sh.shape().render(s, req)
}

// Handles reports whether req is one that the product's clients send to
// read their session. Other requests to the same paths (vSphere login
// and logout, ETERNUS DELETE) belong to the product itself: session_info
// passes them on. sessiongate's own shapes (normalized, http) read the
// session whatever the method.
func (sh InfoShape) Handles(req InfoRequest) bool {
	h := sh.shape().handles
	return h == nil || h(req)
}

// IsProductRead reports whether req is the product's own request for the
// session, on the product's own path (vSphere /api/session and the
// legacy /rest/com/vmware/cis/session, ETERNUS /api/v1/session/<id>,
// Trifacta /v2/session, Amplify findSession, a TR50 session.info). A
// session_auth with no session for it answers in the product's shape.
func (sh InfoShape) IsProductRead(req InfoRequest) bool {
	read := sh.shape().productRead
	return read != nil && sh.Handles(req) && read(req)
}

// ReadsBody reports whether the shape tells its session reads by the
// body of a POST (TR50's command envelope), so that InfoRequest.Body must
// be filled for Handles to decide; the other shapes decide by method,
// path and query alone.
func (sh InfoShape) ReadsBody() bool { return sh.shape().readsBody }

// isRead is a GET or HEAD: how most products' clients read a session.
func isRead(req InfoRequest) bool { return req.Method == "GET" || req.Method == "HEAD" }

func renderNormalizedInfo(s *Session, _ InfoRequest) InfoAnswer {
	if s == nil {
		return infoJSON(401, map[string]any{"error": "unauthenticated"})
	}
	return infoJSON(200, s)
}

// renderHTTPInfo answers what an http-dialect service answered, or the
// normalized JSON (which is what the http dialect reads by default).
func renderHTTPInfo(s *Session, req InfoRequest) InfoAnswer {
	raw, ok := infoRawObject(s, "http")
	if !ok && s != nil && s.Dialect == "" {
		// Mapping.Decode keeps the answer without naming a dialect:
		// that is the http dialect's own.
		raw, ok = infoRawObject(&Session{Dialect: "http", Raw: s.Raw}, "http")
	}
	if ok {
		return InfoAnswer{Status: 200, Body: raw}
	}
	return renderNormalizedInfo(s, req)
}

// infoRawObject returns the service's own session object when s came from
// dialect and kept a JSON object.
func infoRawObject(s *Session, dialect string) (json.RawMessage, bool) {
	if s == nil || s.Dialect != dialect {
		return nil, false
	}
	raw := bytes.TrimSpace(s.Raw)
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		return nil, false
	}
	return json.RawMessage(raw), true
}

// infoRawFields decodes the raw session object into its fields, numbers kept
// as written.
func infoRawFields(raw json.RawMessage) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, false
	}
	return m, true
}

func infoJSON(status int, v any) InfoAnswer {
	body, err := json.Marshal(v)
	if err != nil {
		// Every value rendered here is built from strings, numbers and
		// raw JSON that was checked valid; this cannot happen.
		return InfoAnswer{Status: 500, Body: []byte(`{"error":"rendering failed"}`)}
	}
	return InfoAnswer{Status: status, Body: body}
}

// infoNumberOrString renders an identifier as a JSON number when it is a
// decimal integer (ETERNUS session ids, Trifacta person ids), else as a
// string, so a translated id keeps the type clients expect when it can.
func infoNumberOrString(id string) any {
	if id == "" {
		return nil
	}
	if _, err := strconv.ParseInt(id, 10, 64); err == nil && infoIsJSONInteger(id) {
		return json.Number(id)
	}
	return id
}

// infoIsJSONInteger reports whether id is written the way JSON writes an
// integer: an optional minus, then 0 or digits without a leading zero.
// strconv accepts more ("+1", "-012"), which json.Marshal refuses.
func infoIsJSONInteger(id string) bool {
	digits := strings.TrimPrefix(id, "-")
	if digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return true
}

// infoMillisLayout is the timestamp format vSphere and TR50 answer with.
const infoMillisLayout = "2006-01-02T15:04:05.000Z07:00"

func infoMillis(t time.Time) string {
	return t.UTC().Format(infoMillisLayout)
}

// infoSecondsLeft is how long s has left at now, in whole seconds, never
// negative; ok is false when the session says nothing of its expiry.
func infoSecondsLeft(s *Session, now time.Time) (int64, bool) {
	if s.ExpiresAt.IsZero() {
		return 0, false
	}
	left := int64(s.ExpiresAt.Sub(now) / time.Second)
	return max(left, 0), true
}

// infoSplitName splits a display name into first and last names at the first
// space, for shapes that keep them apart.
func infoSplitName(name string) (first, last string) {
	first, last, _ = strings.Cut(strings.TrimSpace(name), " ")
	return first, strings.TrimSpace(last)
}
