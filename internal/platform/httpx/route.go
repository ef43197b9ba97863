package httpx

import (
	"github.com/labstack/echo/v4"
	"go.uber.org/fx"
)

// Route is one HTTP endpoint. Modules describe their routes with it; the server registers
// them and builds /openapi.json from the same table, so the document cannot drift.
type Route struct {
	Method  string
	Path    string // echo syntax: /api/v1/orders/:id
	Handler echo.HandlerFunc
	// Middleware runs after the global chain (auth, permissions, idempotency, rate limits).
	Middleware []echo.MiddlewareFunc

	// OpenAPI metadata.
	Summary string
	Tags    []string
	// Request and Response are zero values of the JSON body types (nil when none).
	// A Response of type List[T] also documents ?limit= and ?cursor=.
	Request  any
	Response any
	// Query is the zero value of a struct whose `query` tags name the query parameters
	// (the struct BindQuery fills); nil when none.
	Query any
	// Produces is the success media type when it is not application/json.
	Produces string
	// Status is the success status (default 200).
	Status int
	// Auth is true when the route needs a bearer token.
	Auth bool
	// Idempotent is true when the route requires an Idempotency-Key header.
	Idempotent bool
	// RateLimit names the limit class ("auth", "default", or a module's own).
	RateLimit string
}

// Routes is implemented by every module's HTTP handler.
type Routes interface {
	Routes() []Route
}

// AsRoutes annotates a constructor returning Routes into the "routes" fx group:
//
//	fx.Provide(httpx.AsRoutes(newHandler))
func AsRoutes(f any) any {
	return fx.Annotate(f, fx.As(new(Routes)), fx.ResultTags(`group:"routes"`))
}
