package caddymodule

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// minLogHashKey is the shortest log_hash_key accepted: a key short enough
// to guess would make token_hash an unkeyed hash again.
const minLogHashKey = 16

// processLogHashKey keys token_hash when no log_hash_key is configured.
// Random per process: the hash of a weak token cannot be looked up in a
// table made in advance, and lines from two servers (or two runs) cannot
// be linked to one token, which a plain hash of the token allowed.
var processLogHashKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails (crypto/rand panics rather)
	return k
}()

// logHash is the token_hash of log lines: HMAC-SHA256 of the cache key,
// cut to 64 bits, enough to follow one token through a log and nothing to
// recover or test a guess of it without the key.
func logHash(key []byte, k sessionctx.Key) string {
	m := hmac.New(sha256.New, key)
	m.Write(k[:])
	return hex.EncodeToString(m.Sum(nil)[:8])
}
