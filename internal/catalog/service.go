package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/microcosm-cc/bluemonday"

	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/platform/cache"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/stock"
)

// service implements Service.
type service struct {
	log   *slog.Logger
	st    *store
	cl    *sqldb.Cluster
	ids   *idgen.Generator
	stock stock.Service
	// merchants is nil when the merchant module is not wired (every merchant is active).
	merchants merchant.Service
	outbox    outbox.Writer
	cfg       Config
	// detail caches PublicProduct's database part (detail.go).
	detail *cache.Cache[detailValue]
	// categoryRates holds every category's effective commission rate (commission.go).
	categoryRates *categoryRates
	now           func() time.Time

	// Test hooks (export_test.go): drop the post-commit invalidation, as a crash between
	// commit and invalidation would, or the consumer's.
	testSkipInvalidate, testSkipConsumerInvalidate atomic.Bool
}

var _ Service = (*service)(nil)

// policy sanitizes descriptions; a configured bluemonday policy is safe for concurrent use.
var policy = bluemonday.UGCPolicy()

// Sanitize returns the description HTML without scripts, event handlers or javascript: URLs.
func Sanitize(html string) string { return policy.Sanitize(html) }

func (s *service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func (s *service) newID() int64 { return s.ids.Next(0) }

// fieldErrs collects validation failures into one 400 request.validation.
type fieldErrs []errs.FieldError

func (f *fieldErrs) add(field, format string, args ...any) {
	*f = append(*f, errs.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (f fieldErrs) err() error {
	if len(f) == 0 {
		return nil
	}
	return errs.ErrValidation.WithDetail("the request has invalid fields").WithFields(f...)
}

func checkName(f *fieldErrs, field, s string, max int) {
	if strings.TrimSpace(s) == "" {
		f.add(field, "is required")
	} else if utf8.RuneCountInString(s) > max {
		f.add(field, "must be at most %d characters", max)
	}
}

// Categories and brands.

func (s *service) CreateCategory(ctx context.Context, in NewCategory) (int64, error) {
	var f fieldErrs
	in.Name = strings.TrimSpace(in.Name)
	checkName(&f, "name", in.Name, maxNameLen)
	if r := in.CommissionRateBP; r != nil && (*r < 0 || *r > MaxCommissionBP) {
		f.add("commission_rate_bp", "must be from 0 to %d", MaxCommissionBP)
	}
	if in.ParentID < 0 {
		f.add("parent_id", "is not a category")
	}
	if err := f.err(); err != nil {
		return 0, err
	}
	id := s.newID()
	err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		if in.ParentID != 0 {
			depth, p := 1, in.ParentID
			for p != 0 {
				parent, err := s.st.categoryParent(ctx, p)
				if errors.Is(err, ErrCategoryNotFound) {
					return errs.ErrValidation.WithDetail("parent category not found").
						WithFields(errs.FieldError{Field: "parent_id", Message: "is not a category"})
				}
				if err != nil {
					return err
				}
				if depth++; depth > MaxCategoryDepth {
					return errs.ErrValidation.WithDetail("the category tree is at most %d levels deep", MaxCategoryDepth).
						WithFields(errs.FieldError{Field: "parent_id", Message: "is too deep"})
				}
				p = parent
			}
		}
		return s.st.insertCategory(ctx, id, in, s.clock())
	})
	if err != nil {
		return 0, err
	}
	s.categoryRates.invalidate()
	return id, nil
}

func (s *service) Categories(ctx context.Context) ([]Category, error) {
	rows, err := s.st.categories(ctx)
	if err != nil {
		return nil, err
	}
	children := map[int64][]categoryRow{}
	for _, r := range rows {
		children[r.ParentID.Int64] = append(children[r.ParentID.Int64], r)
	}
	var build func(parent int64, depth int) []Category
	build = func(parent int64, depth int) []Category {
		out := []Category{}
		if depth > MaxCategoryDepth+1 {
			return out
		}
		for _, r := range children[parent] {
			out = append(out, Category{ID: r.ID, ParentID: r.ParentID.Int64, Name: r.Name,
				CommissionRateBP: r.rate(), Sort: r.Sort, Children: build(r.ID, depth+1)})
		}
		return out
	}
	return build(0, 0), nil
}

func checkTemplate(t Template) error {
	var f fieldErrs
	for kind, attrs := range map[string][]Attribute{"spec": t.Spec, "sale": t.Sale} {
		if len(attrs) > MaxAttributes {
			f.add(kind, "at most %d attributes", MaxAttributes)
			continue
		}
		seen := map[string]bool{}
		for i, a := range attrs {
			field := fmt.Sprintf("%s[%d]", kind, i)
			checkName(&f, field+".name", a.Name, maxAttrLen)
			if seen[a.Name] {
				f.add(field+".name", "is a duplicate")
			}
			seen[a.Name] = true
			if len(a.Values) > MaxAttrValues {
				f.add(field+".values", "at most %d values", MaxAttrValues)
			}
			vs := map[string]bool{}
			for j, v := range a.Values {
				checkName(&f, fmt.Sprintf("%s.values[%d]", field, j), v, maxAttrLen)
				if vs[v] {
					f.add(fmt.Sprintf("%s.values[%d]", field, j), "is a duplicate")
				}
				vs[v] = true
			}
		}
	}
	return f.err()
}

func (s *service) SetAttributes(ctx context.Context, categoryID int64, t Template) error {
	if err := checkTemplate(t); err != nil {
		return err
	}
	return s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		if _, err := s.st.categoryParent(ctx, categoryID); err != nil {
			return err
		}
		return s.st.replaceAttributes(ctx, categoryID, t)
	})
}

