package catalog

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/user"
)

type handler struct {
	svc Service
}

func newHandler(s Service) httpx.Routes { return &handler{svc: s} }

// DTOs.

type createCategoryRequest struct {
	Name             string    `json:"name"`
	ParentID         *httpx.ID `json:"parent_id,omitempty"`
	CommissionRateBP *int      `json:"commission_rate_bp,omitempty"` // absent or null: inherits; 0 is 0 %
	Sort             int       `json:"sort,omitempty"`
}

type idResponse struct {
	ID httpx.ID `json:"id"`
}

type categoryResponse struct {
	ID               httpx.ID           `json:"id"`
	Name             string             `json:"name"`
	CommissionRateBP *int               `json:"commission_rate_bp,omitempty"` // absent: inherits
	Children         []categoryResponse `json:"children"`
}

func toCategories(cs []Category) []categoryResponse {
	out := make([]categoryResponse, 0, len(cs))
	for _, c := range cs {
		out = append(out, categoryResponse{ID: httpx.ID(c.ID), Name: c.Name,
			CommissionRateBP: c.CommissionRateBP, Children: toCategories(c.Children)})
	}
	return out
}

type attributeDTO struct {
	Name   string   `json:"name"`
	Values []string `json:"values,omitempty"`
}

type templateDTO struct {
	Spec []attributeDTO `json:"spec"`
	Sale []attributeDTO `json:"sale"`
}

func fromAttrs(as []attributeDTO) []Attribute {
	out := make([]Attribute, 0, len(as))
	for _, a := range as {
		out = append(out, Attribute(a))
	}
	return out
}

func toAttrs(as []Attribute) []attributeDTO {
	out := make([]attributeDTO, 0, len(as))
	for _, a := range as {
		out = append(out, attributeDTO(a))
	}
	return out
}

type createBrandRequest struct {
	Name string `json:"name"`
}

type skuRequest struct {
	Code  string            `json:"code"`
	Attrs map[string]string `json:"attrs"`
	Price int64             `json:"price"`
	Stock int64             `json:"stock"`
}

type createProductRequest struct {
	Title       string            `json:"title"`
	Subtitle    string            `json:"subtitle,omitempty"`
	Description string            `json:"description,omitempty"`
	CategoryID  httpx.ID          `json:"category_id"`
	BrandID     *httpx.ID         `json:"brand_id,omitempty"`
	Images      []string          `json:"images,omitempty"`
	Specs       map[string]string `json:"specs,omitempty"`
	SKUs        []skuRequest      `json:"skus"`
}

type patchProductRequest struct {
	Title       *string            `json:"title,omitempty"`
	Subtitle    *string            `json:"subtitle,omitempty"`
	Description *string            `json:"description,omitempty"`
	BrandID     *httpx.ID          `json:"brand_id,omitempty"`
	Images      *[]string          `json:"images,omitempty"`
	Specs       *map[string]string `json:"specs,omitempty"`
	// SKUs changes prices: [{id, price}]; allowed in any status.
	SKUs []skuPriceRequest `json:"skus,omitempty"`
}

type skuPriceRequest struct {
	ID    httpx.ID `json:"id"`
	Price int64    `json:"price"`
}

type rejectRequest struct {
	Reason string `json:"reason"`
}

type skuResponse struct {
	ID    httpx.ID          `json:"id"`
	Code  string            `json:"code"`
	Attrs map[string]string `json:"attrs"`
	Price int64             `json:"price"`
}

type createdResponse struct {
	ID     httpx.ID      `json:"id"`
	Status Status        `json:"status"`
	SKUs   []skuResponse `json:"skus"`
}

// productResponse is the merchant's and operator's view of a product.
type productResponse struct {
	ID           httpx.ID          `json:"id"`
	MerchantID   httpx.ID          `json:"merchant_id"`
	CategoryID   httpx.ID          `json:"category_id"`
	BrandID      *httpx.ID         `json:"brand_id"`
	Title        string            `json:"title"`
	Subtitle     string            `json:"subtitle"`
	Description  string            `json:"description,omitempty"`
	Images       []string          `json:"images"`
	Specs        map[string]string `json:"specs"`
	Status       Status            `json:"status"`
	RejectReason string            `json:"reject_reason"`
	PriceMin     int64             `json:"price_min"`
	PriceMax     int64             `json:"price_max"`
	Currency     string            `json:"currency"`
	CreatedAt    time.Time         `json:"created_at"`
	UpdatedAt    time.Time         `json:"updated_at"`
	SKUs         []skuResponse     `json:"skus,omitempty"`
}

