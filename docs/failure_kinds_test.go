package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestFailureKindsDocumented: the values of the kind and limit labels that
// docs/operations.md lists for the service-error and refused-lookup
// metrics are, together and once each, the FailureKind constants of
// package sessionctx, which the plugin uses as those labels.
func TestFailureKindsDocumented(t *testing.T) {
	kinds := failureKinds(t)
	if len(kinds) == 0 {
		t.Fatal("no FailureKind constants in sessionctx")
	}
	ops := read(t, "docs/operations.md")
	var documented []string
	for metric, label := range map[string]string{
		"caddy_sessiongate_service_errors_total":  "kind",
		"caddy_sessiongate_lookups_refused_total": "limit",
	} {
		m := regexp.MustCompile("(?m)^\\| `" + metric + "` \\| [^|]*`" + label + "`: ([a-z_, ]+) \\|").FindStringSubmatch(ops)
		if m == nil {
			t.Errorf("docs/operations.md lists no %s values for %s", label, metric)
			continue
		}
		for _, v := range strings.Split(m[1], ",") {
			documented = append(documented, strings.TrimSpace(v))
		}
	}
	slices.Sort(documented)
	slices.Sort(kinds)
	if !slices.Equal(documented, kinds) {
		t.Errorf("docs/operations.md lists the label values %v; sessionctx's FailureKinds are %v", documented, kinds)
	}
}

// failureKinds returns the values of sessionctx's FailureKind constants.
func failureKinds(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "sessionctx", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			d, ok := decl.(*ast.GenDecl)
			if !ok || d.Tok != token.CONST {
				continue
			}
			for _, spec := range d.Specs {
				vs := spec.(*ast.ValueSpec)
				if typ, ok := vs.Type.(*ast.Ident); !ok || typ.Name != "FailureKind" {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: a FailureKind that is not a string literal", file)
					}
					s, _ := strconv.Unquote(lit.Value)
					kinds = append(kinds, s)
				}
			}
		}
	}
	return kinds
}