func (s *service) Attributes(ctx context.Context, categoryID int64) (Template, error) {
	if _, err := s.st.categoryParent(ctx, categoryID); err != nil {
		return Template{}, err
	}
	return s.st.attributes(ctx, categoryID)
}

func (s *service) CreateBrand(ctx context.Context, name string) (int64, error) {
	var f fieldErrs
	name = strings.TrimSpace(name)
	checkName(&f, "name", name, maxNameLen)
	if err := f.err(); err != nil {
		return 0, err
	}
	id := s.newID()
	if err := s.st.insertBrand(ctx, id, name, s.clock()); err != nil {
		return 0, err
	}
	return id, nil
}

// Products.

func checkText(f *fieldErrs, title, subtitle, description *string) {
	if title != nil {
		checkName(f, "title", *title, maxTitleLen)
	}
	if subtitle != nil && utf8.RuneCountInString(*subtitle) > maxTitleLen {
		f.add("subtitle", "must be at most %d characters", maxTitleLen)
	}
	if description != nil && len(*description) > MaxDescription {
		f.add("description", "must be at most %d bytes", MaxDescription)
	}
}

func checkImages(f *fieldErrs, images []string) {
	if len(images) > MaxImages {
		f.add("images", "at most %d images", MaxImages)
		return
	}
	for i, img := range images {
		u, err := url.Parse(img)
		if len(img) > maxImageURLLength || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			f.add(fmt.Sprintf("images[%d]", i), "must be an http(s) URL of at most %d characters", maxImageURLLength)
		}
	}
}

