package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"go.uber.org/dig"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app"
	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/catalog/search"
	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/redisx"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/user"
)

// DefaultSeedPassword is the password of the demo accounts `mall seed` creates (development
// only; --password or MALL_SEED_PASSWORD choose another).
const DefaultSeedPassword = "mall-demo-dev"

// seedOptions shape one `mall seed` run.
type seedOptions struct {
	Products int
	Password string
	Workers  int
	// Extra is added to the application graph (tests supply cheap password parameters).
	Extra []fx.Option
}

// seedResult is what a run did.
type seedResult struct {
	AlreadySeeded bool
	Accounts      []seedAccount
	MerchantIDs   []int64
	Categories    int
	Brands        int
	Products      int // created by this run
	SKUs          int
	Elapsed       time.Duration
}

type seedAccount struct {
	Email, Role    string
	ID, MerchantID int64
	Created        bool
}

func newSeedCmd(load func() (config.Config, error)) *cobra.Command {
	o := seedOptions{}
	cmd := &cobra.Command{
		Use:   "seed [--products N] [--password P]",
		Short: "Create an idempotent demo platform: accounts, two merchants, a catalog on sale",
		Long: "Creates, through the modules' services (so every change writes its outbox events), a platform\n" +
			"admin and operator, two approved merchants with owners and staff, a buyer, a three-level\n" +
			"category tree with attribute templates, brands, and --products products with 1-4 SKUs and\n" +
			"stock each, submitted and approved so they are on sale. Running it again adds nothing: it\n" +
			"finds the demo merchants' products and says \"already seeded\". The server may be running\n" +
			"meanwhile (its outbox relays publish the events). Prints the demo logins.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Password == "" {
				o.Password = os.Getenv("MALL_SEED_PASSWORD")
			}
			if o.Password == "" {
				o.Password = DefaultSeedPassword
			}
			if n := utf8.RuneCountInString(o.Password); n < 8 || n > 128 {
				return &exitError{code: 2, err: errors.New("seed: --password must be 8 to 128 characters")}
			}
			if o.Products < 0 {
				return &exitError{code: 2, err: errors.New("seed: --products must be >= 0")}
			}
			cfg, err := load()
			if err != nil {
				return err
			}
			if cfg.App.Env == "production" {
				return &exitError{code: 2, err: errors.New("seed: refused in production (app.env)")}
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			res, err := runSeed(ctx, cfg, o, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			printSeed(cmd.OutOrStdout(), res, o.Password)
			return nil
		},
	}
	cmd.Flags().IntVar(&o.Products, "products", 300, "products to create (on sale, 1-4 SKUs each)")
	cmd.Flags().StringVar(&o.Password, "password", "", "password of the demo accounts (8-128 characters; env MALL_SEED_PASSWORD; default "+DefaultSeedPassword+")")
	cmd.Flags().IntVar(&o.Workers, "workers", 0, "concurrent product writers (default 8 x GOMAXPROCS)")
	return cmd
}

