package sessionctx

import (
	"errors"
	"fmt"
)

// productRejection is a rejection that the product's own clients must
// see as the product gave it, on their own session read: an Amplify
// session that awaits device authorization answers findSession 400 with
// internalCode 232, which the SDK takes as its cue to ask for it, where
// "no session" would send it elsewhere.
type productRejection struct {
	dialect string
	msg     string
	answer  InfoAnswer
	// transient marks a state the session leaves on its own (device
	// authorization granted): not cached, so that the next request sees
	// the session as soon as the service does.
	transient bool
}

func (e *productRejection) Error() string { return ErrUnauthenticated.Error() + ": " + e.msg }

// Unwrap makes errors.Is(err, ErrUnauthenticated) hold.
func (e *productRejection) Unwrap() error { return ErrUnauthenticated }

func rejectWithAnswer(dialect string, transient bool, answer InfoAnswer, format string, args ...any) error {
	return &productRejection{dialect: dialect, msg: fmt.Sprintf(format, args...), answer: answer, transient: transient}
}

// rejectionAnswer returns the product's own answer that err carries for
// a session read in shape, to give in place of shape's "no session"
// answer; ok is false when err carries none for shape.
func rejectionAnswer(shape string, err error) (answer InfoAnswer, ok bool) {
	var pr *productRejection
	if err == nil || !errors.As(err, &pr) || pr.dialect != shape {
		return InfoAnswer{}, false
	}
	return InfoAnswer{Status: pr.answer.Status, Body: append([]byte(nil), pr.answer.Body...)}, true
}

// transientRejection reports whether err is a rejection of a state the
// session leaves on its own, which is not cached.
func transientRejection(err error) bool {
	var pr *productRejection
	return errors.As(err, &pr) && pr.transient
}
