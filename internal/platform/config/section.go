package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/go-viper/mapstructure/v2"
)

// Section is one module's configuration: the subtree at Key decoded into T (mapstructure
// tags) and validated (validate tags, then T's Check method when T is a Checker). Defaults
// live in configs/mall.yaml only. A module declares its section once and provides its
// Config from the application's Config with it:
//
//	var ConfigSection = config.Section[Config]{Key: "order"}
//	var Module = fx.Module("order", fx.Provide(ConfigSection.From), ...)
//
// and the composition root passes every section to Load, so that one error names every
// bad key of every module at startup.
type Section[T any] struct{ Key string }

// Part is a Section of any type, as Load takes them.
type Part interface {
	key() string
	load(c Config) (any, error)
}

// Checker is implemented by a section's type for rules its validate tags cannot state
// (a key that depends on another, or on app.env). It returns Invalid errors (joined) naming
// keys relative to the section ("rtmp_url"); the section prefixes its own key.
type Checker interface {
	Check(app App) error
}

func (s Section[T]) key() string { return s.Key }

func (s Section[T]) load(c Config) (any, error) { return s.From(c) }

// From decodes and validates the section of c. The error joins an *Error per bad key.
func (s Section[T]) From(c Config) (T, error) {
	var t T
	switch raw := c.modules[s.Key].(type) {
	case T:
		t = raw
	case nil:
		// Absent: the zero value, which validation judges like any other.
	default:
		d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			Result: &t, ErrorUnused: true, WeaklyTypedInput: true, DecodeHook: decodeHook,
		})
		if err != nil {
			return t, fmt.Errorf("config: %s: %w", s.Key, err)
		}
		if err := d.Decode(raw); err != nil {
			return t, errors.Join(decodeErrors(s.Key, err)...)
		}
	}
	if err := s.validate(t, c.App); err != nil {
		return t, err
	}
	return t, nil
}

// Default is the section of the built-in defaults (configs/mall.yaml), for tests and for
// callers of a module's New outside fx. It panics if the defaults are invalid: a test of
// the composition root loads them.
func (s Section[T]) Default() T {
	t, err := s.From(Defaults())
	if err != nil {
		panic(err)
	}
	return t
}

// With returns c with the section set to its current value changed by edit (tests and
// commands adjust a module's settings this way; c itself is unchanged). A section that does
// not decode starts from its zero value; From reports its errors later.
func (s Section[T]) With(c Config, edit func(*T)) Config {
	t, _ := s.From(c)
	edit(&t)
	return c.with(s.Key, t)
}

func (s Section[T]) validate(t T, app App) error {
	var errs []error
	if reflect.TypeFor[T]().Kind() != reflect.Struct {
		// Nothing to validate by tags (a test's map of raw keys).
	} else if err := validate.Struct(t); err != nil {
		var ves validator.ValidationErrors
		if !errors.As(err, &ves) {
			return &Error{Key: s.Key, Msg: err.Error()}
		}
		for _, fe := range ves {
			errs = append(errs, &Error{Key: s.Key + "." + fieldKey(fe), Msg: message(fe)})
		}
	}
	if ch, ok := any(t).(Checker); ok {
		for _, err := range flatten(ch.Check(app)) {
			var ce *Error
			if errors.As(err, &ce) {
				k := s.Key
				if ce.Key != "" {
					k += "." + ce.Key
				}
				err = &Error{Key: k, Msg: ce.Msg}
			} else {
				err = &Error{Key: s.Key, Msg: err.Error()}
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// validate reads the keys' names from the mapstructure tags, so errors name keys as the
// file and the environment spell them.
var validate = func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	return v
}()

// fieldKey is the key of a failed field below its section: "detail_cache.l1_ttl".
func fieldKey(fe validator.FieldError) string {
	ns := fe.Namespace() // "Config.detail_cache.l1_ttl"
	if _, rest, ok := strings.Cut(ns, "."); ok {
		return rest
	}
	return fe.Field()
}

// message says what a failed validate tag asks for ("must be at least 1s, got 500ms").
// Rules between keys belong in Check, which can name both.
func message(fe validator.FieldError) string {
	got := fe.Value()
	if d, ok := got.(time.Duration); ok {
		got = d.String()
	}
	param := fe.Param()
	sized := fe.Kind() == reflect.String || fe.Kind() == reflect.Slice || fe.Kind() == reflect.Map
	switch fe.Tag() {
	case "required":
		return "is required"
	case "min", "gte":
		if sized {
			return fmt.Sprintf("must have at least %s characters or entries", param)
		}
		return fmt.Sprintf("must be at least %s, got %v", param, got)
	case "max", "lte":
		if sized {
			return fmt.Sprintf("must have at most %s characters or entries", param)
		}
		return fmt.Sprintf("must be at most %s, got %v", param, got)
	case "gt":
		return fmt.Sprintf("must be more than %s, got %v", param, got)
	case "lt":
		return fmt.Sprintf("must be less than %s, got %v", param, got)
	case "oneof":
		return fmt.Sprintf("must be one of %s, got %q", strings.Join(strings.Fields(param), ", "), fmt.Sprint(got))
	case "startswith":
		return fmt.Sprintf("must start with %s, got %q", param, fmt.Sprint(got))
	case "url", "http_url":
		return fmt.Sprintf("must be an absolute URL, got %q", fmt.Sprint(got))
	case "base64":
		return "must be base64"
	case "len":
		return fmt.Sprintf("must have exactly %s characters or entries", param)
	case "hostname_port":
		return fmt.Sprintf("must be host:port, got %q", fmt.Sprint(got))
	}
	return fmt.Sprintf("fails %s=%s (got %v)", fe.Tag(), fe.Param(), got)
}
