package httpx

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/errs"
)

// ID is a 64-bit identifier that travels as a JSON string of decimal digits. JavaScript
// clients lose precision above 2^53, so API.md fixes IDs as strings in both directions.
// Use it in request and response DTOs; domain types keep plain int64.
type ID int64

var (
	idType = reflect.TypeFor[ID]()

	errIDSyntax = errors.New("an ID must be a string of decimal digits without sign or leading zeros")
	errIDRange  = errors.New("an ID must fit in a signed 64-bit integer")
)

// ParseID parses the canonical decimal form of an ID. It rejects signs, spaces, leading
// zeros and values above math.MaxInt64, so every ID has exactly one spelling (cache keys,
// idempotency fingerprints and logs agree).
func ParseID(s string) (ID, error) {
	if !allDigits(s) || (len(s) > 1 && s[0] == '0') {
		return 0, errIDSyntax
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errIDRange
	}
	return ID(n), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Int64 returns the ID as the domain's int64.
func (id ID) Int64() int64 { return int64(id) }

// String returns the decimal form.
func (id ID) String() string { return strconv.FormatInt(int64(id), 10) }

// MarshalJSON writes the ID as a JSON string.
func (id ID) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 22)
	b = append(b, '"')
	b = strconv.AppendInt(b, int64(id), 10)
	return append(b, '"'), nil
}

// UnmarshalJSON accepts only a JSON string holding a canonical ID. A JSON number is
// rejected too: accepting it would let clients keep sending values that JavaScript rounds.
// null leaves the ID unchanged, as encoding/json does for other types.
func (id *ID) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	// The error is an UnmarshalTypeError so encoding/json adds the field path to it,
	// and Bind can name the field in its problem detail.
	if len(b) == 0 || b[0] != '"' {
		return &json.UnmarshalTypeError{Value: jsonKind(b), Type: idType}
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: "string", Type: idType}
	}
	v, err := ParseID(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "string " + string(b), Type: idType}
	}
	*id = v
	return nil
}

// MarshalText and UnmarshalText make IDs usable as JSON map keys and in text encodings.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses the canonical decimal form.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// UnmarshalParam lets echo's query binder (BindQuery) parse IDs strictly.
func (id *ID) UnmarshalParam(s string) error { return id.UnmarshalText([]byte(s)) }

func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "empty value"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case '"':
		return "string"
	default:
		return "number"
	}
}

// ParamID reads the path parameter name as an ID. A malformed ID is the client's mistake
// (400), not a missing object, so it answers request.invalid naming the parameter.
func ParamID(c echo.Context, name string) (ID, error) {
	id, err := ParseID(c.Param(name))
	if err != nil {
		return 0, errs.ErrInvalid.WithDetail("path parameter %q: %v", name, err)
	}
	return id, nil
}
