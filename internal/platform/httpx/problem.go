package httpx

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/errs"
)

// Problem is an RFC 9457 problem+json body with Mall's stable code.
type Problem struct {
	Type   string            `json:"type"`
	Title  string            `json:"title"`
	Status int               `json:"status"`
	Detail string            `json:"detail,omitempty"`
	Code   string            `json:"code"`
	Errors []errs.FieldError `json:"errors,omitempty"`
}

// ContentTypeProblem is the media type of error responses.
const ContentTypeProblem = "application/problem+json"

var kindStatus = map[errs.Kind]int{
	errs.Internal:         http.StatusInternalServerError,
	errs.Invalid:          http.StatusBadRequest,
	errs.Unauthenticated:  http.StatusUnauthorized,
	errs.Forbidden:        http.StatusForbidden,
	errs.NotFound:         http.StatusNotFound,
	errs.Conflict:         http.StatusConflict,
	errs.Unprocessable:    http.StatusUnprocessableEntity,
	errs.TooManyRequests:  http.StatusTooManyRequests,
	errs.Unavailable:      http.StatusServiceUnavailable,
	errs.PayloadTooLarge:  http.StatusRequestEntityTooLarge,
	errs.UnsupportedMedia: http.StatusUnsupportedMediaType,
}

// StatusOf returns the HTTP status for an error kind.
func StatusOf(k errs.Kind) int {
	if s, ok := kindStatus[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ProblemFor converts any error to the problem it is answered with. The second result is
// true when the error is unexpected (a 5xx that must be logged).
func ProblemFor(err error) (Problem, int, bool) {
	if e, ok := errs.As(err); ok {
		st := StatusOf(e.Kind)
		return Problem{
			Type:   "https://mall.dev/problems/" + e.Code,
			Title:  http.StatusText(st),
			Status: st,
			Detail: e.Detail,
			Code:   e.Code,
			Errors: e.Fields,
		}, e.RetryAfter, st >= 500 && e.Kind == errs.Internal
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code := "http." + strconv.Itoa(he.Code)
		switch he.Code {
		case http.StatusNotFound:
			code = "route.not_found"
		case http.StatusMethodNotAllowed:
			code = "route.method_not_allowed"
		case http.StatusRequestEntityTooLarge:
			code = errs.ErrPayloadTooLarge.Code
		case http.StatusUnsupportedMediaType:
			code = errs.ErrUnsupportedMedia.Code
		case http.StatusServiceUnavailable:
			code = errs.ErrUnavailable.Code
		}
		detail := ""
		if m, ok := he.Message.(string); ok && m != http.StatusText(he.Code) {
			detail = m
		}
		return Problem{Type: "https://mall.dev/problems/" + code, Title: http.StatusText(he.Code),
			Status: he.Code, Detail: detail, Code: code}, 0, he.Code >= 500
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		code := errs.ErrUnavailable.Code
		return Problem{Type: "https://mall.dev/problems/" + code, Title: http.StatusText(http.StatusServiceUnavailable),
			Status: http.StatusServiceUnavailable, Detail: "the request timed out", Code: code}, 0, false
	}
	return Problem{Type: "https://mall.dev/problems/internal", Title: http.StatusText(500),
		Status: 500, Code: "internal"}, 0, true
}

// ErrorHandler is echo's HTTPErrorHandler: the one place that turns errors into
// problem+json and the only place that logs unexpected errors (once, with the stack for
// a recovered panic). Expected errors (4xx, unavailable) are the access log's business.
func ErrorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		p, retryAfter, unexpected := ProblemFor(err)
		if unexpected {
			attrs := []slog.Attr{
				slog.String("method", c.Request().Method),
				slog.String("route", RouteOf(c)),
				slog.String("error", err.Error()),
			}
			var pe *PanicError
			if errors.As(err, &pe) {
				attrs = append(attrs, slog.String("stack", string(pe.Stack)))
			}
			log.LogAttrs(c.Request().Context(), slog.LevelError, "request failed", attrs...)
		}
		// A handler that already wrote its status cannot be answered again; the error
		// has still been logged above when it was unexpected.
		if c.Response().Committed {
			return
		}
		if retryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfter))
		}
		c.Response().Header().Set(echo.HeaderContentType, ContentTypeProblem)
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(p.Status)
			return
		}
		c.Response().WriteHeader(p.Status)
		_ = c.Echo().JSONSerializer.Serialize(c, p, "")
	}
}
