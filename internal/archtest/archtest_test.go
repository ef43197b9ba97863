package archtest_test

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mallhq/mall/internal/archtest"
)

// TestRepository is the architecture test proper: the real tree must satisfy every rule.
func TestRepository(t *testing.T) {
	vs, err := archtest.Check(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Error(v)
	}
	if len(vs) > 0 {
		t.Log("the rules are in ARCHITECTURE.md (\"Rules\"); internal/archtest/archtest.go explains each check")
	}
}

// TestCheckReportsViolations proves the checker fails on each kind of broken tree under
// testdata/ (and only there: the clean tree uses every allowed pattern).
func TestCheckReportsViolations(t *testing.T) {
	tests := []struct {
		give string
		want []string // "rule file:line"
	}{
		{give: "clean", want: nil},
		{
			give: "subpackage_import",
			want: []string{
				"module-import internal/catalog/catalog.go:5",      // order/payment from production code
				"module-import internal/catalog/catalog_test.go:5", // and from a test (order/ordertest is fine)
			},
		},
		{
			give: "platform_import",
			want: []string{
				"platform-import internal/platform/authn/authn_test.go:3",
				"platform-import internal/platform/cache/cache.go:3",
			},
		},
		{
			give: "package_name",
			want: []string{
				"package-name internal/catalog/common/strings.go:1",
				"package-name internal/platform/util/util.go:1",
				"package-name pkg/misc/misc_test.go:1",
				"package-name pkg/models/models.go:1",
			},
		},
		{
			give: "table_prefix",
			want: []string{
				"table-prefix internal/platform/migrations/sql/00001_outbox.sql:2", // outbox
				"table-prefix internal/stock/migrations/00001_init.sql:2",          // levels
				"table-reference internal/stock/migrations/00001_init.sql:7",       // REFERENCES catalog_skus
				"table-prefix internal/stock/migrations/00001_init.sql:9",          // catalog_shadow
			},
		},
		{
			give: "table_reference",
			want: []string{
				"table-reference internal/order/store.go:7",  // FROM stock_levels, inside a raw string
				"table-reference internal/order/store.go:9",  // INTO platform_outbox
				"table-reference internal/order/store.go:10", // JOIN user_users, in a concatenation
				"table-reference internal/order/store.go:15", // FROM stock_reservations, next to a variable
				"table-reference internal/platform/outbox/relay.go:3",
			},
		},
		{
			give: "tx_scope",
			want: []string{
				"tx-scope internal/order/order.go:4", // never calls For
				"tx-scope internal/stock/stock.go:4", // For("order"): another module's scope
			},
		},
		{
			give: "module_cycle",
			want: []string{"module-cycle internal/stock/replenish/replenish.go:3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			vs, err := archtest.Check(filepath.Join("testdata", tt.give))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range vs {
				got = append(got, v.Rule+" "+v.File+":"+strconv.Itoa(v.Line))
			}
			want := slices.Clone(tt.want)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				var all []string
				for _, v := range vs {
					all = append(all, v.String())
				}
				t.Errorf("violations\n got: %q\nwant: %q\nfull:\n%s", got, want, strings.Join(all, "\n"))
			}
		})
	}
}

func TestCheckMessages(t *testing.T) {
	vs, err := archtest.Check(filepath.Join("testdata", "module_cycle"))
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || !strings.Contains(vs[0].Msg, "order -> stock -> order") {
		t.Fatalf("want the cycle spelled out, got %v", vs)
	}
}

func TestCheckNeedsGoMod(t *testing.T) {
	if _, err := archtest.Check(t.TempDir()); err == nil {
		t.Fatal("want an error for a tree without go.mod")
	}
}