func checkSpecs(f *fieldErrs, specs map[string]string, tmpl []Attribute) {
	if len(specs) > MaxSpecs {
		f.add("specs", "at most %d specs", MaxSpecs)
		return
	}
	for _, k := range sortedKeys(specs) {
		v := specs[k]
		if strings.TrimSpace(k) == "" || utf8.RuneCountInString(k) > maxAttrLen {
			f.add("specs", "names must be 1 to %d characters", maxAttrLen)
		}
		if utf8.RuneCountInString(v) > maxSpecValueLen {
			f.add("specs."+k, "must be at most %d characters", maxSpecValueLen)
		}
		for _, a := range tmpl {
			if a.Name == k && len(a.Values) > 0 && !slices.Contains(a.Values, v) {
				f.add("specs."+k, "must be one of %s", strings.Join(a.Values, ", "))
			}
		}
	}
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// attrsKey is the canonical form of a SKU's attributes (JSON with sorted keys), hashed.
func attrsKey(attrs map[string]string) string {
	b, _ := json.Marshal(nonNilMap(attrs)) // a map[string]string always marshals
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func checkSKUs(f *fieldErrs, skus []SKUInput, sale []Attribute) {
	if len(skus) == 0 || len(skus) > MaxSKUs {
		f.add("skus", "must have 1 to %d SKUs", MaxSKUs)
		return
	}
	codes, combos := map[string]bool{}, map[string]bool{}
	for i, k := range skus {
		field := fmt.Sprintf("skus[%d]", i)
		if strings.TrimSpace(k.Code) == "" || utf8.RuneCountInString(k.Code) > maxCodeLen {
			f.add(field+".code", "must be 1 to %d characters", maxCodeLen)
		} else if codes[k.Code] {
			f.add(field+".code", "is a duplicate")
		}
		codes[k.Code] = true
		if k.Price <= 0 || k.Price > MaxPrice {
			f.add(field+".price", "must be an integer number of fen from 1 to %d", MaxPrice)
		}
		if k.Stock < 0 || k.Stock > stock.MaxAvailable {
			f.add(field+".stock", "must be from 0 to %d", stock.MaxAvailable)
		}
		if len(sale) == 0 {
			// No template: the merchant names the attributes, the same names on every SKU
			// of the product (a product varies along one set of dimensions).
			if !checkFreeAttrs(f, field, k.Attrs, skus[0].Attrs) {
				continue
			}
			key := attrsKey(k.Attrs)
			if combos[key] {
				f.add(field+".attrs", "duplicates another SKU's combination")
			}
			combos[key] = true
			continue
		}
		ok := len(k.Attrs) == len(sale)
		for _, a := range sale {
			v, has := k.Attrs[a.Name]
			switch {
			case !has:
				ok = false
				f.add(field+".attrs."+a.Name, "is required")
			case strings.TrimSpace(v) == "" || utf8.RuneCountInString(v) > maxAttrLen:
				ok = false
				f.add(field+".attrs."+a.Name, "must be 1 to %d characters", maxAttrLen)
			case len(a.Values) > 0 && !slices.Contains(a.Values, v):
				ok = false
				f.add(field+".attrs."+a.Name, "must be one of %s", strings.Join(a.Values, ", "))
			}
		}
		if len(k.Attrs) != len(sale) || !ok {
			for _, name := range sortedKeys(k.Attrs) {
				if !slices.ContainsFunc(sale, func(a Attribute) bool { return a.Name == name }) {
					f.add(field+".attrs", "%q is not a sale attribute of the category", name)
				}
			}
			continue
		}
		key := attrsKey(k.Attrs)
		if combos[key] {
			f.add(field+".attrs", "duplicates another SKU's combination")
		}
		combos[key] = true
	}
}

// checkFreeAttrs checks a SKU's attributes in a category without a sale-attribute
// template: at most MaxAttributes, names and values 1 to maxAttrLen characters, and the
// same names as the product's first SKU (first). It reports whether they passed.
func checkFreeAttrs(f *fieldErrs, field string, attrs, first map[string]string) bool {
	ok := true
	if len(attrs) > MaxAttributes {
		f.add(field+".attrs", "at most %d attributes", MaxAttributes)
		return false
	}
	for _, name := range sortedKeys(attrs) {
		v := attrs[name]
		switch {
		case strings.TrimSpace(name) == "" || utf8.RuneCountInString(name) > maxAttrLen:
			ok = false
			f.add(field+".attrs", "attribute names must be 1 to %d characters", maxAttrLen)
		case strings.TrimSpace(v) == "" || utf8.RuneCountInString(v) > maxAttrLen:
			ok = false
			f.add(field+".attrs."+name, "must be 1 to %d characters", maxAttrLen)
		}
		if _, same := first[name]; !same {
			ok = false
			f.add(field+".attrs", "%q is not an attribute of the product's first SKU (every SKU names the same attributes)", name)
		}
	}
	if len(attrs) != len(first) && ok {
		ok = false
		f.add(field+".attrs", "must name the same attributes as the product's first SKU")
	}
	return ok
}

func checkPrices(f *fieldErrs, prices []SKUPrice, skus []SKU) {
	if len(prices) > MaxSKUs {
		f.add("skus", "at most %d SKUs", MaxSKUs)
		return
	}
	seen := map[int64]bool{}
	for i, np := range prices {
		field := fmt.Sprintf("skus[%d]", i)
		if !slices.ContainsFunc(skus, func(k SKU) bool { return k.ID == np.SKUID }) {
			f.add(field+".id", "is not a SKU of this product")
		} else if seen[np.SKUID] {
			f.add(field+".id", "is a duplicate")
		}
		seen[np.SKUID] = true
		if np.Price <= 0 || np.Price > MaxPrice {
			f.add(field+".price", "must be an integer number of fen from 1 to %d", MaxPrice)
		}
	}
}

func priceRange(skus []SKU) (lo, hi int64) {
	for i, k := range skus {
		if i == 0 || k.Price < lo {
			lo = k.Price
		}
		if k.Price > hi {
			hi = k.Price
		}
	}
	return lo, hi
}

// checkRefs verifies the category (its template) and the brand; the caller validated shapes.
func (s *service) template(ctx context.Context, f *fieldErrs, categoryID, brandID int64) (Template, bool, error) {
	if categoryID <= 0 {
		f.add("category_id", "is required")
		return Template{}, false, nil
	}
	if _, err := s.st.categoryParent(ctx, categoryID); errors.Is(err, ErrCategoryNotFound) {
		f.add("category_id", "is not a category")
		return Template{}, false, nil
	} else if err != nil {
		return Template{}, false, err
	}
	if brandID != 0 {
		ok, err := s.st.brandExists(ctx, brandID)
		if err != nil {
			return Template{}, false, err
		}
		if !ok {
			f.add("brand_id", "is not a brand")
		}
	}
	t, err := s.st.attributes(ctx, categoryID)
	return t, true, err
}

func (s *service) CreateProduct(ctx context.Context, merchantID int64, in ProductInput) (Product, error) {
	if merchantID <= 0 {
		return Product{}, errs.ErrForbidden
	}
	var f fieldErrs
	checkText(&f, &in.Title, &in.Subtitle, &in.Description)
	checkImages(&f, in.Images)
	if in.BrandID < 0 {
		f.add("brand_id", "is not a brand")
		in.BrandID = 0
	}
	tmpl, found, err := s.template(ctx, &f, in.CategoryID, in.BrandID)
	if err != nil {
		return Product{}, err
	}
	if found {
		checkSpecs(&f, in.Specs, tmpl.Spec)
		checkSKUs(&f, in.SKUs, tmpl.Sale)
	} else if len(in.SKUs) == 0 || len(in.SKUs) > MaxSKUs {
		f.add("skus", "must have 1 to %d SKUs", MaxSKUs)
	}
	if err := f.err(); err != nil {
		return Product{}, err
	}
	now := s.clock()
	p := Product{ID: s.newID(), MerchantID: merchantID, CategoryID: in.CategoryID, BrandID: in.BrandID,
		Title: strings.TrimSpace(in.Title), Subtitle: strings.TrimSpace(in.Subtitle),
		Description: Sanitize(in.Description), Images: nonNilSlice(in.Images), Specs: nonNilMap(in.Specs),
		Status: StatusDraft, CreatedAt: now, UpdatedAt: now}
	for _, k := range in.SKUs {
		p.SKUs = append(p.SKUs, SKU{ID: s.newID(), ProductID: p.ID, MerchantID: merchantID, Code: k.Code,
			Attrs: nonNilMap(k.Attrs), Price: k.Price})
	}
	p.PriceMin, p.PriceMax = priceRange(p.SKUs)
	err = s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		if err := s.st.insertProduct(ctx, p); err != nil {
			return err
		}
		for _, k := range p.SKUs {
			if err := s.st.insertSKU(ctx, k, attrsKey(k.Attrs), now); err != nil {
				return err
			}
		}
		return s.changed(ctx, p)
	})
	if err != nil {
		return Product{}, err
	}
	// Stock runs in its own transaction on db.main, so only after ours committed.
	var initErrs []error
	for i, k := range p.SKUs {
		if err := s.stock.Init(ctx, k.ID, merchantID, in.SKUs[i].Stock); err != nil {
			initErrs = append(initErrs, fmt.Errorf("catalog: init stock of SKU %d: %w", k.ID, err))
		}
	}
	return p, errors.Join(initErrs...)
}

