//go:build !unix

package integration

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// refusingURL is the URL of a closed server: it refuses connections
// until something else listens on its port.
func refusingURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}
