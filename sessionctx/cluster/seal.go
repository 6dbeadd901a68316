// Package cluster is a sessionctx.Tier on Redis: the nodes of a cluster
// share their resolved sessions and rejections, and their revocations.
package cluster

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// MinSecretLen is the shortest secret accepted: 32 bytes, the AES-256 key
// size, so that the secret is not the weak point of the sealing.
const MinSecretLen = 32

// errOpen is what every failed open returns; why it failed (tampered,
// moved to another key, another secret) is not told apart on purpose.
var errOpen = errors.New("sealed entry does not open")

// sealer seals entries (AES-256-GCM, the Redis key as additional data, so
// an entry copied to another key does not open) and names keys (HMAC of
// the token's hash, so Redis never holds a token or its plain hash).
type sealer struct {
	aead   cipher.AEAD
	keyMAC []byte
}

func newSealer(secret string) (*sealer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("cluster secret is %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	sealKey, err := hkdf.Key(sha256.New, []byte(secret), nil, "sessiongate cluster seal v1", 32)
	if err != nil {
		return nil, fmt.Errorf("deriving seal key: %w", err)
	}
	macKey, err := hkdf.Key(sha256.New, []byte(secret), nil, "sessiongate cluster key names v1", 32)
	if err != nil {
		return nil, fmt.Errorf("deriving key-name key: %w", err)
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, fmt.Errorf("seal cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal cipher: %w", err)
	}
	return &sealer{aead: aead, keyMAC: macKey}, nil
}

// name is the hex HMAC of a cache key: stable across nodes with the same
// secret, unlinkable to the token without it.
func (s *sealer) name(key []byte) string {
	m := hmac.New(sha256.New, s.keyMAC)
	m.Write(key)
	return hex.EncodeToString(m.Sum(nil)[:20])
}

func (s *sealer) seal(redisKey string, plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, []byte(redisKey))
}

func (s *sealer) open(redisKey string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, errOpen
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(redisKey))
	if err != nil {
		return nil, errOpen
	}
	return plain, nil
}