func printSeed(w io.Writer, r seedResult, password string) {
	if r.AlreadySeeded {
		fmt.Fprintf(w, "seed: already seeded (merchants %v have products); nothing added\n", r.MerchantIDs)
	} else {
		rate := 0.0
		if s := r.Elapsed.Seconds(); s > 0 {
			rate = float64(r.Products) / s
		}
		fmt.Fprintf(w, "seed: %d categories, %d brands, %d products on sale with %d SKUs in %s (%.0f products/s)\n",
			r.Categories, r.Brands, r.Products, r.SKUs, r.Elapsed.Round(time.Millisecond), rate)
	}
	fmt.Fprintln(w, "demo logins (POST /api/v1/auth/login):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	existing := 0
	for _, a := range r.Accounts {
		role := a.Role
		if a.MerchantID != 0 {
			role += fmt.Sprintf(" of merchant %d", a.MerchantID)
		}
		mark := ""
		if !a.Created {
			mark, existing = " *", existing+1
		}
		fmt.Fprintf(tw, "  %s\t%s%s\t%s\n", a.Email, password, mark, role)
	}
	_ = tw.Flush()
	if existing > 0 {
		fmt.Fprintln(w, "  * the account existed before this run and kept its password (the seed's unless changed since)")
	}
}

// The demo platform. Emails are the accounts' identity: a rerun finds them.
var (
	seedAdmin    = seedAccount{Email: "admin@mall.local", Role: string(user.RolePlatformAdmin)}
	seedOperator = seedAccount{Email: "operator@mall.local", Role: string(user.RolePlatformOperator)}
	seedBuyer    = seedAccount{Email: "buyer@mall.local", Role: string(user.RoleBuyer)}
	seedShops    = []struct {
		owner, staff string
		staffRole    merchant.StaffRole
		app          merchant.ApplicationInput
	}{
		{"owner1@mall.local", "staff1@mall.local", merchant.StaffOperator, merchant.ApplicationInput{
			ShopName: "Mall 数码旗舰店 Digital Flagship", CompanyName: "示例数码科技有限公司 Demo Digital Co., Ltd.",
			LicenseNo: "91310000DEMO00001X", ContactName: "张伟 Zhang Wei", ContactPhone: "13800000001"}},
		{"owner2@mall.local", "staff2@mall.local", merchant.StaffCustomerService, merchant.ApplicationInput{
			ShopName: "Mall 生活馆 Home & Living", CompanyName: "示例生活用品有限公司 Demo Living Co., Ltd.",
			LicenseNo: "91310000DEMO00002X", ContactName: "李娜 Li Na", ContactPhone: "13800000002"}},
	}
)

// seedServices are the modules' services, built from the application graph without starting
// it: no HTTP listener, no outbox relay and no Kafka consumer run in the seed process, so the
// events it writes stay in the outbox for the server's relays (a relay here would publish
// them to this process's embedded broker, where nobody listens).
type seedServices struct {
	users user.Service
	// cl marks the demo accounts' made-up addresses verified (user.MarkEmailVerified).
	cl        *sqldb.Cluster
	merchants merchant.Service
	// catalog creates the SKUs' stock levels through stock.Service (Init) as it creates them.
	catalog catalog.Service
}

func openSeedServices(ctx context.Context, cfg config.Config, logs io.Writer, extra []fx.Option) (*seedServices, func(), error) {
	tmp, err := os.MkdirTemp("", "mall-seed")
	if err != nil {
		return nil, nil, err
	}
	// The seed issues no tokens and serves no search: private directories keep it off the
	// server's signing keys and search index (whose file lock the server holds).
	cfg = user.ConfigSection.With(cfg, func(c *user.Config) {
		c.JWT.KeysDir, c.JWT.GenerateKey = filepath.Join(tmp, "jwt"), true
	})
	cfg.Search.Bleve.Path = filepath.Join(tmp, "search.bleve")
	cfg.HTTP.Addr = "127.0.0.1:0"
	// One round trip per statement instead of prepare, execute and close: the seed writes
	// hundreds of thousands of rows.
	if cfg.DB.Main, err = interpolateParams(cfg.DB.Main); err != nil {
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	cfg.DB.Shards = slices.Clone(cfg.DB.Shards)
	for i := range cfg.DB.Shards {
		if cfg.DB.Shards[i], err = interpolateParams(cfg.DB.Shards[i]); err != nil {
			os.RemoveAll(tmp)
			return nil, nil, err
		}
	}
	// Lease the ID generator node here (the graph's own lease would be released only by a
	// stop hook, and the graph is never started).
	releaseIDs := func() {}
	if cfg.App.NodeID < 0 {
		rc, err := redisx.New(cfg.Redis)
		if err != nil {
			os.RemoveAll(tmp)
			return nil, nil, err
		}
		lease, err := idgen.AcquireLease(ctx, rc)
		if err != nil {
			rc.Close()
			os.RemoveAll(tmp)
			return nil, nil, fmt.Errorf("seed: lease an ID generator node from redis (or set app.node_id): %w", err)
		}
		cfg.App.NodeID = lease.Node
		releaseIDs = func() {
			_ = lease.Release(context.WithoutCancel(ctx))
			rc.Close()
		}
	}
	var (
		s      seedServices
		cl     *sqldb.Cluster
		broker *kafkax.Broker
		rdb    redis.UniversalClient
	)
	opts := []fx.Option{app.Options(cfg, log.NewWriter(logs, cfg.Log)), fx.NopLogger,
		fx.Populate(&s.users, &s.merchants, &s.catalog, &cl, &broker, &rdb)}
	fxApp := fx.New(append(opts, extra...)...)
	closeAll := func() {
		if broker != nil {
			broker.Close()
		}
		if rdb != nil {
			_ = rdb.Close()
		}
		if cl != nil {
			_ = cl.Close()
		}
		releaseIDs()
		os.RemoveAll(tmp)
	}
	if err := fxApp.Err(); err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("seed: %w", dig.RootCause(err))
	}
	s.cl = cl
	return &s, closeAll, nil
}

func interpolateParams(dsn string) (string, error) {
	if dsn == "" {
		return "", nil
	}
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("seed: %s: %w", config.MaskDSN(dsn), err)
	}
	mc.InterpolateParams = true
	return mc.FormatDSN(), nil
}

