package httpx

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

var validMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// Register attaches every route to e with its own middleware. It refuses malformed routes
// and duplicates: echo would silently let the later one win, and the OpenAPI document
// would then describe a handler that never runs.
func Register(e *echo.Echo, routes []Route) error {
	seen := make(map[string]bool, len(routes))
	var problems []error
	for _, r := range routes {
		key := r.Method + " " + r.Path
		switch {
		case !validMethods[r.Method]:
			problems = append(problems, fmt.Errorf("route %s: method must be an upper-case HTTP method", key))
			continue
		case !strings.HasPrefix(r.Path, "/"):
			problems = append(problems, fmt.Errorf("route %s: path must start with /", key))
			continue
		case r.Handler == nil:
			problems = append(problems, fmt.Errorf("route %s: handler is nil", key))
			continue
		case seen[r.Method+" "+shape(r.Path)]:
			problems = append(problems, fmt.Errorf("route %s: registered twice", key))
			continue
		}
		seen[r.Method+" "+shape(r.Path)] = true
		e.Add(r.Method, r.Path, r.Handler, r.Middleware...)
	}
	return errors.Join(problems...)
}

// shape drops parameter names: echo's router treats /a/:id and /a/:oid as one route.
func shape(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") {
			segs[i] = ":"
		}
	}
	return strings.Join(segs, "/")
}

// RouteMiddleware derives middleware for each module route from its metadata (RateLimit,
// Idempotent, Auth), for concerns that differ per route: a rate-limit class, the
// idempotency guard. Contributed through the fx group "route_middleware" (see
// AsRouteMiddleware). Derived middleware runs, by ascending Order, after the global chain
// and before the route's own Middleware. Operational routes (/healthz, /readyz, /metrics,
// /openapi.json, /docs) get none, so probes are never limited or authenticated.
type RouteMiddleware struct {
	Name  string
	Order int
	// For returns the middleware for r, or nil when r needs none.
	For func(r Route) echo.MiddlewareFunc
	// Validate, when set, checks the whole route table at startup (say, a RateLimit naming
	// an unknown class) so a typo fails the boot instead of requests.
	Validate func(routes []Route) error
}

// applyRouteMiddleware returns copies of routes with the derived middleware prepended.
func applyRouteMiddleware(routes []Route, rms []RouteMiddleware) ([]Route, error) {
	if len(rms) == 0 {
		return routes, nil
	}
	rms = slices.Clone(rms)
	slices.SortStableFunc(rms, func(a, b RouteMiddleware) int {
		return cmp.Or(cmp.Compare(a.Order, b.Order), cmp.Compare(a.Name, b.Name))
	})
	var problems []error
	for _, rm := range rms {
		if rm.For == nil {
			problems = append(problems, fmt.Errorf("route middleware %q: For is nil", rm.Name))
			continue
		}
		if rm.Validate != nil {
			if err := rm.Validate(routes); err != nil {
				problems = append(problems, fmt.Errorf("route middleware %q: %w", rm.Name, err))
			}
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	out := make([]Route, len(routes))
	for i, r := range routes {
		var mws []echo.MiddlewareFunc
		for _, rm := range rms {
			if mw := rm.For(r); mw != nil {
				mws = append(mws, mw)
			}
		}
		r.Middleware = append(mws, r.Middleware...)
		out[i] = r
	}
	return out, nil
}

// Collect flattens the routes of every Routes provider, in order.
func Collect(providers []Routes) []Route {
	var out []Route
	for _, p := range providers {
		if p == nil {
			continue
		}
		out = append(out, p.Routes()...)
	}
	return out
}
