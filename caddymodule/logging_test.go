package caddymodule

import (
	"testing"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// TestLogHashKeyed: token_hash is keyed, so it is not the plain key prefix
// anyone can compute from a guessed token, and two keys give two hashes.
func TestLogHashKeyed(t *testing.T) {
	k := sessionctx.TokenSource{From: sessionctx.FromBearer}.Key("password1")
	a, b := logHash([]byte("key-a-0123456789"), k), logHash([]byte("key-b-0123456789"), k)
	if a == b || a == k.Short() || logHash(processLogHashKey, k) == k.Short() {
		t.Errorf("token_hash is not keyed: %s %s %s", a, b, k.Short())
	}
	if len(a) != 16 || a != logHash([]byte("key-a-0123456789"), k) {
		t.Errorf("token_hash %q: want 16 hex digits, stable for one key", a)
	}
}
