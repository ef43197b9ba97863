package catalog

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/catalog/search"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/user"
)

type searchHandler struct {
	rt *searchRuntime
}

func newSearchHandler(rt *searchRuntime) httpx.Routes { return &searchHandler{rt: rt} }

// searchQuery documents the GET /api/v1/search parameters; search.ParseQuery reads them.
type searchQuery struct {
	Q          string `query:"q"`
	CategoryID string `query:"category_id"`
	BrandID    string `query:"brand_id"`
	MerchantID string `query:"merchant_id"`
	PriceMin   string `query:"price_min"`
	PriceMax   string `query:"price_max"`
	Sort       string `query:"sort"`
	Limit      string `query:"limit"`
	Cursor     string `query:"cursor"`
}

type searchItem struct {
	ID         httpx.ID `json:"id"`
	Title      string   `json:"title"`
	PriceMin   int64    `json:"price_min"`
	Currency   string   `json:"currency"`
	MerchantID httpx.ID `json:"merchant_id"`
}

type searchFacet struct {
	ID    httpx.ID `json:"id"`
	Count int      `json:"count"`
}

type searchFacets struct {
	Category []searchFacet `json:"category"`
	Brand    []searchFacet `json:"brand"`
}

type searchResponse struct {
	Items      []searchItem `json:"items"`
	Total      int          `json:"total"`
	Facets     searchFacets `json:"facets"`
	NextCursor string       `json:"next_cursor"`
}

type reindexResponse struct {
	// Status is "started", or "running" when a rebuild was already in progress.
	Status string `json:"status"`
	Engine string `json:"engine"`
}

// Routes implements httpx.Routes.
func (h *searchHandler) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: http.MethodGet, Path: "/api/v1/search", Handler: h.search,
			Summary: "Search on-sale products by keyword, category (with descendants), brand, merchant and price (eventually consistent: seconds)",
			Tags:    []string{"catalog"}, Query: searchQuery{}, Response: searchResponse{}},
		{Method: http.MethodPost, Path: "/api/v1/admin/search/reindex", Handler: h.reindex,
			Summary: "Rebuild this replica's search index from MySQL in the background",
			Tags:    []string{"admin"}, Response: reindexResponse{}, Status: http.StatusAccepted, Auth: true,
			Middleware: []echo.MiddlewareFunc{user.RequirePermission(user.PermCatalogManage)}},
	}
}

func facets(fs []search.Facet) []searchFacet {
	out := make([]searchFacet, 0, len(fs))
	for _, f := range fs {
		out = append(out, searchFacet{ID: httpx.ID(f.ID), Count: f.Count})
	}
	return out
}

func (h *searchHandler) search(c echo.Context) error {
	q, err := search.ParseQuery(c.QueryParams())
	if err != nil {
		return err
	}
	res, err := h.rt.idx.Search(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := searchResponse{Items: make([]searchItem, 0, len(res.Items)), Total: res.Total,
		Facets:     searchFacets{Category: facets(res.Facets.Category), Brand: facets(res.Facets.Brand)},
		NextCursor: res.NextCursor}
	for _, it := range res.Items {
		out.Items = append(out.Items, searchItem{ID: httpx.ID(it.ID), Title: it.Title, PriceMin: it.PriceMin,
			Currency: "CNY", MerchantID: httpx.ID(it.MerchantID)})
	}
	return c.JSON(http.StatusOK, out)
}

func (h *searchHandler) reindex(c echo.Context) error {
	status := "started"
	if !h.rt.startRebuild("admin") {
		status = "running"
	}
	return c.JSON(http.StatusAccepted, reindexResponse{Status: status, Engine: h.rt.engine})
}