func (s *service) changed(ctx context.Context, p Product) error {
	return s.outbox.Add(ctx, outbox.Event{
		Topic: Topic, AggregateID: strconv.FormatInt(p.ID, 10), Type: EventProductChanged,
		Payload: ProductChanged{ID: p.ID, MerchantID: p.MerchantID, Status: p.Status,
			PriceMin: p.PriceMin, PriceMax: p.PriceMax, OccurredAt: p.UpdatedAt},
	})
}

func editable(st Status) bool {
	return st == StatusDraft || st == StatusRejected || st == StatusOffShelf
}

func (s *service) UpdateProduct(ctx context.Context, merchantID, productID int64, in ProductPatch) (Product, error) {
	if merchantID <= 0 || productID <= 0 {
		return Product{}, ErrProductNotFound
	}
	var p Product
	err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		var err error
		if p, err = s.st.product(ctx, merchantID, productID); err != nil {
			return err
		}
		if in.content() && !editable(p.Status) {
			return ErrNotEditable.WithDetail("a %s product's content cannot be edited; take it off shelf first", p.Status)
		}
		if p.SKUs, err = s.st.skus(ctx, p.ID); err != nil {
			return err
		}
		var f fieldErrs
		checkText(&f, in.Title, in.Subtitle, in.Description)
		if in.Images != nil {
			checkImages(&f, *in.Images)
		}
		brand := p.BrandID
		if in.BrandID != nil {
			brand = *in.BrandID
			if brand < 0 {
				f.add("brand_id", "is not a brand")
				brand = 0
			}
		}
		tmpl, _, err := s.template(ctx, &f, p.CategoryID, brand)
		if err != nil {
			return err
		}
		if in.Specs != nil {
			checkSpecs(&f, *in.Specs, tmpl.Spec)
		}
		checkPrices(&f, in.Prices, p.SKUs)
		if err := f.err(); err != nil {
			return err
		}
		expect := p.Status
		p.BrandID = brand
		if in.Title != nil {
			p.Title = strings.TrimSpace(*in.Title)
		}
		if in.Subtitle != nil {
			p.Subtitle = strings.TrimSpace(*in.Subtitle)
		}
		if in.Description != nil {
			p.Description = Sanitize(*in.Description)
		}
		if in.Images != nil {
			p.Images = nonNilSlice(*in.Images)
		}
		if in.Specs != nil {
			p.Specs = nonNilMap(*in.Specs)
		}
		p.UpdatedAt = s.clock()
		for _, np := range in.Prices {
			if err := s.st.setSKUPrice(ctx, merchantID, p.ID, np.SKUID, np.Price, p.UpdatedAt); err != nil {
				return err
			}
			for i := range p.SKUs {
				if p.SKUs[i].ID == np.SKUID {
					p.SKUs[i].Price = np.Price
				}
			}
		}
		p.PriceMin, p.PriceMax = priceRange(p.SKUs)
		ok, err := s.st.updateProduct(ctx, p, expect)
		if err != nil {
			return err
		}
		if !ok {
			return ErrStatusConflict
		}
		return s.changed(ctx, p)
	})
	if err != nil {
		return Product{}, err
	}
	// Only an on-sale product has a cached detail; the status did not change (the update
	// is compare-and-set on it).
	if p.Status == StatusOnSale {
		s.invalidateDetail(ctx, p.ID)
	}
	return p, nil
}

