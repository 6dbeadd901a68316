package cluster

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"
	"unsafe"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// stored is an entry as sealed in Redis: a session (or a rejection when
// Session is nil) with its times. Its dialect and the service's raw
// answer, which rendering in the dialect's shape needs, travel with it.
type stored struct {
	Session *sessionctx.Session
	Fresh   int64
	Stale   int64
	Filled  int64
	Gen     int64
}

// An entry's plain form is binary, not JSON: an L2 hit decodes it on
// every request, and a JSON decode cost as much as the rest of the hit.
//
//	varint fresh, stale, filled, gen (unix ns)
//	byte flags (hasSession, admin)
//	strings id, user_id, user, email, name, org_id, org, kind, dialect
//	lists roles, perms (uvarint count, strings)
//	times created_at, last_accessed_at, expires_at
//	bytes raw, attrs (JSON, empty when none)
//
// A string or bytes is a uvarint length and the bytes; a time is a
// varint of unix seconds, a uvarint of nanoseconds and a varint of the
// zone offset in seconds, or one byte 0 when zero.
const (
	flagSession = 1 << iota
	flagAdmin
)

// errFormat is an entry that opened but does not decode: written by a
// node with the same secret but another format, never by this one.
var errFormat = errors.New("cluster entry of an unknown format")

func appendEntry(b []byte, st *stored) []byte {
	b = binary.AppendVarint(b, st.Fresh)
	b = binary.AppendVarint(b, st.Stale)
	b = binary.AppendVarint(b, st.Filled)
	b = binary.AppendVarint(b, st.Gen)
	s := st.Session
	if s == nil {
		return append(b, 0)
	}
	flags := byte(flagSession)
	if s.Admin {
		flags |= flagAdmin
	}
	b = append(b, flags)
	for _, v := range [...]string{s.ID, s.UserID, s.User, s.Email, s.Name, s.OrgID, s.Org, s.Kind, s.Dialect} {
		b = appendString(b, v)
	}
	for _, l := range [...][]string{s.Roles, s.Perms} {
		b = binary.AppendUvarint(b, uint64(len(l)))
		for _, v := range l {
			b = appendString(b, v)
		}
	}
	for _, t := range [...]time.Time{s.CreatedAt, s.LastAccessedAt, s.ExpiresAt} {
		b = appendTime(b, t)
	}
	b = appendString(b, string(s.Raw))
	var attrs []byte
	if len(s.Attrs) > 0 {
		// Attrs are the service's own JSON values: JSON carries them as
		// they came. Most sessions have none.
		attrs, _ = json.Marshal(s.Attrs)
	}
	return appendString(b, string(attrs))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	_, off := t.Zone()
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendUvarint(b, uint64(t.Nanosecond())) //nolint:gosec // G115: 0 to 1e9-1
	return binary.AppendVarint(b, int64(off))
}

// entryReader reads the fields of an entry in order; the first short or
// malformed field makes every later read fail too.
type entryReader struct {
	b   []byte
	err error
}

func (r *entryReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errFormat
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *entryReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errFormat
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *entryReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errFormat
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *entryReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errFormat
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// string is a view of the entry's bytes, not a copy: decodeEntry's
// buffer is the session's, and never written again.
func (r *entryReader) string() string {
	v := r.bytes()
	if len(v) == 0 {
		return ""
	}
	return unsafe.String(&v[0], len(v)) //nolint:gosec // G103: a read-only view of a buffer the decoded session owns and nobody writes
}

func (r *entryReader) strings() []string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errFormat
		return nil
	}
	if n == 0 {
		return nil
	}
	l := make([]string, n)
	for i := range l {
		l[i] = r.string()
	}
	return l
}

func (r *entryReader) time() time.Time {
	if r.byte() == 0 {
		return time.Time{}
	}
	sec := r.varint()
	nsec := r.uvarint()
	off := r.varint()
	if r.err != nil || nsec >= 1e9 || off < -86400 || off > 86400 {
		r.err = errFormat
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec))
	if off == 0 {
		return t.UTC()
	}
	return t.In(time.FixedZone("", int(off)))
}

// decodeEntry reads what appendEntry wrote. The session it returns
// keeps b: its strings and raw answer are views of it, so b must not
// change afterwards (one buffer, not a copy per field, for each L2 hit).
func decodeEntry(b []byte) (stored, error) {
	r := entryReader{b: b}
	st := stored{Fresh: r.varint(), Stale: r.varint(), Filled: r.varint(), Gen: r.varint()}
	flags := r.byte()
	if r.err != nil || flags&flagSession == 0 {
		if r.err == nil && len(r.b) != 0 {
			r.err = errFormat
		}
		return st, r.err
	}
	s := &sessionctx.Session{Admin: flags&flagAdmin != 0}
	for _, p := range [...]*string{&s.ID, &s.UserID, &s.User, &s.Email, &s.Name, &s.OrgID, &s.Org, &s.Kind, &s.Dialect} {
		*p = r.string()
	}
	s.Roles, s.Perms = r.strings(), r.strings()
	s.CreatedAt, s.LastAccessedAt, s.ExpiresAt = r.time(), r.time(), r.time()
	if raw := r.bytes(); len(raw) > 0 {
		s.Raw = raw
	}
	if attrs := r.bytes(); r.err == nil && len(attrs) > 0 {
		if err := json.Unmarshal(attrs, &s.Attrs); err != nil {
			r.err = errFormat
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errFormat
	}
	if r.err != nil {
		return stored{}, r.err
	}
	st.Session = s
	return st, nil
}
