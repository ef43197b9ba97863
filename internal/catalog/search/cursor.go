package search

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
)

// cursor is the position after the last hit of a page. On the wire it is base64url (no
// padding) of JSON, e.g. {"s":"price_asc","h":123,"k":1999,"id":42}: the effective sort, the
// fingerprint of the keyword and filters, the last hit's sort value (f = score for relevance,
// k = price_min in fen or created_at in Unix ms) and its ID as the tie-breaker. Both engines
// turn it into search_after. Clients must treat it as opaque.
type cursor struct {
	Sort  Sort    `json:"s"`
	Hash  uint32  `json:"h"`
	Score float64 `json:"f,omitempty"`
	Key   int64   `json:"k,omitempty"`
	ID    int64   `json:"id"`
}

const maxCursorLen = 512

func encodeCursor(c cursor) string {
	b, err := json.Marshal(c)
	if err != nil { // only NaN/Inf scores, which engines never produce
		panic("search: encode cursor: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	bad := func() (cursor, error) { return cursor{}, badQuery("cursor", "is not a cursor this search returned") }
	if len(s) > maxCursorLen {
		return bad()
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return bad()
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c cursor
	if err := dec.Decode(&c); err != nil {
		return bad()
	}
	if _, err := dec.Token(); err != io.EOF { // trailing data
		return bad()
	}
	if !c.Sort.valid() || c.ID <= 0 || !validScore(c.Score) {
		return bad()
	}
	switch c.Sort {
	case SortRelevance:
		if c.Key != 0 {
			return bad()
		}
	case SortPriceAsc, SortPriceDesc:
		if c.Score != 0 || c.Key < 0 || c.Key > MaxPrice {
			return bad()
		}
	case SortNewest:
		if c.Score != 0 || c.Key < -MaxPrice || c.Key > MaxPrice {
			return bad()
		}
	}
	return c, nil
}
