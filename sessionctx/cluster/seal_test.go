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
