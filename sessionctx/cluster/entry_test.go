package cluster

import (
	"reflect"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// The binary entry gives back every field a node serves and renders.
func TestEntryRoundTrip(t *testing.T) {
	now := time.Now()
	full := &sessionctx.Session{
		ID: "s1", UserID: "u1", User: "alice", Email: "a@example.com", Name: "Alice", OrgID: "o1", Org: "Org",
		Roles: []string{"a", "b"}, Perms: []string{"p"}, Admin: true, Kind: "user",
		CreatedAt:      time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		LastAccessedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 7200)),
		ExpiresAt:      time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		Attrs:          map[string]any{"tier": "gold", "n": float64(3), "l": []any{"x"}},
		Dialect:        "http", Raw: []byte(`{"u":"alice"}`),
	}
	for name, s := range map[string]*sessionctx.Session{"full": full, "empty": {}, "rejection": nil} {
		st := stored{Session: s, Fresh: now.UnixNano(), Stale: now.UnixNano() + 1, Filled: now.UnixNano() - 1, Gen: 42}
		got, err := decodeEntry(appendEntry(nil, &st))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Fresh != st.Fresh || got.Stale != st.Stale || got.Filled != st.Filled || got.Gen != 42 {
			t.Fatalf("%s: times %+v, want %+v", name, got, st)
		}
		if s == nil {
			if got.Session != nil {
				t.Fatalf("%s: a rejection came back as a session", name)
			}
			continue
		}
		for _, p := range []*time.Time{&got.Session.CreatedAt, &got.Session.LastAccessedAt, &got.Session.ExpiresAt} {
			if !p.IsZero() {
				*p = p.Round(0)
			}
		}
		if !reflect.DeepEqual(got.Session, s) {
			t.Fatalf("%s: got %+v\nwant %+v", name, got.Session, s)
		}
		if _, off := got.Session.LastAccessedAt.Zone(); s == full && off != 7200 {
			t.Fatalf("zone offset lost: %d", off)
		}
	}
}

// An entry cut short or with bytes past its end is refused, never a
// panic, never a session.
func TestEntryTruncated(t *testing.T) {
	st := stored{Session: &sessionctx.Session{User: "alice", Roles: []string{"a"}, Raw: []byte("x")}, Fresh: 1, Stale: 2, Filled: 3, Gen: 4}
	b := appendEntry(nil, &st)
	for i := range len(b) {
		if got, err := decodeEntry(b[:i]); err == nil && got.Session != nil {
			t.Fatalf("%d of %d bytes decoded to a session", i, len(b))
		}
	}
	if _, err := decodeEntry(append(b, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	huge := append(appendEntry(nil, &stored{}), 0)
	huge[len(huge)-2] = flagSession
	huge = append(huge[:len(huge)-1], 0xff, 0xff, 0xff, 0xff, 0x0f)
	if _, err := decodeEntry(huge); err == nil {
		t.Fatal("a length past the end accepted")
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(appendEntry(nil, &stored{Session: &sessionctx.Session{User: "alice"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeEntry(b)
		if err != nil {
			return
		}
		again, err := decodeEntry(appendEntry(nil, &st))
		if err != nil || (st.Session == nil) != (again.Session == nil) {
			t.Fatalf("re-encoding failed: %v", err)
		}
	})
}
