package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/text"
)

// defaultBodyLimit applies when Bind runs outside NewEcho's chain (tests, other servers),
// so an unbounded body can never be read into memory.
const defaultBodyLimit int64 = 1 << 20

// errBindTarget is a programming error: Bind needs a non-nil pointer.
var errBindTarget = errors.New("httpx: Bind target must be a non-nil pointer")

// Bind decodes the JSON request body into v and validates it with its `validate` tags.
//
// Failures are client errors with stable codes: a Content-Type other than
// application/json is 415 request.unsupported_media_type; an empty body, malformed JSON,
// an unknown field (clients must not set server-owned fields), a wrongly typed field or
// data after the JSON value are 400 request.invalid naming the problem; a body over the
// limit is 413 request.too_large; failed validation is 400 request.validation with one
// {field, message} per failure, using JSON field names.
func Bind(c echo.Context, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errBindTarget
	}
	req := c.Request()
	if err := checkJSONContentType(req.Header.Get(echo.HeaderContentType)); err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	if err := decodeJSON(body, v); err != nil {
		return err
	}
	return Validate(v)
}

func checkJSONContentType(ct string) error {
	if ct == "" {
		return errs.ErrUnsupportedMedia.WithDetail("Content-Type must be application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != echo.MIMEApplicationJSON {
		return errs.ErrUnsupportedMedia.WithDetail("Content-Type must be application/json, got %q", text.Ellipsis(ct, 100))
	}
	// JSON is UTF-8 (RFC 8259); a client declaring another charset would be misread.
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return errs.ErrUnsupportedMedia.WithDetail("charset must be utf-8, got %q", text.Ellipsis(cs, 40))
	}
	return nil
}

// readBody reads the whole body under the limit. Reading before decoding makes an
// oversized body a 413 even when its first bytes are already malformed.
func readBody(c echo.Context) ([]byte, error) {
	req := c.Request()
	if req.Body == nil || req.Body == http.NoBody {
		return nil, errEmptyBody
	}
	limit := bodyLimitOf(c)
	body, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe), int64(len(body)) > limit:
		return nil, errs.ErrPayloadTooLarge.WithDetail("the request body exceeds %d bytes", limit)
	case err != nil:
		// The client went away or sent a broken chunked body.
		return nil, errs.ErrInvalid.WithDetail("the request body could not be read")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errEmptyBody
	}
	return body, nil
}

var errEmptyBody = errs.ErrInvalid.WithDetail("the request body is empty; a JSON object is required")

func decodeJSON(body []byte, v any) error {
	if !utf8.Valid(body) {
		return errs.ErrInvalid.WithDetail("the request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// Decode stops after the first value; anything but whitespace after it is a second
	// document or garbage the client did not mean to send.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errs.ErrInvalid.WithDetail("unexpected data after the JSON value at offset %d", dec.InputOffset())
	}
	return duplicateKeys(body)
}

// duplicateKeys refuses an object with a key twice: encoding/json keeps the last one,
// while a proxy, a WAF or a signature check in front may have read the first, so the two
// would act on different requests. body is valid JSON (it decoded).
func duplicateKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	// One frame per open object or array: an object's keys seen so far (nil for an array)
	// and whether the next token is a key.
	type frame struct {
		keys   map[string]bool
		object bool
		key    bool
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return jsonError(err)
		}
		top := len(stack) - 1
		if top >= 0 && stack[top].object && stack[top].key && tok != json.Delim('}') {
			k, _ := tok.(string)
			if stack[top].keys[k] {
				return errs.ErrInvalid.WithDetail("key %q appears twice in one object", text.Ellipsis(k, 100)).
					WithFields(errs.FieldError{Field: text.Ellipsis(k, 100), Message: "appears twice"})
			}
			stack[top].keys[k] = true
			stack[top].key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{keys: map[string]bool{}, object: true, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:top]
		}
		// A value ended: in an object the next token is a key again.
		if n := len(stack) - 1; n >= 0 && stack[n].object {
			stack[n].key = true
		}
	}
}

// jsonError turns an encoding/json error into a problem detail a client can act on.
func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return errs.ErrInvalid.WithDetail("malformed JSON at offset %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return errs.ErrInvalid.WithDetail("the request body must be %s", describeType(typ.Type))
		}
		msg := "must be " + describeType(typ.Type)
		return errs.ErrInvalid.WithDetail("field %q %s", field, msg).
			WithFields(errs.FieldError{Field: field, Message: msg})
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errs.ErrInvalid.WithDetail("malformed JSON: the body ends in the middle of a value")
	}
	// DisallowUnknownFields reports `json: unknown field "x"` without a typed error.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field := strings.Trim(name, `"`)
		return errs.ErrInvalid.WithDetail("unknown field %s", text.Ellipsis(name, 100)).
			WithFields(errs.FieldError{Field: text.Ellipsis(field, 100), Message: "is not a known field"})
	}
	return errs.ErrInvalid.WithDetail("malformed JSON: %s", text.Ellipsis(strings.TrimPrefix(err.Error(), "json: "), 200))
}