// transition moves the product (the merchant's when merchantID != 0) from one of from to
// to, compare-and-set on the status it read, with the event in the same transaction.
func (s *service) transition(ctx context.Context, merchantID, productID int64, from []Status, to Status, reason string) (Product, error) {
	if productID <= 0 || merchantID < 0 {
		return Product{}, ErrProductNotFound
	}
	var p Product
	err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		var err error
		if p, err = s.st.product(ctx, merchantID, productID); err != nil {
			return err
		}
		if !slices.Contains(from, p.Status) {
			return ErrStatusConflict.WithDetail("a %s product cannot become %s", p.Status, to)
		}
		now := s.clock()
		ok, err := s.st.setStatus(ctx, p.ID, p.Status, to, reason, now)
		if err != nil {
			return err
		}
		if !ok {
			return ErrStatusConflict.WithDetail("the product changed meanwhile")
		}
		p.Status, p.RejectReason, p.UpdatedAt = to, reason, now
		if p.SKUs, err = s.st.skus(ctx, p.ID); err != nil {
			return err
		}
		return s.changed(ctx, p)
	})
	if err != nil {
		return Product{}, err
	}
	s.invalidateDetail(ctx, p.ID)
	return p, nil
}

func (s *service) Submit(ctx context.Context, merchantID, productID int64) (Product, error) {
	if merchantID <= 0 {
		return Product{}, ErrProductNotFound
	}
	to := StatusPendingReview
	if !s.cfg.ReviewRequired {
		to = StatusOnSale
	}
	return s.transition(ctx, merchantID, productID, []Status{StatusDraft, StatusRejected, StatusOffShelf}, to, "")
}