type publicSKU struct {
	ID        httpx.ID          `json:"id"`
	Attrs     map[string]string `json:"attrs"`
	Price     int64             `json:"price"`
	Available int64             `json:"available"`
}

type publicProduct struct {
	ID          httpx.ID          `json:"id"`
	Title       string            `json:"title"`
	Subtitle    string            `json:"subtitle"`
	Description string            `json:"description"`
	Images      []string          `json:"images"`
	Specs       map[string]string `json:"specs"`
	MerchantID  httpx.ID          `json:"merchant_id"`
	CategoryID  httpx.ID          `json:"category_id"`
	BrandID     *httpx.ID         `json:"brand_id"`
	PriceMin    int64             `json:"price_min"`
	PriceMax    int64             `json:"price_max"`
	Currency    string            `json:"currency"`
	SKUs        []publicSKU       `json:"skus"`
}

func optID(id int64) *httpx.ID {
	if id == 0 {
		return nil
	}
	v := httpx.ID(id)
	return &v
}

func toSKUs(ks []SKU) []skuResponse {
	out := make([]skuResponse, 0, len(ks))
	for _, k := range ks {
		out = append(out, skuResponse{ID: httpx.ID(k.ID), Code: k.Code, Attrs: nonNilMap(k.Attrs), Price: k.Price})
	}
	return out
}

func toProduct(p Product, withDetail bool) productResponse {
	r := productResponse{ID: httpx.ID(p.ID), MerchantID: httpx.ID(p.MerchantID), CategoryID: httpx.ID(p.CategoryID),
		BrandID: optID(p.BrandID), Title: p.Title, Subtitle: p.Subtitle, Images: nonNilSlice(p.Images),
		Specs: nonNilMap(p.Specs), Status: p.Status, RejectReason: p.RejectReason, PriceMin: p.PriceMin,
		PriceMax: p.PriceMax, Currency: "CNY", CreatedAt: p.CreatedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC()}
	if withDetail {
		r.Description = p.Description
		r.SKUs = toSKUs(p.SKUs)
	}
	return r
}

// Routes implements httpx.Routes.
func (h *handler) Routes() []httpx.Route {
	admin := []echo.MiddlewareFunc{user.RequirePermission(user.PermCatalogManage)}
	review := []echo.MiddlewareFunc{user.RequirePermission(user.PermProductsReview)}
	merchant := []echo.MiddlewareFunc{user.RequirePermission(user.PermMerchantProducts)}
	at, mt, pt := []string{"admin"}, []string{"merchant"}, []string{"catalog"}
	return []httpx.Route{
		{Method: http.MethodPost, Path: "/api/v1/admin/categories", Handler: h.createCategory,
			Summary: "Create a category", Tags: at, Request: createCategoryRequest{}, Response: idResponse{},
			Status: http.StatusCreated, Auth: true, Middleware: admin},
		{Method: http.MethodPut, Path: "/api/v1/admin/categories/:id/attributes", Handler: h.setAttributes,
			Summary: "Replace a category's attribute templates (spec and sale attributes)", Tags: at,
			Request: templateDTO{}, Response: templateDTO{}, Auth: true, Middleware: admin},
		{Method: http.MethodGet, Path: "/api/v1/categories/:id/attributes", Handler: h.attributes,
			Summary: "A category's attribute templates", Tags: pt, Response: templateDTO{}},
		{Method: http.MethodGet, Path: "/api/v1/categories", Handler: h.categories,
			Summary: "The category tree", Tags: pt, Response: []categoryResponse{}},
		{Method: http.MethodPost, Path: "/api/v1/admin/brands", Handler: h.createBrand,
			Summary: "Create a brand", Tags: at, Request: createBrandRequest{}, Response: idResponse{},
			Status: http.StatusCreated, Auth: true, Middleware: admin},

		{Method: http.MethodPost, Path: "/api/v1/merchant/products", Handler: h.createProduct,
			Summary: "Create a draft product with its SKUs", Tags: mt, Request: createProductRequest{},
			Response: createdResponse{}, Status: http.StatusCreated, Auth: true, Middleware: merchant},
		{Method: http.MethodPatch, Path: "/api/v1/merchant/products/:id", Handler: h.patchProduct,
			Summary: "Edit a product (content while draft, rejected or off_shelf; SKU prices always)", Tags: mt, Request: patchProductRequest{},
			Response: productResponse{}, Auth: true, Middleware: merchant},
		{Method: http.MethodPost, Path: "/api/v1/merchant/products/:id/submit", Handler: h.submit,
			Summary: "Submit a product for review", Tags: mt, Response: productResponse{}, Auth: true, Middleware: merchant},
		{Method: http.MethodPost, Path: "/api/v1/merchant/products/:id/off-shelf", Handler: h.offShelf,
			Summary: "Take a product off shelf", Tags: mt, Response: productResponse{}, Auth: true, Middleware: merchant},
		{Method: http.MethodGet, Path: "/api/v1/merchant/products", Handler: h.merchantProducts,
			Summary: "The merchant's products", Tags: mt, Query: statusQuery{},
			Response: httpx.List[productResponse]{}, Auth: true, Middleware: merchant},
		{Method: http.MethodGet, Path: "/api/v1/merchant/products/:id", Handler: h.merchantProduct,
			Summary: "One of the merchant's products with its SKUs", Tags: mt, Response: productResponse{},
			Auth: true, Middleware: merchant},

		{Method: http.MethodGet, Path: "/api/v1/admin/products", Handler: h.reviewQueue,
			Summary: "Products by status for review", Tags: at, Query: statusQuery{},
			Response: httpx.List[productResponse]{}, Auth: true, Middleware: review},
		{Method: http.MethodPost, Path: "/api/v1/admin/products/:id/approve", Handler: h.approve,
			Summary: "Approve a product: on_sale", Tags: at, Response: productResponse{}, Auth: true, Middleware: review},
		{Method: http.MethodPost, Path: "/api/v1/admin/products/:id/reject", Handler: h.reject,
			Summary: "Reject a product with a reason", Tags: at, Request: rejectRequest{},
			Response: productResponse{}, Auth: true, Middleware: review},

		{Method: http.MethodGet, Path: "/api/v1/products/:id", Handler: h.publicProduct,
			Summary: "An on-sale product with its SKUs and availability (cached; availability follows stock changes within seconds)", Tags: pt, Response: publicProduct{}},
	}
}

