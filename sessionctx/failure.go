package sessionctx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
)

// FailureKind is the kind of a session-service failure, for metrics and
// logs: what an operator does about each differs (start the service,
// raise the timeout, fix a certificate, read the service's logs). Its
// string is the value of sessiongate's "kind" and "limit" metric labels.
type FailureKind string

// The kinds of failure. An error that wraps ErrUnavailable has one of
// them (FailureKindOf); the limit kinds are lookups refused without a
// session-service call.
const (
	// FailureRefused: no connection (nothing listening, reset, closed
	// before an answer).
	FailureRefused FailureKind = "refused"
	// FailureTimeout: no answer within the timeout.
	FailureTimeout FailureKind = "timeout"
	// FailureTLS: the certificate or the handshake failed.
	FailureTLS FailureKind = "tls"
	// FailureStatus: an HTTP status that is neither a session nor a
	// rejection.
	FailureStatus FailureKind = "status"
	// FailureGarbage: an answer that is not what the dialect reads.
	FailureGarbage FailureKind = "garbage"
	// FailureTooLarge: an answer over Config.MaxBody.
	FailureTooLarge FailureKind = "too_large"
	// FailureLookupLimit: every Config.LookupLimit slot stayed taken for
	// as long as the timeout.
	FailureLookupLimit FailureKind = "lookup_limit"
	// FailureClientLimit: the client had started Config.ClientMissLimit
	// lookups in the window already. An HTTP server answers it with 429.
	FailureClientLimit FailureKind = "client_miss_limit"
	// FailureOther: anything else.
	FailureOther FailureKind = "other"
)

// unavailableError is an ErrUnavailable that says what kind of failure
// it was.
type unavailableError struct {
	Kind FailureKind
	msg  string
}

func (e *unavailableError) Error() string { return ErrUnavailable.Error() + ": " + e.msg }

// Unwrap makes errors.Is(err, ErrUnavailable) hold.
func (e *unavailableError) Unwrap() error { return ErrUnavailable }

func unavailable(kind FailureKind, format string, args ...any) error {
	return &unavailableError{Kind: kind, msg: fmt.Sprintf(format, args...)}
}

// FailureKindOf tells what kind of session-service failure err is. An
// ErrUnavailable without a kind comes from a dialect that could not read
// the answer: garbage. Anything else is other.
func FailureKindOf(err error) FailureKind {
	var ue *unavailableError
	switch {
	case errors.As(err, &ue):
		return ue.Kind
	case errors.Is(err, ErrUnavailable):
		return FailureGarbage
	}
	return FailureOther
}

// transportKind sorts an error from an HTTP round trip.
func transportKind(err error) FailureKind {
	var (
		ne       net.Error
		certErr  *tls.CertificateVerificationError
		authErr  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invalid  x509.CertificateInvalidError
		recHdErr tls.RecordHeaderError
		alert    tls.AlertError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return FailureTimeout
	case errors.As(err, &certErr), errors.As(err, &authErr), errors.As(err, &hostErr),
		errors.As(err, &invalid), errors.As(err, &recHdErr), errors.As(err, &alert):
		return FailureTLS
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, new(*net.OpError)):
		return FailureRefused
	}
	return FailureOther
}
