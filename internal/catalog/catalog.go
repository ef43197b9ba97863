// Package catalog is Mall's product catalog: the category tree with attribute templates,
// brands, and products (SPU) with their SKUs, their review lifecycle and the public
// product detail.
//
// Other modules import this package only: the Service interface, the domain types, the
// errors and the events (events.go).
package catalog

import (
	"context"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
)

// Service is what other modules and the HTTP handlers may ask of the catalog.
type Service interface {
	CreateCategory(ctx context.Context, in NewCategory) (int64, error)
	// Categories returns the whole tree, roots first, children ordered by sort then ID.
	Categories(ctx context.Context) ([]Category, error)
	// SetAttributes replaces the category's attribute templates.
	SetAttributes(ctx context.Context, categoryID int64, t Template) error
	// Attributes returns the category's attribute templates.
	Attributes(ctx context.Context, categoryID int64) (Template, error)
	CreateBrand(ctx context.Context, name string) (int64, error)

	// CreateProduct creates a draft product with its SKUs for the merchant and initializes
	// each SKU's stock after the catalog's transaction commits.
	CreateProduct(ctx context.Context, merchantID int64, in ProductInput) (Product, error)
	// UpdateProduct applies a partial update to the merchant's product. Content (title,
	// texts, brand, images, specs) changes only while draft, rejected or off_shelf; SKU
	// prices change in any status.
	UpdateProduct(ctx context.Context, merchantID, productID int64, in ProductPatch) (Product, error)
	Submit(ctx context.Context, merchantID, productID int64) (Product, error)
	OffShelf(ctx context.Context, merchantID, productID int64) (Product, error)
	MerchantProduct(ctx context.Context, merchantID, productID int64) (Product, error)
	// MerchantProducts lists the merchant's products, newest first; status "" is all.
	MerchantProducts(ctx context.Context, merchantID int64, status Status, limit int, before int64) ([]Product, error)

	// ReviewQueue lists products in a status for operators, newest first.
	ReviewQueue(ctx context.Context, status Status, limit int, before int64) ([]Product, error)
	Approve(ctx context.Context, productID int64) (Product, error)
	Reject(ctx context.Context, productID int64, reason string) (Product, error)

	// PublicProduct returns an on_sale product of an active (not suspended) merchant with
	// its SKUs' availability.
	PublicProduct(ctx context.Context, productID int64) (Product, error)

	// SaleSKUs returns the SKUs among skuIDs a buyer can order now (product on_sale,
	// merchant active) with their current prices and commission rates, by SKU ID; the
	// others are absent (checkout.go).
	SaleSKUs(ctx context.Context, skuIDs []int64) (map[int64]SaleSKU, error)
}

// NewCategory is a category to create.
type NewCategory struct {
	Name     string
	ParentID int64 // 0 for a root
	// CommissionRateBP is the platform's commission on the category's products in basis
	// points (0..MaxCommissionBP); nil: none of its own, the parent's applies (SaleSKU).
	CommissionRateBP *int
	Sort             int
}

// Category is one node of the tree.
type Category struct {
	ID       int64
	ParentID int64
	Name     string
	// CommissionRateBP is the category's own rate, nil when it inherits its parent's.
	CommissionRateBP *int
	Sort             int
	Children         []Category
}

// Attribute is one attribute of a template; Values empty means free text.
type Attribute struct {
	Name   string
	Values []string
}

// Template is a category's attributes: Spec are shown, Sale define the SKUs.
type Template struct {
	Spec []Attribute
	Sale []Attribute
}

// Status is a product's lifecycle state.
type Status string

// Product statuses.
const (
	StatusDraft         Status = "draft"
	StatusPendingReview Status = "pending_review"
	StatusOnSale        Status = "on_sale"
	StatusRejected      Status = "rejected"
	StatusOffShelf      Status = "off_shelf"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusDraft, StatusPendingReview, StatusOnSale, StatusRejected, StatusOffShelf:
		return true
	}
	return false
}

// ProductInput creates a product.
type ProductInput struct {
	Title, Subtitle, Description string
	CategoryID, BrandID          int64 // BrandID 0: none
	Images                       []string
	Specs                        map[string]string
	SKUs                         []SKUInput
}

// SKUInput is one SKU of a new product; Stock is its initial available stock.
type SKUInput struct {
	Code  string
	Attrs map[string]string
	Price int64
	Stock int64
}

// ProductPatch is a partial update; nil fields stay.
type ProductPatch struct {
	Title, Subtitle, Description *string
	BrandID                      *int64 // pointer to 0 clears the brand
	Images                       *[]string
	Specs                        *map[string]string
	// Prices sets SKU prices by SKU ID.
	Prices []SKUPrice
}

// SKUPrice is a new price for one SKU of the product.
type SKUPrice struct {
	SKUID, Price int64
}

// content reports whether the patch changes more than prices.
func (p ProductPatch) content() bool {
	return p.Title != nil || p.Subtitle != nil || p.Description != nil || p.BrandID != nil ||
		p.Images != nil || p.Specs != nil
}

// Product is an SPU with its SKUs.
type Product struct {
	ID, MerchantID, CategoryID, BrandID int64
	Title, Subtitle, Description        string
	Images                              []string
	Specs                               map[string]string
	Status                              Status
	RejectReason                        string
	PriceMin, PriceMax                  int64
	CreatedAt, UpdatedAt                time.Time
	SKUs                                []SKU
}

// SKU is one sellable variant. Available is filled for the public detail only.
type SKU struct {
	ID, ProductID, MerchantID int64
	Code                      string
	Attrs                     map[string]string
	Price                     int64
	Available                 int64
}

// Limits.
const (
	MaxSKUs           = 100
	MaxImages         = 20
	MaxSpecs          = 50
	MaxPrice          = 100_000_000_00 // 100 million yuan in fen
	MaxDescription    = 64 << 10
	MaxAttributes     = 20
	MaxAttrValues     = 100
	MaxCategoryDepth  = 5
	MaxCommissionBP   = 10000
	MaxRejectReason   = 500
	maxNameLen        = 100
	maxTitleLen       = 200
	maxCodeLen        = 64
	maxAttrLen        = 64
	maxSpecValueLen   = 500
	maxImageURLLength = 1024
)

// Errors. Codes are stable (API.md).
var (
	ErrProductNotFound  = errs.New(errs.NotFound, "catalog.product_not_found")
	ErrCategoryNotFound = errs.New(errs.NotFound, "catalog.category_not_found")
	ErrBrandExists      = errs.New(errs.Conflict, "catalog.brand_exists")
	ErrStatusConflict   = errs.New(errs.Conflict, "catalog.status_conflict")
	ErrNotEditable      = errs.New(errs.Conflict, "catalog.product_not_editable")
	ErrInvalidProduct   = errs.New(errs.Invalid, "request.validation")
)