type statusQuery struct {
	Status string `query:"status"`
}

func (h *handler) createCategory(c echo.Context) error {
	var in createCategoryRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	nc := NewCategory{Name: in.Name, CommissionRateBP: in.CommissionRateBP, Sort: in.Sort}
	if in.ParentID != nil {
		nc.ParentID = in.ParentID.Int64()
	}
	id, err := h.svc.CreateCategory(c.Request().Context(), nc)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, idResponse{ID: httpx.ID(id)})
}

func (h *handler) categories(c echo.Context) error {
	cs, err := h.svc.Categories(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toCategories(cs))
}

func (h *handler) setAttributes(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	var in templateDTO
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	t := Template{Spec: fromAttrs(in.Spec), Sale: fromAttrs(in.Sale)}
	if err := h.svc.SetAttributes(c.Request().Context(), id.Int64(), t); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, templateDTO{Spec: toAttrs(t.Spec), Sale: toAttrs(t.Sale)})
}

func (h *handler) attributes(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	t, err := h.svc.Attributes(c.Request().Context(), id.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, templateDTO{Spec: toAttrs(t.Spec), Sale: toAttrs(t.Sale)})
}

func (h *handler) createBrand(c echo.Context) error {
	var in createBrandRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	id, err := h.svc.CreateBrand(c.Request().Context(), in.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, idResponse{ID: httpx.ID(id)})
}

func (h *handler) createProduct(c echo.Context) error {
	ctx := c.Request().Context()
	merchantID, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	var in createProductRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	pi := ProductInput{Title: in.Title, Subtitle: in.Subtitle, Description: in.Description,
		CategoryID: in.CategoryID.Int64(), Images: in.Images, Specs: in.Specs}
	if in.BrandID != nil {
		pi.BrandID = in.BrandID.Int64()
	}
	for _, k := range in.SKUs {
		pi.SKUs = append(pi.SKUs, SKUInput(k))
	}
	p, err := h.svc.CreateProduct(ctx, merchantID, pi)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, createdResponse{ID: httpx.ID(p.ID), Status: p.Status, SKUs: toSKUs(p.SKUs)})
}

