// Package errs defines error kinds and coded errors. Modules declare sentinel errors with
// New; the HTTP error handler maps the kind to a status and the code into problem+json.
package errs

import (
	"errors"
	"fmt"
)

// Kind classifies an error for transport mapping.
type Kind uint8

const (
	Internal Kind = iota
	Invalid
	Unauthenticated
	Forbidden
	NotFound
	Conflict
	Unprocessable
	TooManyRequests
	Unavailable
	PayloadTooLarge
	UnsupportedMedia
)

var kindNames = [...]string{"internal", "invalid", "unauthenticated", "forbidden", "not_found",
	"conflict", "unprocessable", "too_many_requests", "unavailable", "payload_too_large", "unsupported_media"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// FieldError is one validation failure.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is a coded error with a kind. Compare with errors.Is: two Errors match when their
// codes match, so a sentinel still matches after WithDetail.
type Error struct {
	Kind   Kind
	Code   string // stable, e.g. "stock.insufficient"
	Detail string
	Fields []FieldError
	// RetryAfter in seconds, for TooManyRequests.
	RetryAfter int
}

// New declares a sentinel error.
func New(kind Kind, code string) *Error { return &Error{Kind: kind, Code: code} }

func (e *Error) Error() string {
	if e.Detail != "" {
		return e.Code + ": " + e.Detail
	}
	return e.Code
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// WithDetail returns a copy carrying a human-readable detail.
func (e *Error) WithDetail(format string, args ...any) *Error {
	c := *e
	c.Detail = fmt.Sprintf(format, args...)
	return &c
}

// WithFields returns a copy carrying field errors.
func (e *Error) WithFields(fields ...FieldError) *Error {
	c := *e
	c.Fields = append([]FieldError(nil), fields...)
	return &c
}

// WithRetryAfter returns a copy carrying a retry hint in seconds.
func (e *Error) WithRetryAfter(seconds int) *Error {
	c := *e
	c.RetryAfter = seconds
	return &c
}

// As extracts the *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// KindOf returns the kind of err, Internal when err carries none.
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return Internal
}

// Common errors used by the platform layer.
var (
	ErrInvalid            = New(Invalid, "request.invalid")
	ErrValidation         = New(Invalid, "request.validation")
	ErrUnauthenticated    = New(Unauthenticated, "auth.unauthenticated")
	ErrForbidden          = New(Forbidden, "auth.forbidden")
	ErrNotFound           = New(NotFound, "not_found")
	ErrRateLimited        = New(TooManyRequests, "rate_limited")
	ErrUnsupportedMedia   = New(UnsupportedMedia, "request.unsupported_media_type")
	ErrPayloadTooLarge    = New(PayloadTooLarge, "request.too_large")
	ErrUnavailable        = New(Unavailable, "service.unavailable")
	ErrIdempotencyMissing = New(Invalid, "idempotency.key_required")
	ErrIdempotencyReused  = New(Unprocessable, "idempotency.key_reused")
	ErrIdempotencyBusy    = New(Conflict, "idempotency.in_progress")
)