// runSeed creates the demo platform, or finds it and adds nothing.
func runSeed(ctx context.Context, cfg config.Config, o seedOptions, logs io.Writer) (seedResult, error) {
	start := time.Now()
	svc, closeAll, err := openSeedServices(ctx, cfg, logs, o.Extra)
	if err != nil {
		return seedResult{}, err
	}
	defer closeAll()
	sd := &seeder{svc: svc, password: o.Password, maxConns: cfg.DB.MaxOpenConns, logs: logs}
	res, err := sd.run(ctx, o)
	res.Elapsed = time.Since(start)
	return res, err
}

type seeder struct {
	svc      *seedServices
	password string
	maxConns int
	logs     io.Writer
}

// account finds the user with email or registers them, then grants role (idempotent).
func (sd *seeder) account(ctx context.Context, a seedAccount) (seedAccount, error) {
	u, err := sd.svc.users.FindByEmail(ctx, a.Email)
	switch {
	case errors.Is(err, user.ErrNotFound):
		if u, err = sd.svc.users.Register(ctx, a.Email, sd.password, ""); err != nil {
			return a, fmt.Errorf("seed: register %s: %w", a.Email, err)
		}
		// The seed makes the addresses up and vouches for them, as `mall admin create` does.
		if err := user.MarkEmailVerified(ctx, sd.svc.cl, u.ID); err != nil {
			return a, fmt.Errorf("seed: verify %s: %w", a.Email, err)
		}
		a.Created = true
	case err != nil:
		return a, err
	}
	a.ID = u.ID
	if r := user.Role(a.Role); r == user.RolePlatformAdmin || r == user.RolePlatformOperator {
		if err := sd.svc.users.GrantRole(ctx, u.ID, r, 0); err != nil {
			return a, fmt.Errorf("seed: grant %s to %s: %w", r, a.Email, err)
		}
	}
	return a, nil
}

// merchantOf returns the merchant the user holds role in (0 = none).
func (sd *seeder) merchantOf(ctx context.Context, userID int64, role user.Role) (int64, error) {
	bs, err := sd.svc.users.Roles(ctx, userID)
	if err != nil {
		return 0, err
	}
	for _, b := range bs {
		if b.Role == role && b.MerchantID != 0 {
			return b.MerchantID, nil
		}
	}
	return 0, nil
}

// shop applies for the owner's merchant and approves it, unless the owner has one already.
func (sd *seeder) shop(ctx context.Context, ownerID, reviewerID int64, in merchant.ApplicationInput) (int64, error) {
	if mid, err := sd.merchantOf(ctx, ownerID, user.RoleMerchantOwner); err != nil || mid != 0 {
		return mid, err
	}
	apps, err := sd.svc.merchants.Applications(ctx, ownerID, "", 0, 100)
	if err != nil {
		return 0, err
	}
	appID := int64(0)
	for _, a := range apps { // an earlier run that stopped between apply and approve
		if a.Status == merchant.ApplicationPending || a.Status == merchant.ApplicationApproved {
			appID = a.ID
			break
		}
	}
	if appID == 0 {
		a, err := sd.svc.merchants.Apply(ctx, ownerID, in)
		if err != nil {
			return 0, fmt.Errorf("seed: apply for %q: %w", in.ShopName, err)
		}
		appID = a.ID
	}
	mid, err := sd.svc.merchants.Approve(ctx, appID, reviewerID)
	if err != nil {
		return 0, fmt.Errorf("seed: approve %q: %w", in.ShopName, err)
	}
	return mid, nil
}

