// Package cluster is a sessionctx.Tier on Redis: the nodes of a cluster
// share their resolved sessions and rejections, and their revocations.
package cluster

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// MinSecretLen is the shortest secret accepted: 32 bytes, the size of the
// sealing key, so that the secret is not the weak point of the sealing.
const MinSecretLen = 32

// sealVersion starts every sealed value. Values of another format (an
// older release's) do not open; as their key names differ too, a node
// never even reads them: they are misses. Version 3 is the binary entry
// (entry.go); version 2 held JSON.
const sealVersion = 3

// oldSealVersion is the previous release's: its generation is read as
// none rather than counted as tampering, so an upgrade raises no alarm.
const oldSealVersion = 2

// errOpen is what every failed open returns; why it failed (tampered,
// moved to another key, another secret) is not told apart on purpose.
var errOpen = errors.New("sealed entry does not open")

// sealer seals values (XChaCha20-Poly1305 with a random 192-bit nonce,
// which has no practical limit on the number of values one key seals;
// the Redis key or channel as additional data, so a value copied to
// another key does not open) and names keys (HMAC of the token's hash,
// the key prefix and the backend, so Redis holds neither a token nor a
// name that links one token's use on two backends).
type sealer struct {
	aead  cipher.AEAD
	scope []byte // key prefix and backend, mixed into every name
	// macs holds keyed HMAC states: keying one costs two SHA-256 blocks,
	// and naming a key is on every L2 read.
	macs sync.Pool
}

func newSealer(secret, keyPrefix, backend string) (*sealer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("cluster secret is %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	sealKey, err := hkdf.Key(sha256.New, []byte(secret), nil, "sessiongate cluster seal v2", chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("deriving seal key: %w", err)
	}
	macKey, err := hkdf.Key(sha256.New, []byte(secret), nil, "sessiongate cluster key names v3", 32)
	if err != nil {
		return nil, fmt.Errorf("deriving key-name key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(sealKey)
	if err != nil {
		return nil, fmt.Errorf("seal cipher: %w", err)
	}
	var scope []byte
	for _, s := range []string{keyPrefix, backend} {
		scope = binary.BigEndian.AppendUint32(scope, uint32(len(s))) //nolint:gosec // G115: a config string, far below 4 GiB
		scope = append(scope, s...)
	}
	s := &sealer{aead: aead, scope: scope}
	s.macs.New = func() any { return &keyedMAC{h: hmac.New(sha256.New, macKey)} }
	return s, nil
}

// name is the hex HMAC of a cache key within the sealer's key prefix and
// backend: stable across nodes with the same secret and backend,
// unlinkable to the token, or across backends, without it.
func (s *sealer) name(key []byte) string {
	var out [nameLen]byte
	return string(s.appendName(out[:0], key))
}

// nameLen is the length of a name: 160 bits of the HMAC, in hex.
const nameLen = 40

// appendName appends the name of key to b.
func (s *sealer) appendName(b, key []byte) []byte {
	m := s.macs.Get().(*keyedMAC)
	m.h.Reset()
	m.h.Write(s.scope)
	m.h.Write(key)
	sum := m.h.Sum(m.sum[:0])
	b = hex.AppendEncode(b, sum[:nameLen/2])
	s.macs.Put(m)
	return b
}

// keyedMAC is a keyed HMAC state with room for its sum, so that naming
// a key allocates nothing.
type keyedMAC struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

func (s *sealer) seal(redisKey string, plain []byte) []byte {
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(nonce)
	out := make([]byte, 0, sealedOverhead+len(plain))
	out = append(append(out, sealVersion), nonce...)
	return s.aead.Seal(out, nonce, plain, []byte(redisKey))
}

// sealedOverhead is what sealing adds to a value's length.
const sealedOverhead = 1 + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

// open returns the plain text of a sealed value, in a new buffer.
func (s *sealer) open(redisKey string, sealed []byte) ([]byte, error) {
	if len(sealed) < sealedOverhead || sealed[0] != sealVersion {
		return nil, errOpen
	}
	n := 1 + s.aead.NonceSize()
	plain, err := s.aead.Open(nil, sealed[1:n], sealed[n:], []byte(redisKey))
	if err != nil {
		return nil, errOpen
	}
	return plain, nil
}

// openString is open for a value read as a string (a Redis reply or
// message): the value is copied once and opened in place, so the plain
// text costs no second buffer.
func (s *sealer) openString(redisKey, sealed string) ([]byte, error) {
	if len(sealed) < sealedOverhead || sealed[0] != sealVersion {
		return nil, errOpen
	}
	b := []byte(sealed)
	n := 1 + s.aead.NonceSize()
	plain, err := s.aead.Open(b[n:n], b[1:n], b[n:], []byte(redisKey))
	if err != nil {
		return nil, errOpen
	}
	return plain, nil
}