func (h *handler) patchProduct(c echo.Context) error {
	ctx := c.Request().Context()
	merchantID, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	var in patchProductRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	patch := ProductPatch{Title: in.Title, Subtitle: in.Subtitle, Description: in.Description,
		Images: in.Images, Specs: in.Specs}
	if in.BrandID != nil {
		b := in.BrandID.Int64()
		patch.BrandID = &b
	}
	for _, k := range in.SKUs {
		patch.Prices = append(patch.Prices, SKUPrice{SKUID: k.ID.Int64(), Price: k.Price})
	}
	p, err := h.svc.UpdateProduct(ctx, merchantID, id.Int64(), patch)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toProduct(p, true))
}

func (h *handler) merchantAction(c echo.Context, act func(merchantID, id int64) (Product, error)) error {
	merchantID, err := user.MerchantFrom(c.Request().Context())
	if err != nil {
		return err
	}
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	p, err := act(merchantID, id.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toProduct(p, true))
}

func (h *handler) submit(c echo.Context) error {
	return h.merchantAction(c, func(m, id int64) (Product, error) { return h.svc.Submit(c.Request().Context(), m, id) })
}

func (h *handler) offShelf(c echo.Context) error {
	return h.merchantAction(c, func(m, id int64) (Product, error) { return h.svc.OffShelf(c.Request().Context(), m, id) })
}

func (h *handler) merchantProduct(c echo.Context) error {
	return h.merchantAction(c, func(m, id int64) (Product, error) {
		return h.svc.MerchantProduct(c.Request().Context(), m, id)
	})
}

// listArgs reads ?status= (all when empty, unless def is set), ?limit= and ?cursor=.
func listArgs(c echo.Context, def Status) (Status, httpx.Page, int64, error) {
	st := Status(c.QueryParam("status"))
	if st == "" {
		st = def
	}
	if st != "" && !st.Valid() {
		return "", httpx.Page{}, 0, errs.ErrValidation.WithDetail("unknown status").
			WithFields(errs.FieldError{Field: "status", Message: "is not a product status"})
	}
	p, err := httpx.PageFrom(c)
	if err != nil {
		return "", httpx.Page{}, 0, err
	}
	var before int64
	if p.Cursor != nil {
		before, err = strconv.ParseInt(string(p.Cursor), 10, 64)
		if err != nil || before <= 0 {
			return "", httpx.Page{}, 0, errs.ErrInvalid.WithDetail("query parameter \"cursor\" is not a cursor this API issued").
				WithFields(errs.FieldError{Field: "cursor", Message: "is malformed"})
		}
	}
	return st, p, before, nil
}

func pageOf(ps []Product, p httpx.Page) httpx.List[productResponse] {
	rows := make([]productResponse, 0, len(ps))
	for _, x := range ps {
		rows = append(rows, toProduct(x, false))
	}
	return httpx.PageOf(rows, p, func(last productResponse) []byte { return []byte(last.ID.String()) })
}

func (h *handler) merchantProducts(c echo.Context) error {
	ctx := c.Request().Context()
	merchantID, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	st, p, before, err := listArgs(c, "")
	if err != nil {
		return err
	}
	ps, err := h.svc.MerchantProducts(ctx, merchantID, st, p.Fetch(), before)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(ps, p))
}

func (h *handler) reviewQueue(c echo.Context) error {
	st, p, before, err := listArgs(c, StatusPendingReview)
	if err != nil {
		return err
	}
	ps, err := h.svc.ReviewQueue(c.Request().Context(), st, p.Fetch(), before)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(ps, p))
}

func (h *handler) approve(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	p, err := h.svc.Approve(c.Request().Context(), id.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toProduct(p, true))
}

func (h *handler) reject(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	var in rejectRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	p, err := h.svc.Reject(c.Request().Context(), id.Int64(), in.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toProduct(p, true))
}

func (h *handler) publicProduct(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	p, err := h.svc.PublicProduct(c.Request().Context(), id.Int64())
	if err != nil {
		return err
	}
	out := publicProduct{ID: httpx.ID(p.ID), Title: p.Title, Subtitle: p.Subtitle, Description: p.Description,
		Images: nonNilSlice(p.Images), Specs: nonNilMap(p.Specs), MerchantID: httpx.ID(p.MerchantID),
		CategoryID: httpx.ID(p.CategoryID), BrandID: optID(p.BrandID), PriceMin: p.PriceMin,
		PriceMax: p.PriceMax, Currency: "CNY", SKUs: make([]publicSKU, 0, len(p.SKUs))}
	for _, k := range p.SKUs {
		out.SKUs = append(out.SKUs, publicSKU{ID: httpx.ID(k.ID), Attrs: nonNilMap(k.Attrs), Price: k.Price, Available: k.Available})
	}
	return c.JSON(http.StatusOK, out)
}
