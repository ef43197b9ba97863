package main

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

type seedCounts struct {
	Users, Merchants, Staff, Categories, Templates, Brands, OnSale, Products, SKUs, StockRows, Outbox int
}

func countSeed(t *testing.T, db *sqlx.DB) seedCounts {
	t.Helper()
	var c seedCounts
	for _, q := range []struct {
		dst *int
		sql string
	}{
		{&c.Users, `SELECT COUNT(*) FROM user_users`},
		{&c.Merchants, `SELECT COUNT(*) FROM merchant_merchants WHERE status = 'active'`},
		{&c.Staff, `SELECT COUNT(*) FROM merchant_staff`},
		{&c.Categories, `SELECT COUNT(*) FROM catalog_categories`},
		{&c.Templates, `SELECT COUNT(*) FROM catalog_category_attributes`},
		{&c.Brands, `SELECT COUNT(*) FROM catalog_brands`},
		{&c.OnSale, `SELECT COUNT(*) FROM catalog_products WHERE status = 'on_sale'`},
		{&c.Products, `SELECT COUNT(*) FROM catalog_products`},
		{&c.SKUs, `SELECT COUNT(*) FROM catalog_skus`},
		{&c.StockRows, `SELECT COUNT(*) FROM stock_levels WHERE available > 0`},
		{&c.Outbox, `SELECT COUNT(*) FROM platform_outbox`},
	} {
		if err := db.Get(q.dst, q.sql); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	return c
}

// TestSeedIsIdempotent: `mall seed` builds the demo platform through the services, a second
// run adds nothing, and the demo accounts log in to a server on the same databases.
func TestSeedIsIdempotent(t *testing.T) {
	cfg := apptest.Config(t)
	ctx := context.Background()
	o := seedOptions{Products: 20, Password: apptest.Password, Extra: []fx.Option{fx.Supply(apptest.CheapPassword)}}
	var logs bytes.Buffer
	first, err := runSeed(ctx, cfg, o, &logs)
	if err != nil {
		t.Fatalf("first seed: %v\n%s", err, logs.String())
	}
	if first.AlreadySeeded || first.Products != 20 || len(first.MerchantIDs) != 2 || first.SKUs < 20 || first.SKUs > 80 {
		t.Fatalf("first seed: %+v", first)
	}

	norm, err := sqldb.NormalizeDSN(cfg.DB.Main)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlx.Open("mysql", norm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	got := countSeed(t, db)
	want := seedCounts{Users: 7, Merchants: 2, Staff: 2, Categories: 50, Templates: 120, Brands: 200, OnSale: 20, Products: 20,
		SKUs: first.SKUs, StockRows: first.SKUs, Outbox: got.Outbox}
	if got != want {
		t.Fatalf("after the first seed: %+v, want %+v", got, want)
	}
	if got.Outbox == 0 {
		t.Fatal("the seed wrote no outbox events")
	}

	var out bytes.Buffer
	second, err := runSeed(ctx, cfg, o, &logs)
	if err != nil {
		t.Fatalf("second seed: %v\n%s", err, logs.String())
	}
	printSeed(&out, second, o.Password)
	if !second.AlreadySeeded || second.Products != 0 || !slices.Equal(second.MerchantIDs, first.MerchantIDs) ||
		!strings.Contains(out.String(), "already seeded") || !strings.Contains(out.String(), "owner1@mall.local") {
		t.Fatalf("second seed: %+v\n%s", second, out.String())
	}
	if again := countSeed(t, db); again != got {
		t.Fatalf("the second seed changed the data: %+v, was %+v", again, got)
	}

	// The demo logins work against a server on the same databases, and the products are public.
	a := apptest.Start(t, cfg, apptest.Options{})
	tok := a.Login("owner1@mall.local")
	me := a.Me(tok.AccessToken)
	if !slices.Contains(me.Roles, "merchant_owner") || me.MerchantID != strconv.FormatInt(first.MerchantIDs[0], 10) {
		t.Fatalf("owner1: %+v", me)
	}
	if me := a.Me(a.Login("operator@mall.local").AccessToken); !slices.Contains(me.Roles, "platform_operator") {
		t.Fatalf("operator: %+v", me)
	}
	if me := a.Me(a.Login("staff2@mall.local").AccessToken); !slices.Contains(me.Roles, "merchant_staff") ||
		me.MerchantID != strconv.FormatInt(first.MerchantIDs[1], 10) {
		t.Fatalf("staff2: %+v", me)
	}
	var id int64
	if err := db.Get(&id, `SELECT id FROM catalog_products WHERE status = 'on_sale' ORDER BY id LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	var p struct {
		Title string `json:"title"`
		SKUs  []struct {
			Attrs     map[string]string `json:"attrs"`
			Price     int64             `json:"price"`
			Available int64             `json:"available"`
		} `json:"skus"`
	}
	a.Req("GET", "/api/v1/products/"+strconv.FormatInt(id, 10), nil).Want(t, http.StatusOK, "").Decode(t, &p)
	if p.Title == "" || len(p.SKUs) == 0 || p.SKUs[0].Available < 10 || p.SKUs[0].Price <= 0 || len(p.SKUs[0].Attrs) != 2 {
		t.Fatalf("product %d: %+v", id, p)
	}
}

// TestSeedCommand runs the binary: flags, the printed logins, and "already seeded".
func TestSeedCommand(t *testing.T) {
	e := env(t)
	out, stderr, code := run(t, e, "seed", "--products", "3", "--password", "seed password 1")
	if code != 0 || !strings.Contains(out, "3 products on sale") || !strings.Contains(out, "admin@mall.local") ||
		!strings.Contains(out, "seed password 1") {
		t.Fatalf("seed: exit %d\n%s\n%s", code, out, stderr)
	}
	out, stderr, code = run(t, e, "seed", "--products", "3")
	if code != 0 || !strings.Contains(out, "already seeded") {
		t.Fatalf("second seed: exit %d\n%s\n%s", code, out, stderr)
	}
	if _, stderr, code := run(t, e, "seed", "--password", "short"); code == 0 || !strings.Contains(stderr, "password") {
		t.Fatalf("short password: exit %d %s", code, stderr)
	}
}
