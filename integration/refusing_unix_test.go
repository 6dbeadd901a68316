//go:build unix

package integration

import (
	"fmt"
	"syscall"
	"testing"
)

// refusingURL is the URL of a loopback port that refuses every
// connection for the whole test: a socket bound to it that never
// listens. A closed server's port refuses too, but only until something
// else listens on it, and the packages' tests run side by side, each
// opening ports of its own.
func refusingURL(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
