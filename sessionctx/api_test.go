package sessionctx

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"sort"
	"strings"
	"testing"
)

// maxExported bounds the package's API: a Go user reads it whole, and
// plumbing that leaks into it is plumbing others come to depend on.
const maxExported = 34

// TestAPISmall: the package exports at most maxExported top-level names,
// each with a doc comment (its own, or its group's for constants). A
// constant of one of the package's own types (a FailureKind) is one of
// that type's values, listed under it as go doc lists it, not a name of
// its own: it is counted with its type.
func TestAPISmall(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), e.Name(), nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	types := map[string]bool{}
	for _, f := range files {
		for _, decl := range f.Decls {
			if d, ok := decl.(*ast.GenDecl); ok && d.Tok == token.TYPE {
				for _, spec := range d.Specs {
					types[spec.(*ast.TypeSpec).Name.Name] = true
				}
			}
		}
	}
	var names, values []string
	for _, f := range files {
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.IsExported() {
					names = append(names, d.Name.Name)
					if d.Doc == nil {
						t.Errorf("%s has no doc comment", d.Name.Name)
					}
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					var idents []*ast.Ident
					var doc *ast.CommentGroup
					typed := false
					switch s := spec.(type) {
					case *ast.TypeSpec:
						idents, doc = []*ast.Ident{s.Name}, s.Doc
					case *ast.ValueSpec:
						idents, doc = s.Names, s.Doc
						typ, ok := s.Type.(*ast.Ident)
						typed = d.Tok == token.CONST && ok && types[typ.Name] && typ.IsExported()
					}
					for _, id := range idents {
						if !id.IsExported() {
							continue
						}
						if typed {
							values = append(values, id.Name)
						} else {
							names = append(names, id.Name)
						}
						if doc == nil && d.Doc == nil {
							t.Errorf("%s has no doc comment", id.Name)
						}
					}
				}
			}
		}
	}
	sort.Strings(names)
	if len(names) > maxExported {
		t.Errorf("%d exported names, want at most %d: %s", len(names), maxExported, strings.Join(names, " "))
	}
	t.Logf("%d exported names: %s", len(names), strings.Join(names, " "))
	t.Logf("and %d values of them: %s", len(values), strings.Join(values, " "))
}
