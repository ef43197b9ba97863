// Package archtest enforces the "Rules" of ARCHITECTURE.md on a source tree:
//
//   - a domain module imports another module's root package only (in test files also the
//     other module's fakes, internal/<m>/<m>test), and module dependencies form a DAG;
//   - internal/platform never imports a domain module;
//   - no grab-bag packages (util, common, models, helpers, misc);
//   - every table a module creates is prefixed with the module's name (platform_ for the
//     platform), and SQL text in a module names only its own tables — never another
//     module's, and never the platform's (those are written through internal/platform/...);
//   - a module that uses internal/platform/sqldb scopes the cluster to itself somewhere in
//     its non-test code (a call `.For("<module>")`, see sqldb.Cluster.For), so no other
//     module's call can join its transactions.
//
// A domain module is any directory directly under internal/ except platform, app (the
// composition root, which wires everything) and archtest, so new modules are covered without
// editing this package.
//
// The checker works from files parsed with go/parser rather than `go list`: the same code then
// checks the real repository and the deliberately broken trees under testdata/ (which the go
// command ignores), and every file counts whatever its build constraints — a forbidden import
// behind a build tag is still forbidden.
package archtest

import (
	"bufio"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Rule names, as reported in Violation.Rule.
const (
	RuleModuleImport   = "module-import"   // a module imports another module's sub-package
	RuleModuleCycle    = "module-cycle"    // module dependencies are not a DAG
	RulePlatformImport = "platform-import" // internal/platform imports a domain module
	RulePackageName    = "package-name"    // util, common, models, ...
	RuleTablePrefix    = "table-prefix"    // CREATE TABLE without the owner's prefix
	RuleTableReference = "table-reference" // SQL naming a table the file's owner does not own
	RuleTxScope        = "tx-scope"        // a module uses sqldb without scoping the cluster to itself
)

// Violation is one broken rule at a position. File is slash-separated and relative to the
// checked root.
type Violation struct {
	Rule string
	File string
	Line int
	Msg  string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s:%d: [%s] %s", v.File, v.Line, v.Rule, v.Msg)
}

const platform = "platform"

// nonModules are the directories under internal/ that are not domain modules.
var nonModules = map[string]bool{platform: true, "app": true, "archtest": true}

var bannedPackageNames = map[string]bool{
	"util": true, "utils": true, "common": true, "models": true,
	"helper": true, "helpers": true, "misc": true,
}

var (
	// CREATE TABLE [IF NOT EXISTS] `name`
	createTableRE = regexp.MustCompile("(?i)\\bCREATE\\s+(?:TEMPORARY\\s+)?TABLE\\s+(?:IF\\s+NOT\\s+EXISTS\\s+)?`?([A-Za-z_][A-Za-z0-9_]*)")
	// A table named after FROM, JOIN, INTO, UPDATE, REFERENCES or TABLE (CREATE/ALTER/DROP ...).
	tableRefRE     = regexp.MustCompile("(?i)\\b(?:FROM|JOIN|INTO|UPDATE|REFERENCES|TABLE(?:\\s+IF\\s+(?:NOT\\s+)?EXISTS)?)\\s+`?([A-Za-z_][A-Za-z0-9_]*)")
	sqlLineComment = regexp.MustCompile(`--[^\n]*`)
)

// Check walks the Go module rooted at root (it must hold go.mod) and returns every violation,
// sorted by file and line. An error means the tree could not be read or parsed.
func Check(root string) ([]Violation, error) {
	modPath, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	c := &checker{
		root:    root,
		modPath: modPath,
		modules: map[string]bool{},
		fset:    token.NewFileSet(),
		edges:   map[string]map[string]edge{},
		sqldbAt: map[string]edge{},
		scoped:  map[string]bool{},
	}
	if err := c.findModules(); err != nil {
		return nil, err
	}
	if err := c.walk(); err != nil {
		return nil, err
	}
	c.checkCycles()
	c.checkTxScopes()
	sort.Slice(c.out, func(i, j int) bool {
		a, b := c.out[i], c.out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Msg < b.Msg
	})
	return c.out, nil
}

type edge struct { // first non-test import from one module to another
	file string
	line int
}

type checker struct {
	root    string
	modPath string
	modules map[string]bool
	fset    *token.FileSet
	edges   map[string]map[string]edge
	pkgSeen map[string]bool // directories already checked for their package name
	sqldbAt map[string]edge // a module's first non-test import of internal/platform/sqldb
	scoped  map[string]bool // modules calling .For("<module>")
	out     []Violation
}

func (c *checker) report(rule, file string, line int, format string, args ...any) {
	c.out = append(c.out, Violation{Rule: rule, File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func modulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", fmt.Errorf("archtest: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	if err := s.Err(); err != nil {
		return "", fmt.Errorf("archtest: %s: %w", gomod, err)
	}
	return "", fmt.Errorf("archtest: %s: no module line", gomod)
}

func (c *checker) findModules() error {
	entries, err := os.ReadDir(filepath.Join(c.root, "internal"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("archtest: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() && !nonModules[n] && !skipDir(n) {
			c.modules[n] = true
		}
	}
	return nil
}

func skipDir(name string) bool {
	return name == "testdata" || name == "vendor" || name == "node_modules" ||
		strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

func (c *checker) walk() error {
	c.pkgSeen = map[string]bool{}
	return filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(c.root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (skipDir(d.Name()) || rel == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(rel, ".go"):
			return c.checkGo(p, rel)
		case strings.HasSuffix(rel, ".sql"):
			return c.checkSQLFile(p, rel)
		}
		return nil
	})
}

// owner is the module (or "platform") a file under internal/ belongs to, "" otherwise.
func (c *checker) owner(rel string) string {
	parts := strings.Split(rel, "/")
	if len(parts) < 3 || parts[0] != "internal" {
		return ""
	}
	if parts[1] == platform || c.modules[parts[1]] {
		return parts[1]
	}
	return ""
}

func (c *checker) checkGo(abs, rel string) error {
	f, err := parser.ParseFile(c.fset, abs, nil, parser.SkipObjectResolution)
	if err != nil {
		return fmt.Errorf("archtest: %w", err)
	}
	isTest := strings.HasSuffix(rel, "_test.go")
	dir := path.Dir(rel)

	if !c.pkgSeen[dir] {
		c.pkgSeen[dir] = true
		name := strings.TrimSuffix(f.Name.Name, "_test")
		if bannedPackageNames[name] || bannedPackageNames[path.Base(dir)] {
			c.report(RulePackageName, rel, c.line(f.Name.Pos()),
				"package %s (%s): name packages after what they provide, not util/common/models/helpers/misc", f.Name.Name, dir)
		}
	}

	owner := c.owner(rel)
	if owner == "" {
		return nil
	}
	for _, imp := range f.Imports {
		ip, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			continue
		}
		rest, ok := strings.CutPrefix(ip, c.modPath+"/internal/")
		if !ok {
			continue
		}
		if rest == platform+"/sqldb" && owner != platform && !isTest {
			if _, seen := c.sqldbAt[owner]; !seen {
				c.sqldbAt[owner] = edge{file: rel, line: c.line(imp.Pos())}
			}
		}
		target, _, _ := strings.Cut(rest, "/")
		if !c.modules[target] || target == owner {
			continue
		}
		line := c.line(imp.Pos())
		if owner == platform {
			c.report(RulePlatformImport, rel, line,
				"internal/platform imports domain module %q (%s); platform is infrastructure only", target, ip)
			continue
		}
		allowed := rest == target || (isTest && rest == target+"/"+target+"test")
		if !allowed {
			c.report(RuleModuleImport, rel, line,
				"module %s imports %s: use module %s's root package (its interface, types, events) only", owner, ip, target)
		}
		if !isTest {
			if c.edges[owner] == nil {
				c.edges[owner] = map[string]edge{}
			}
			if _, seen := c.edges[owner][target]; !seen {
				c.edges[owner][target] = edge{file: rel, line: line}
			}
		}
	}
	if !isTest { // tests may set up and inspect state freely; production SQL may not
		c.checkGoSQL(f, rel, owner)
		if owner != platform && !c.scoped[owner] {
			c.scoped[owner] = scopesCluster(f, owner)
		}
	}
	return nil
}

// scopesCluster reports whether f calls X.For("<module>").
func scopesCluster(f *ast.File, module string) bool {
	found := false
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || found || len(call.Args) != 1 {
			return !found
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		lit, isLit := call.Args[0].(*ast.BasicLit)
		if ok && isLit && sel.Sel.Name == "For" && lit.Kind == token.STRING {
			found = lit.Value == strconv.Quote(module)
		}
		return !found
	})
	return found
}

// checkTxScopes reports modules that use sqldb without scoping the cluster to themselves.
func (c *checker) checkTxScopes() {
	for m, at := range c.sqldbAt {
		if !c.scoped[m] {
			c.report(RuleTxScope, at.file, at.line,
				"module %s uses sqldb but never scopes the cluster to itself (decorate it with c.For(%q), and scope p.DB in New)", m, m)
		}
	}
}

// checkGoSQL looks at every string literal (and every concatenation of literals) as SQL text.
func (c *checker) checkGoSQL(f *ast.File, rel, owner string) {
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BinaryExpr:
			if s, ok := concat(n); ok {
				c.checkRefs(s, rel, c.line(n.Pos()), false, owner, nil)
				return false
			}
		case *ast.BasicLit:
			if n.Kind != token.STRING {
				return false
			}
			s, err := strconv.Unquote(n.Value)
			if err != nil {
				return false
			}
			raw := strings.HasPrefix(n.Value, "`") // raw strings keep their line breaks
			c.checkRefs(s, rel, c.line(n.Pos()), raw, owner, nil)
		}
		return true
	})
}