func (sd *seeder) run(ctx context.Context, o seedOptions) (seedResult, error) {
	var res seedResult
	admin, err := sd.account(ctx, seedAdmin)
	if err != nil {
		return res, err
	}
	operator, err := sd.account(ctx, seedOperator)
	if err != nil {
		return res, err
	}
	buyer, err := sd.account(ctx, seedBuyer)
	if err != nil {
		return res, err
	}
	res.Accounts = append(res.Accounts, admin, operator)
	for _, sh := range seedShops {
		owner, err := sd.account(ctx, seedAccount{Email: sh.owner, Role: string(user.RoleMerchantOwner)})
		if err != nil {
			return res, err
		}
		mid, err := sd.shop(ctx, owner.ID, operator.ID, sh.app)
		if err != nil {
			return res, err
		}
		owner.MerchantID = mid
		staff, err := sd.account(ctx, seedAccount{Email: sh.staff, Role: string(user.RoleMerchantStaff) + " (" + string(sh.staffRole) + ")"})
		if err != nil {
			return res, err
		}
		if cur, err := sd.merchantOf(ctx, staff.ID, user.RoleMerchantStaff); err != nil {
			return res, err
		} else if cur == 0 {
			if _, err := sd.svc.merchants.AddStaff(ctx, mid, owner.ID, sh.staff, sh.staffRole); err != nil {
				return res, fmt.Errorf("seed: add staff %s: %w", sh.staff, err)
			}
			// The demo staff member accepts at once: the seed speaks for its made-up accounts.
			if _, err := sd.svc.merchants.AcceptInvitation(ctx, staff.ID, mid); err != nil {
				return res, fmt.Errorf("seed: staff %s accepts: %w", sh.staff, err)
			}
		}
		staff.MerchantID = mid
		res.MerchantIDs = append(res.MerchantIDs, mid)
		res.Accounts = append(res.Accounts, owner, staff)
	}
	res.Accounts = append(res.Accounts, buyer)

	// The catalog: the demo merchants' products mark a finished seed.
	for _, mid := range res.MerchantIDs {
		ps, err := sd.svc.catalog.MerchantProducts(ctx, mid, "", 1, 0)
		if err != nil {
			return res, err
		}
		if len(ps) > 0 {
			res.AlreadySeeded = true
			return res, nil
		}
	}
	cats, err := sd.categories(ctx)
	if err != nil {
		return res, err
	}
	res.Categories = len(cats)
	brands, err := sd.brands(ctx)
	if err != nil {
		return res, err
	}
	res.Brands = len(brands)
	n, skus, err := sd.products(ctx, o, res.MerchantIDs, cats, brands)
	res.Products, res.SKUs = n, skus
	return res, err
}

// Attribute templates of every leaf category: what the generated products' SKUs vary by.
var (
	seedColors   = []string{"黑 Black", "白 White", "灰 Grey", "蓝 Blue"}
	seedEditions = []string{"标准版 Standard", "升级版 Plus"}
	seedOrigins  = []string{"中国 China", "日本 Japan", "德国 Germany", "美国 USA"}
	seedTemplate = catalog.Template{
		Spec: []catalog.Attribute{{Name: "产地 Origin", Values: seedOrigins}, {Name: "材质 Material"}},
		Sale: []catalog.Attribute{{Name: "颜色 Color", Values: seedColors}, {Name: "版本 Edition", Values: seedEditions}},
	}
	seedMaterials = []string{"不锈钢 stainless steel", "纯棉 cotton", "铝合金 aluminium", "玻璃 glass", "硅胶 silicone", "木 wood"}
)

// categories ensures the generated three-level tree (found by name under its parent) and
// returns the catalog IDs by generated ID.
func (sd *seeder) categories(ctx context.Context) (map[int64]int64, error) {
	tree, err := sd.svc.catalog.Categories(ctx)
	if err != nil {
		return nil, err
	}
	existing := map[[2]any]int64{} // (parent catalog ID, name) -> ID
	var walk func([]catalog.Category)
	walk = func(cs []catalog.Category) {
		for _, c := range cs {
			existing[[2]any{c.ParentID, c.Name}] = c.ID
			walk(c.Children)
		}
	}
	walk(tree)
	ids := map[int64]int64{}
	leaf := map[int64]bool{}
	gen := search.GeneratedCategories()
	for _, g := range gen {
		leaf[g.ID] = true
	}
	for _, g := range gen {
		delete(leaf, g.ParentID)
	}
	for i, g := range gen { // parents come first
		parent := ids[g.ParentID]
		name := g.Name + " " + g.NameEN
		id, ok := existing[[2]any{parent, name}]
		if !ok {
			if id, err = sd.svc.catalog.CreateCategory(ctx, catalog.NewCategory{Name: name, ParentID: parent,
				CommissionRateBP: new(300 + 100*int(g.ID%5)), Sort: i}); err != nil {
				return nil, fmt.Errorf("seed: category %s: %w", name, err)
			}
		}
		ids[g.ID] = id
		if leaf[g.ID] {
			if err := sd.svc.catalog.SetAttributes(ctx, id, seedTemplate); err != nil {
				return nil, fmt.Errorf("seed: attributes of %s: %w", name, err)
			}
		}
	}
	return ids, nil
}

