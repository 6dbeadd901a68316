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

// Kinds of session-service failure, for metrics and logs: what an
// operator does about each differs (start the service, raise the timeout,
// fix a certificate, read the service's logs).
const (
	failRefused  = "refused"   // no connection: nothing listening, reset, closed before an answer
	failTimeout  = "timeout"   // no answer within the timeout
	failTLS      = "tls"       // the certificate or the handshake failed
	failStatus   = "status"    // an HTTP status that is neither a session nor a rejection
	failGarbage  = "garbage"   // an answer that is not what the dialect reads
	failTooLarge = "too_large" // an answer over the size cap
	failOther    = "other"
	// And, for a lookup refused without a call: failLookupLimit and
	// failClientLimit (limit.go).
)

// unavailableError is an ErrUnavailable that says what kind of failure
// it was.
type unavailableError struct {
	Kind string
	msg  string
}

func (e *unavailableError) Error() string { return ErrUnavailable.Error() + ": " + e.msg }

// Unwrap makes errors.Is(err, ErrUnavailable) hold.
func (e *unavailableError) Unwrap() error { return ErrUnavailable }

func unavailable(kind, format string, args ...any) error {
	return &unavailableError{Kind: kind, msg: fmt.Sprintf(format, args...)}
}

// FailureKind tells what kind of session-service failure err is. An
// ErrUnavailable without a kind comes from a dialect that could not read
// the answer: garbage. Anything else is other.
func FailureKind(err error) string {
	var ue *unavailableError
	switch {
	case errors.As(err, &ue):
		return ue.Kind
	case errors.Is(err, ErrUnavailable):
		return failGarbage
	}
	return failOther
}

// transportKind sorts an error from an HTTP round trip.
func transportKind(err error) string {
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
		return failTimeout
	case errors.As(err, &certErr), errors.As(err, &authErr), errors.As(err, &hostErr),
		errors.As(err, &invalid), errors.As(err, &recHdErr), errors.As(err, &alert):
		return failTLS
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, new(*net.OpError)):
		return failRefused
	}
	return failOther
}
