// Package headername is how sessiongate compares header names: the way
// the loosest upstream reads them. Both the stripping of forged identity
// headers (caddymodule) and of tokens (sessionctx) use it, so the two can
// never disagree on what counts as the same name.
package headername

// Fold folds a header name's byte the way the loosest upstream reads it:
// case is ignored, and every byte that is not a letter or digit ('-', '_',
// '.', '~'...) is one separator, since CGI, PHP, nginx with
// underscores_in_headers and WSGI merge them all into '_'. Matching names
// through it catches every spelling an upstream could take for the name.
func Fold(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + ('a' - 'A')
	case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return c
	}
	return '-'
}

// Same reports whether a and b are the same name once folded.
func Same(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if Fold(a[i]) != Fold(b[i]) {
			return false
		}
	}
	return true
}
