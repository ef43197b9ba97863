package errs_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/mallhq/mall/internal/platform/errs"
)

func TestSentinelsMatchThroughCopiesAndWrapping(t *testing.T) {
	notFound := errs.New(errs.NotFound, "order.not_found")
	err := fmt.Errorf("load: %w", notFound.WithDetail("order %d", 7).WithFields(errs.FieldError{Field: "id", Message: "bad"}))
	if !errors.Is(err, notFound) {
		t.Fatal("a detailed copy must still match its sentinel")
	}
	if errors.Is(err, errs.New(errs.NotFound, "user.not_found")) {
		t.Fatal("different codes must not match")
	}
	e, ok := errs.As(err)
	if !ok || e.Kind != errs.NotFound || e.Detail != "order 7" || len(e.Fields) != 1 || e.Error() != "order.not_found: order 7" {
		t.Fatalf("As: %+v %v", e, ok)
	}
	if notFound.Detail != "" || notFound.Fields != nil {
		t.Fatal("WithDetail/WithFields must not modify the sentinel")
	}
	if errs.KindOf(errors.New("plain")) != errs.Internal || errs.KindOf(err) != errs.NotFound {
		t.Fatal("KindOf")
	}
	if r := errs.ErrRateLimited.WithRetryAfter(3); r.RetryAfter != 3 || errs.ErrRateLimited.RetryAfter != 0 {
		t.Fatal("WithRetryAfter")
	}
	if errs.Conflict.String() != "conflict" || errs.Kind(200).String() != "kind(200)" {
		t.Fatal("Kind.String")
	}
}
