package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
)

// Response headers set on every limited request.
const (
	HeaderLimit     = "X-RateLimit-Limit"
	HeaderRemaining = "X-RateLimit-Remaining"
)

// authPrefix routes default to ClassAuth.
const authPrefix = "/api/v1/auth/"

// ClassFor is the class a route is limited by: its RateLimit, else "auth" under
// /api/v1/auth/, else "default".
func ClassFor(r httpx.Route) string {
	switch {
	case r.RateLimit != "":
		return r.RateLimit
	case strings.HasPrefix(r.Path, authPrefix):
		return ClassAuth
	default:
		return ClassDefault
	}
}

// ForRoute is Middleware(ClassFor(r)), or nil when rate limiting is disabled.
func (l *Limiter) ForRoute(r httpx.Route) echo.MiddlewareFunc {
	if !l.enabled {
		return nil
	}
	return l.Middleware(ClassFor(r))
}

// ValidateRoutes reports routes naming a class nobody registered; the server calls it at
// startup so a typo fails the boot instead of every request.
func (l *Limiter) ValidateRoutes(routes ...httpx.Route) error {
	for _, r := range routes {
		if c := ClassFor(r); !l.Has(c) {
			return fmt.Errorf("%w: %q on %s %s", ErrUnknownClass, c, r.Method, r.Path)
		}
	}
	return nil
}

// Middleware limits requests in class per caller (see Subject). It must run after the
// authentication middleware to key authenticated callers by user: on ClassDefault routes
// they are limited by ClassUser instead, so the users behind one NAT do not share a bucket.
// Anonymous callers from ratelimit.trusted_clients are not limited per IP at all.
// Refusals are returned as errs.ErrRateLimited with a Retry-After hint for the error handler.
func (l *Limiter) Middleware(class string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if !l.enabled {
				return next(c)
			}
			cl, key := class, Subject(c)
			if strings.HasPrefix(key, subjectUser) {
				if cl == ClassDefault {
					cl = ClassUser
				}
			} else if l.Trusted(c.RealIP()) {
				return next(c)
			}
			res, err := l.Allow(c.Request().Context(), cl, key)
			if err != nil {
				return err
			}
			if res.Source == SourceRedis || res.Source == SourceLocal {
				h := c.Response().Header()
				h.Set(HeaderLimit, strconv.Itoa(res.Limit))
				h.Set(HeaderRemaining, strconv.Itoa(res.Remaining))
			}
			if !res.Allowed {
				secs := RetryAfterSeconds(res.RetryAfter)
				return errs.ErrRateLimited.WithRetryAfter(secs).WithDetail("too many requests; retry in %d s", secs)
			}
			return next(c)
		}
	}
}

const subjectUser = "user:"

// Subject is the key a request is limited by: "user:<id>" for an authenticated caller,
// otherwise "ip:<client network>" (see ClientKey) of the client IP as echo's IP extractor
// sees it (configure trusted proxies).
func Subject(c echo.Context) string {
	if id := authn.UserID(c.Request().Context()); id != 0 {
		return subjectUser + strconv.FormatInt(id, 10)
	}
	return "ip:" + ClientKey(c.RealIP())
}

// RetryAfterSeconds rounds d up to whole seconds, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	return max(int(math.Ceil(d.Seconds())), 1)
}