// brands creates the generated brands; one that exists already (a seed stopped before its
// products) cannot be looked up, so its products go without a brand.
func (sd *seeder) brands(ctx context.Context) (map[int64]int64, error) {
	ids := map[int64]int64{}
	for _, b := range search.GeneratedBrands() {
		id, err := sd.svc.catalog.CreateBrand(ctx, b.Name)
		if errors.Is(err, catalog.ErrBrandExists) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("seed: brand %s: %w", b.Name, err)
		}
		ids[b.ID] = id
	}
	return ids, nil
}

// products creates o.Products products with a pool of workers; each is created (its SKUs'
// stock initialized by the stock service), submitted and, when review is required, approved.
func (sd *seeder) products(ctx context.Context, o seedOptions, merchants []int64, cats, brands map[int64]int64) (int, int, error) {
	if o.Products == 0 {
		return 0, 0, nil
	}
	workers := o.Workers
	if workers <= 0 {
		workers = 8 * runtime.GOMAXPROCS(0)
	}
	if maxConns := sd.maxConns; maxConns > 0 {
		workers = min(workers, max(1, maxConns-4)) // a worker holds one connection at a time
	}
	gen := search.GenerateProducts(o.Products, 20261128)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next, done, skus atomic.Int64
		wg               sync.WaitGroup
	)
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(gen)) || ctx.Err() != nil {
					return
				}
				n, err := sd.product(ctx, int(i), gen[i], merchants, cats, brands)
				if err != nil {
					cancel(fmt.Errorf("seed: product %d: %w", i, err))
					return
				}
				skus.Add(int64(n))
				done.Add(1)
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	for {
		select {
		case <-finished:
			if err := context.Cause(ctx); err != nil {
				return int(done.Load()), int(skus.Load()), err
			}
			return int(done.Load()), int(skus.Load()), nil
		case <-progress.C:
			fmt.Fprintf(sd.logs, "seed: %d/%d products\n", done.Load(), len(gen))
		}
	}
}

func (sd *seeder) product(ctx context.Context, i int, g search.Product, merchants []int64, cats, brands map[int64]int64) (int, error) {
	rng := rand.New(rand.NewPCG(uint64(i), 0x73656564)) // "seed"
	mid := merchants[int(g.MerchantID)%len(merchants)]
	nSKU := 1 + rng.IntN(4)
	combos := rng.Perm(len(seedColors) * len(seedEditions))[:nSKU]
	in := catalog.ProductInput{
		Title:      g.Title,
		Subtitle:   g.Subtitle,
		CategoryID: cats[g.CategoryID],
		BrandID:    brands[g.BrandID],
		Description: fmt.Sprintf("<p>%s</p><p>%s — demo product %d generated by <code>mall seed</code>.</p>",
			g.Subtitle, g.Title, i+1),
		Images: []string{fmt.Sprintf("https://img.mall.local/demo/%d/1.jpg", i+1)},
		Specs: map[string]string{
			"产地 Origin":   seedOrigins[rng.IntN(len(seedOrigins))],
			"材质 Material": seedMaterials[rng.IntN(len(seedMaterials))],
		},
	}
	for k, c := range combos {
		price := g.PriceMin
		if nSKU > 1 && g.PriceMax > g.PriceMin {
			price += (g.PriceMax - g.PriceMin) * int64(k) / int64(nSKU-1)
		}
		in.SKUs = append(in.SKUs, catalog.SKUInput{
			Code:  fmt.Sprintf("DEMO-%06d-%d", i+1, k+1),
			Attrs: map[string]string{"颜色 Color": seedColors[c%len(seedColors)], "版本 Edition": seedEditions[c/len(seedColors)]},
			Price: price,
			Stock: int64(10 + rng.IntN(991)),
		})
	}
	p, err := sd.svc.catalog.CreateProduct(ctx, mid, in)
	if err != nil {
		return 0, err
	}
	if p, err = sd.svc.catalog.Submit(ctx, mid, p.ID); err != nil {
		return 0, err
	}
	if p.Status == catalog.StatusPendingReview { // catalog.review_required
		if _, err := sd.svc.catalog.Approve(ctx, p.ID); err != nil {
			return 0, err
		}
	}
	return len(in.SKUs), nil
}