// concat evaluates a + b + ... made only of string literals.
func concat(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.ParenExpr:
		return concat(e.X)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		l, ok := concat(e.X)
		if !ok {
			return "", false
		}
		r, ok := concat(e.Y)
		return l + r, ok
	}
	return "", false
}

// checkRefs reports tables in sql that belong to another module, or to the platform when the
// owner is a module. When countLines is set, line numbers advance with the text's newlines.
// skip holds byte offsets of names already reported (CREATE TABLE names in migrations).
func (c *checker) checkRefs(sql, rel string, line int, countLines bool, owner string, skip map[int]bool) {
	for _, m := range tableRefRE.FindAllStringSubmatchIndex(sql, -1) {
		if skip[m[2]] {
			continue
		}
		table := strings.ToLower(sql[m[2]:m[3]])
		prefix, _, ok := strings.Cut(table, "_")
		if !ok || prefix == owner {
			continue
		}
		l := line
		if countLines {
			l += strings.Count(sql[:m[2]], "\n")
		}
		switch {
		case c.modules[prefix]:
			c.report(RuleTableReference, rel, l,
				"%s names table %s of module %s; call that module's Service or consume its events", owner, table, prefix)
		case prefix == platform:
			c.report(RuleTableReference, rel, l,
				"%s names platform table %s; use the platform package that owns it (e.g. internal/platform/outbox)", owner, table)
		}
	}
}

