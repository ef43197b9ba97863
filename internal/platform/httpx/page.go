package httpx

import (
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/errs"
)

// Paging limits from API.md.
const (
	DefaultLimit = 20
	MaxLimit     = 100
	// maxCursorLen bounds what a client can make us decode; real cursors are a few dozen bytes.
	maxCursorLen = 1024
)

// Page is a validated ?limit=&cursor= pair.
type Page struct {
	Limit int
	// Cursor is the decoded opaque cursor, nil on the first page. Its content belongs to
	// the module that issued it (for example a created_at and an ID); treat it as untrusted
	// input when decoding it.
	Cursor []byte
}

// Fetch is how many rows to read: one more than Limit, so List can tell whether another
// page exists without a COUNT.
func (p Page) Fetch() int { return p.Limit + 1 }

// PageFrom reads ?limit= (default 20, 1..100) and ?cursor= (base64url without padding).
// Out-of-range limits are rejected rather than clamped so a client's bug shows at once.
func PageFrom(c echo.Context) (Page, error) {
	p := Page{Limit: DefaultLimit}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return Page{}, errs.ErrInvalid.WithDetail("query parameter \"limit\" must be an integer from 1 to %d", MaxLimit).
				WithFields(errs.FieldError{Field: "limit", Message: "must be an integer from 1 to " + strconv.Itoa(MaxLimit)})
		}
		p.Limit = n
	}
	if s := c.QueryParam("cursor"); s != "" {
		b, err := DecodeCursor(s)
		if err != nil {
			return Page{}, err
		}
		p.Cursor = b
	}
	return p, nil
}

// EncodeCursor makes the opaque next_cursor string from a module's cursor bytes.
func EncodeCursor(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reverses EncodeCursor; a malformed cursor is a 400 request.invalid.
func DecodeCursor(s string) ([]byte, error) {
	if len(s) > maxCursorLen {
		return nil, errInvalidCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errInvalidCursor
	}
	return b, nil
}

// IDCursor is the cursor of a list ordered by an ID (newest first): the last item's ID,
// 8 bytes big-endian. Page.BeforeID reads it back.
func IDCursor(id int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }

// IDPageFrom is PageFrom for a list ordered by ID, newest first: the page and the ID its
// cursor stands before (0 on the first page).
func IDPageFrom(c echo.Context) (Page, int64, error) {
	p, err := PageFrom(c)
	if err != nil {
		return Page{}, 0, err
	}
	before, err := p.BeforeID()
	return p, before, err
}

// BeforeID reads a cursor made by IDCursor: 0 on the first page; anything but 8 bytes of a
// positive number is a 400 request.invalid.
func (p Page) BeforeID() (int64, error) { return ParseIDCursor(p.Cursor) }

// ParseIDCursor is BeforeID on raw cursor bytes (nil: the first page, 0).
func ParseIDCursor(b []byte) (int64, error) {
	if b == nil {
		return 0, nil
	}
	if len(b) != 8 {
		return 0, errInvalidCursor
	}
	v := int64(binary.BigEndian.Uint64(b))
	if v <= 0 {
		return 0, errInvalidCursor
	}
	return v, nil
}

var errInvalidCursor = errs.ErrInvalid.WithDetail("query parameter \"cursor\" is not a cursor this API issued").
	WithFields(errs.FieldError{Field: "cursor", Message: "is malformed"})

// List is the response shape of every list endpoint: {"items":[...],"next_cursor":"..."}.
// NextCursor is empty on the last page.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// listResponse marks List for the OpenAPI builder, which documents limit and cursor on
// every route answering a List.
func (List[T]) listResponse() {}

// NewList builds a list response; items is never serialized as null.
func NewList[T any](items []T, next []byte) List[T] {
	if items == nil {
		items = []T{}
	}
	return List[T]{Items: items, NextCursor: EncodeCursor(next)}
}

// PageOf turns rows read with p.Fetch() into a page: when there is an extra row, it is
// dropped and the cursor of the last kept row becomes next_cursor.
func PageOf[T any](rows []T, p Page, cursor func(last T) []byte) List[T] {
	if p.Limit > 0 && len(rows) > p.Limit {
		rows = rows[:p.Limit]
		return NewList(rows, cursor(rows[len(rows)-1]))
	}
	return NewList(rows, nil)
}

// ListByID answers a list ordered by ID, newest first, one page of it: fetch reads up to
// limit items before the cursor's ID (0: from the newest), view turns each into its
// response and id gives a response's ID for the next cursor.
func ListByID[T, R any](c echo.Context, fetch func(before int64, limit int) ([]T, error), view func(T) R,
	id func(R) int64) error {
	p, before, err := IDPageFrom(c)
	if err != nil {
		return err
	}
	items, err := fetch(before, p.Fetch())
	if err != nil {
		return err
	}
	out := make([]R, len(items))
	for i, it := range items {
		out[i] = view(it)
	}
	return c.JSON(http.StatusOK, PageOf(out, p, func(last R) []byte { return IDCursor(id(last)) }))
}
