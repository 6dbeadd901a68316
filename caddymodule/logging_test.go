package caddymodule

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// TestLogHashKeyed: token_hash is keyed, so it is not the plain key prefix
// anyone can compute from a guessed token, and two keys give two hashes.
func TestLogHashKeyed(t *testing.T) {
	k := sessionctx.TokenSource{From: sessionctx.FromBearer}.Key("password1")
	a, b := logHash([]byte("key-a-0123456789"), k), logHash([]byte("key-b-0123456789"), k)
	plain := hex.EncodeToString(k[:])
	if a == b || strings.HasPrefix(plain, a) || strings.HasPrefix(plain, logHash(processLogHashKey, k)) {
		t.Errorf("token_hash is not keyed: %s %s %s", a, b, plain)
	}
	if len(a) != 16 || a != logHash([]byte("key-a-0123456789"), k) {
		t.Errorf("token_hash %q: want 16 hex digits, stable for one key", a)
	}
}