func (c *checker) checkSQLFile(abs, rel string) error {
	owner := c.owner(rel)
	if owner == "" {
		return nil
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		return fmt.Errorf("archtest: %w", err)
	}
	// Blank out "-- ..." comments (keeping offsets and line breaks) so prose is not SQL.
	sql := sqlLineComment.ReplaceAllStringFunc(string(b), func(s string) string {
		return strings.Repeat(" ", len(s))
	})
	created := map[int]bool{}
	for _, m := range createTableRE.FindAllStringSubmatchIndex(sql, -1) {
		created[m[2]] = true
		table := strings.ToLower(sql[m[2]:m[3]])
		if !strings.HasPrefix(table, owner+"_") {
			c.report(RuleTablePrefix, rel, 1+strings.Count(sql[:m[2]], "\n"),
				"table %s created by %s must be named %s_...", table, owner, owner)
		}
	}
	c.checkRefs(sql, rel, 1, true, owner, created)
	return nil
}

func (c *checker) line(p token.Pos) int { return c.fset.Position(p).Line }

// checkCycles reports each elementary cycle of the module dependency graph once.
func (c *checker) checkCycles() {
	mods := make([]string, 0, len(c.edges))
	for m := range c.edges {
		mods = append(mods, m)
	}
	sort.Strings(mods)
	const (
		unvisited = iota
		onStack
		done
	)
	state := map[string]int{}
	var stack []string
	reported := map[string]bool{}
	var visit func(m string)
	visit = func(m string) {
		state[m] = onStack
		stack = append(stack, m)
		targets := make([]string, 0, len(c.edges[m]))
		for t := range c.edges[m] {
			targets = append(targets, t)
		}
		sort.Strings(targets)
		for _, t := range targets {
			switch state[t] {
			case unvisited:
				visit(t)
			case onStack:
				i := len(stack) - 1
				for stack[i] != t {
					i--
				}
				cycle := append(append([]string{}, stack[i:]...), t)
				key := canonical(cycle[:len(cycle)-1])
				if !reported[key] {
					reported[key] = true
					e := c.edges[m][t]
					c.report(RuleModuleCycle, e.file, e.line,
						"module dependency cycle %s; the module that reacts should consume the other's events instead",
						strings.Join(cycle, " -> "))
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[m] = done
	}
	for _, m := range mods {
		if state[m] == unvisited {
			visit(m)
		}
	}
}

// canonical rotates a cycle so it starts at its smallest member.
func canonical(cycle []string) string {
	lo := 0
	for i, m := range cycle {
		if m < cycle[lo] {
			lo = i
		}
	}
	return strings.Join(append(append([]string{}, cycle[lo:]...), cycle[:lo]...), ",")
}