func describeType(t reflect.Type) string {
	if t == nil {
		return "a valid value"
	}
	if t == idType {
		return "an ID: a string of decimal digits"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	default:
		return "a valid " + t.String()
	}
}

// BindQuery binds query parameters into v by its `query` tags (echo's binder) and
// validates it like Bind. Use it for filters such as ?status=.
func BindQuery(c echo.Context, v any) error {
	if err := (&echo.DefaultBinder{}).BindQueryParams(c, v); err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			if m, ok := he.Message.(string); ok {
				return errs.ErrInvalid.WithDetail("query parameters: %s", text.Ellipsis(m, 200))
			}
		}
		return errs.ErrInvalid.WithDetail("query parameters are malformed")
	}
	return Validate(v)
}

var validate = newValidator()

func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	// Report JSON (or query) names, the ones the client sent, not Go field names.
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		for _, key := range []string{"json", "query"} {
			name, _, _ := strings.Cut(f.Tag.Get(key), ",")
			if name == "-" {
				return ""
			}
			if name != "" {
				return name
			}
		}
		return ""
	})
	return v
}

// Validate checks v's `validate` tags (go-playground/validator) and returns a 400
// request.validation problem listing every failing field, or nil. Values that are not
// structs are not validated.
func Validate(v any) error {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	err := validate.Struct(v)
	if err == nil {
		return nil
	}
	var ves validator.ValidationErrors
	if !errors.As(err, &ves) {
		// InvalidValidationError: a nil pointer; nothing a client can fix.
		return fmt.Errorf("validate: %w", err)
	}
	fields := make([]errs.FieldError, 0, len(ves))
	for _, fe := range ves {
		fields = append(fields, errs.FieldError{Field: fieldPath(fe), Message: fieldMessage(fe)})
	}
	names := make([]string, 0, len(fields))
	for _, f := range fields {
		names = append(names, f.Field)
	}
	return errs.ErrValidation.WithDetail("invalid fields: %s", strings.Join(names, ", ")).WithFields(fields...)
}

// fieldPath drops the Go type name validator puts first: "createRequest.items[0].sku_id"
// becomes "items[0].sku_id".
func fieldPath(fe validator.FieldError) string {
	ns := fe.Namespace()
	if _, rest, ok := strings.Cut(ns, "."); ok {
		return rest
	}
	return fe.Field()
}

func fieldMessage(fe validator.FieldError) string {
	kind := fe.Kind()
	isNum := kind >= reflect.Int && kind <= reflect.Float64
	isColl := kind == reflect.Slice || kind == reflect.Map || kind == reflect.Array
	unit := func(n string) string {
		switch {
		case kind == reflect.String:
			return n + " characters"
		case isColl:
			return n + " items"
		default:
			return n
		}
	}
	p := fe.Param()
	switch fe.Tag() {
	case "required", "required_if", "required_unless", "required_with", "required_without":
		return "is required"
	case "email":
		return "must be a valid email address"
	case "url":
		return "must be a valid URL"
	case "http_url":
		return "must be an http:// or https:// URL"
	case "e164":
		return "must be a phone number in E.164 format (+8613800000000)"
	case "oneof":
		return "must be one of: " + strings.Join(strings.Fields(p), ", ")
	case "len":
		return "must be exactly " + unit(p)
	case "min", "gte":
		if isNum {
			return "must be at least " + p
		}
		return "must have at least " + unit(p)
	case "max", "lte":
		if isNum {
			return "must be at most " + p
		}
		return "must have at most " + unit(p)
	case "gt":
		if isNum {
			return "must be greater than " + p
		}
		return "must have more than " + unit(p)
	case "lt":
		if isNum {
			return "must be less than " + p
		}
		return "must have fewer than " + unit(p)
	case "uuid", "uuid4":
		return "must be a UUID"
	case "datetime":
		return "must be a time in the layout " + p
	case "excludesall", "excludes", "printascii":
		return "contains characters that are not allowed"
	case "unique":
		return "must not contain duplicates"
	}
	if p != "" {
		return fmt.Sprintf("failed the %q rule (%s)", fe.Tag(), p)
	}
	return fmt.Sprintf("failed the %q rule", fe.Tag())
}
