package caddymodule

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

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

// tokenHash names a token in a log line without revealing it.
func (h *SessionAuth) tokenHash(key sessionctx.Key) string { return logHash(h.hashKey, key) }

// logRequest counts a request's outcome and writes its debug line: one
// line for every request that reaches session_auth, whatever the outcome.
func (h *SessionAuth) logRequest(key sessionctx.Key, s *sessionctx.Session, outcome string, hit bool, more ...zap.Field) {
	h.observe(key, outcome, hit)
	ce := h.logger.Check(zapcore.DebugLevel, "session")
	if ce == nil {
		return
	}
	fields := append([]zap.Field{zap.String("outcome", outcome), zap.Bool("cache_hit", hit)}, more...)
	if key != (sessionctx.Key{}) {
		fields = append(fields, zap.String("token_hash", h.tokenHash(key)))
	}
	if s != nil {
		fields = append(fields, zap.String("user", s.User))
	}
	ce.Write(fields...)
}

// warnInterval rate-limits session-service warnings, so an outage under
// load is a line every few seconds, not one per request.
const warnInterval = 5 * time.Second

func (h *SessionAuth) warnUnavailable(key sessionctx.Key, err error) {
	h.logRequest(key, nil, "service_error", false, zap.Error(err))
	h.outage.Store(true)
	h.warn.Do(func() {
		if ce := h.logger.Check(zapcore.WarnLevel, "session service unavailable"); ce != nil {
			ce.Write(zap.String("dialect", h.dialect), zap.String("token_hash", h.tokenHash(key)), zap.Error(err))
		}
	})
}

// serviceBack logs, once per outage, that the session service answers
// again (a session or a rejection, not a stale serve).
func (h *SessionAuth) serviceBack() {
	if !h.outage.CompareAndSwap(true, false) {
		return
	}
	if ce := h.logger.Check(zapcore.InfoLevel, "session service answering again"); ce != nil {
		ce.Write(zap.String("dialect", h.dialect))
	}
}

// logMissingPaths notes, at debug level, the mapped paths a fresh answer
// did not hold: their fields are empty, never filled from elsewhere.
func (h *SessionAuth) logMissingPaths(key sessionctx.Key, s *sessionctx.Session) {
	if ce := h.logger.Check(zapcore.DebugLevel, "session answer lacks mapped paths"); ce != nil {
		ce.Write(zap.String("token_hash", h.tokenHash(key)), zap.Strings("missing", s.MissingPaths))
	}
}