func (s *service) OffShelf(ctx context.Context, merchantID, productID int64) (Product, error) {
	if merchantID <= 0 {
		return Product{}, ErrProductNotFound
	}
	return s.transition(ctx, merchantID, productID, []Status{StatusOnSale, StatusPendingReview}, StatusOffShelf, "")
}

func (s *service) Approve(ctx context.Context, productID int64) (Product, error) {
	return s.transition(ctx, 0, productID, []Status{StatusPendingReview}, StatusOnSale, "")
}

func (s *service) Reject(ctx context.Context, productID int64, reason string) (Product, error) {
	reason = strings.TrimSpace(reason)
	var f fieldErrs
	checkName(&f, "reason", reason, MaxRejectReason)
	if err := f.err(); err != nil {
		return Product{}, err
	}
	return s.transition(ctx, 0, productID, []Status{StatusPendingReview}, StatusRejected, reason)
}

func (s *service) MerchantProduct(ctx context.Context, merchantID, productID int64) (Product, error) {
	if merchantID <= 0 || productID <= 0 {
		return Product{}, ErrProductNotFound
	}
	p, err := s.st.product(ctx, merchantID, productID)
	if err != nil {
		return Product{}, err
	}
	p.SKUs, err = s.st.skus(ctx, p.ID)
	return p, err
}

func (s *service) MerchantProducts(ctx context.Context, merchantID int64, status Status, limit int, before int64) ([]Product, error) {
	if merchantID <= 0 {
		return nil, errs.ErrForbidden
	}
	return s.st.products(ctx, merchantID, status, limit, before)
}

func (s *service) ReviewQueue(ctx context.Context, status Status, limit int, before int64) ([]Product, error) {
	return s.st.products(ctx, 0, status, limit, before)
}

func (s *service) PublicProduct(ctx context.Context, productID int64) (Product, error) {
	if productID <= 0 {
		return Product{}, ErrProductNotFound
	}
	d, err := s.detail.Get(ctx, detailKey(productID), func(ctx context.Context) (detailValue, error) {
		return s.loadDetail(ctx, productID)
	})
	if errors.Is(err, cache.ErrNotFound) {
		return Product{}, ErrProductNotFound
	}
	if err != nil {
		return Product{}, err
	}
	// Per request, outside the cached value: a suspension hides the merchant's products
	// within the merchant status cache's TTL without touching this cache.
	if s.merchants != nil {
		active, err := s.merchants.IsActive(ctx, d.MerchantID)
		if err != nil {
			return Product{}, err
		}
		if !active {
			return Product{}, ErrProductNotFound
		}
	}
	return d.product(), nil
}
