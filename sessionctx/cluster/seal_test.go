package cluster

import (
	"bytes"
	"strings"
	"testing"
)

const testSecret = "0123456789abcdef0123456789abcdef"

func TestSealRoundTrip(t *testing.T) {
	s, err := newSealer(testSecret, DefaultKeyPrefix, "b1")
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"user":"alice"}`)
	sealed := s.seal("k1", plain)
	if bytes.Contains(sealed, []byte("alice")) {
		t.Fatal("sealed entry holds the plain text")
	}
	got, err := s.open("k1", sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open = %q, %v; want %q", got, err, plain)
	}
}

func TestSealRejects(t *testing.T) {
	s, _ := newSealer(testSecret, DefaultKeyPrefix, "b1")
	other, _ := newSealer(strings.Repeat("x", 32), DefaultKeyPrefix, "b1")
	sealed := s.seal("k1", []byte("session"))
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, tc := range map[string]struct {
		s     *sealer
		key   string
		value []byte
	}{
		"tampered":     {s, "k1", tampered},
		"swapped key":  {s, "k2", sealed},
		"wrong secret": {other, "k1", sealed},
		"truncated":    {s, "k1", sealed[:10]},
		"empty":        {s, "k1", nil},
	} {
		if _, err := tc.s.open(tc.key, tc.value); err == nil {
			t.Errorf("%s: entry opened", name)
		}
	}
}

func TestSecretTooShort(t *testing.T) {
	if _, err := newSealer(testSecret[:31], DefaultKeyPrefix, "b1"); err == nil {
		t.Fatal("31-byte secret accepted")
	}
}

func TestKeyNames(t *testing.T) {
	s, _ := newSealer(testSecret, DefaultKeyPrefix, "b1")
	other, _ := newSealer(strings.Repeat("x", 32), DefaultKeyPrefix, "b1")
	key := []byte("token hash")
	again, _ := newSealer(testSecret, DefaultKeyPrefix, "b1")
	if s.name(key) != again.name(key) {
		t.Fatal("two nodes with one secret name a key differently")
	}
	if s.name(key) == other.name(key) {
		t.Fatal("two secrets name a key alike")
	}
	if strings.Contains(s.name(key), "token") {
		t.Fatal("name shows the key")
	}
}

// Sealed values are XChaCha20-Poly1305 with a random 192-bit nonce, after
// a version byte; values of another format do not open.
func TestSealFormat(t *testing.T) {
	s, _ := newSealer(testSecret, DefaultKeyPrefix, "b1")
	plain := []byte("session")
	a, b := s.seal("k", plain), s.seal("k", plain)
	if len(a) != 1+24+len(plain)+16 || a[0] != sealVersion {
		t.Fatalf("sealed value of %d bytes, version %d", len(a), a[0])
	}
	if bytes.Equal(a[1:25], b[1:25]) {
		t.Fatal("two seals share a nonce")
	}
	old := bytes.Clone(a)
	old[0] = 1
	if _, err := s.open("k", old); err == nil {
		t.Fatal("a value of another format opened")
	}
}

// A pooled keyed hash names a key as a fresh one does, from any
// goroutine.
func TestKeyNamesPooled(t *testing.T) {
	s, _ := newSealer(testSecret, DefaultKeyPrefix, "b1")
	want := s.name([]byte("a"))
	done := make(chan string, 8)
	for range 8 {
		go func() {
			for range 100 {
				s.name([]byte("b"))
			}
			done <- s.name([]byte("a"))
		}()
	}
	for range 8 {
		if got := <-done; got != want {
			t.Fatalf("name = %s, want %s", got, want)
		}
	}
}
