package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"
	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/errs"
)

// OpenAPI document constants.
const (
	apiTitle   = "Mall API"
	apiVersion = "1.0.0"

	bearerScheme    = "bearerAuth"
	problemResponse = "Problem"
	schemaRefPrefix = "#/components/schemas/"
	modulePrefix    = "github.com/mallhq/mall/internal/"
)

var (
	problemType    = reflect.TypeFor[Problem]()
	fieldErrorType = reflect.TypeFor[errs.FieldError]()
	timeType       = reflect.TypeFor[time.Time]()
	listMarker     = reflect.TypeFor[interface{ listResponse() }]()
	idPattern      = `^(0|[1-9][0-9]{0,18})$`
)

// BuildOpenAPI builds the OpenAPI 3 document describing exactly routes. Schemas come from
// the Go types of Route.Request, Route.Response and Route.Query (json/query tags, ID as a
// string, `validate` rules as required/enum/min/max). The document is serialized, loaded
// back and validated, so what /openapi.json serves is known to be a valid document.
func BuildOpenAPI(routes []Route) (*openapi3.T, error) {
	b := newDocBuilder()
	for _, r := range routes {
		if err := b.add(r); err != nil {
			return nil, fmt.Errorf("openapi: route %s %s: %w", r.Method, r.Path, err)
		}
	}
	raw, err := json.Marshal(b.doc)
	if err != nil {
		return nil, fmt.Errorf("openapi: marshal: %w", err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("openapi: reload: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi: invalid document: %w", err)
	}
	return doc, nil
}

type docBuilder struct {
	doc *openapi3.T
	gen *openapi3gen.Generator
	ops map[string]bool // operation IDs in use
}

func newDocBuilder() *docBuilder {
	problemContent := openapi3.NewContent()
	problemContent[ContentTypeProblem] = &openapi3.MediaType{
		Schema: &openapi3.SchemaRef{Ref: schemaRefPrefix + "Problem"},
	}
	desc := "An error, as application/problem+json with a stable code."
	doc := &openapi3.T{
		OpenAPI: "3.0.3",
		Info: &openapi3.Info{
			Title:   apiTitle,
			Version: apiVersion,
			Description: "Mall marketplace API. IDs are 64-bit integers serialized as strings; money is " +
				"integer minor units with a currency; errors are application/problem+json.",
		},
		Paths: openapi3.NewPaths(),
		Components: &openapi3.Components{
			Schemas: openapi3.Schemas{},
			SecuritySchemes: openapi3.SecuritySchemes{
				bearerScheme: &openapi3.SecuritySchemeRef{Value: openapi3.NewJWTSecurityScheme()},
			},
			Responses: openapi3.ResponseBodies{
				problemResponse: &openapi3.ResponseRef{Value: &openapi3.Response{
					Description: &desc, Content: problemContent,
				}},
			},
		},
	}
	b := &docBuilder{
		doc: doc,
		gen: openapi3gen.NewGenerator(
			openapi3gen.UseAllExportedFields(),
			openapi3gen.CreateComponentSchemas(openapi3gen.ExportComponentSchemasOptions{
				ExportComponentSchemas: true,
				ExportTopLevelSchema:   true,
			}),
			openapi3gen.CreateTypeNameGenerator(schemaName),
			openapi3gen.SchemaCustomizer(customizeSchema),
		),
		ops: map[string]bool{},
	}
	// Problem is referenced by every error response, used by a route or not.
	_, _ = b.schema(Problem{})
	return b
}

// schemaName names component schemas after their package below internal/ and their type,
// so two modules' createRequest types cannot collide.
func schemaName(t reflect.Type) string {
	switch {
	case t.Name() == "":
		return "" // anonymous struct: inlined
	case t == problemType:
		return "Problem"
	case t == fieldErrorType:
		return "FieldError"
	}
	pkg := strings.TrimPrefix(t.PkgPath(), modulePrefix)
	pkg = strings.ReplaceAll(pkg, "/", ".")
	name := t.Name()
	if pkg != "" {
		name = pkg + "." + name
	}
	// Component keys must match ^[a-zA-Z0-9._-]+$.
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '_' || r == '-' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			return r
		}
		return '_'
	}, name)
}

// customizeSchema fixes what reflection cannot see: ID is a string on the wire, and the
// `validate` tags that Bind enforces become schema constraints. Rules are applied from the
// struct's call, where each field's Go type is known (the generator hands a slice's
// element the field's tag too, and could not tell "max=3 items" from "max=3 characters").
func customizeSchema(_ string, t reflect.Type, _ reflect.StructTag, s *openapi3.Schema) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == idType {
		*s = openapi3.Schema{
			Type:        &openapi3.Types{openapi3.TypeString},
			Pattern:     idPattern,
			Description: "64-bit ID as a decimal string",
			Example:     "1234567890123456789",
			Nullable:    s.Nullable,
		}
		return nil
	}
	if t.Kind() == reflect.Struct && t != timeType {
		if s.Properties == nil {
			// An empty struct still gets an object schema (and a component when named).
			s.Properties = openapi3.Schemas{}
			s.Type = &openapi3.Types{openapi3.TypeObject}
		}
		s.Required = requiredFields(t, s.Properties)
		for _, f := range reflect.VisibleFields(t) {
			if !f.IsExported() || f.Anonymous {
				continue
			}
			if ref := s.Properties[jsonName(f)]; ref != nil && ref.Value != nil && !isComponentRef(ref) {
				applyFieldRules(f.Type, f.Tag, ref.Value)
			}
		}
	}
	return nil
}

// isComponentRef tells a shared component from an inline schema; while generating, the
// generator labels inline schemas with their Go type name in Ref.
func isComponentRef(r *openapi3.SchemaRef) bool { return strings.HasPrefix(r.Ref, "#/") }

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

// applyFieldRules applies a field's rules before "dive" to its schema and those after
// "dive" to the schema of its elements.
func applyFieldRules(t reflect.Type, tag reflect.StructTag, s *openapi3.Schema) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == idType || t == timeType {
		return
	}
	own, elem := splitRules(tag)
	applyRules(t, own, s)
	if (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && len(elem) > 0 &&
		s.Items != nil && s.Items.Value != nil && !isComponentRef(s.Items) {
		applyRules(t.Elem(), elem, s.Items.Value)
	}
}

// rulesOf returns the validate rules that apply to the field itself (those before "dive").
func rulesOf(tag reflect.StructTag) map[string]string {
	own, _ := splitRules(tag)
	return own
}

func splitRules(tag reflect.StructTag) (own, elem map[string]string) {
	v := tag.Get("validate")
	if v == "" {
		return nil, nil
	}
	own = map[string]string{}
	cur := own
	for _, part := range strings.Split(v, ",") {
		if part == "dive" {
			if elem != nil {
				break // rules for nested elements are not described
			}
			elem = map[string]string{}
			cur = elem
			continue
		}
		name, param, _ := strings.Cut(part, "=")
		cur[name] = param
	}
	return own, elem
}

func applyRules(t reflect.Type, rules map[string]string, s *openapi3.Schema) {
	if len(rules) == 0 {
		return
	}
	num := func(p string) (float64, bool) {
		f, err := strconv.ParseFloat(p, 64)
		return f, err == nil
	}
	u64 := func(p string) (uint64, bool) {
		n, err := strconv.ParseUint(p, 10, 64)
		return n, err == nil
	}
	kind := t.Kind()
	for name, p := range rules {
		switch {
		case name == "email":
			s.Format = "email"
		case name == "url" || name == "http_url":
			s.Format = "uri"
		case name == "oneof":
			for _, v := range strings.Fields(p) {
				s.Enum = append(s.Enum, v)
			}
		case kind == reflect.String && (name == "min" || name == "gte" || name == "len"):
			if n, ok := u64(p); ok {
				s.MinLength = n
			}
			if name == "len" {
				if n, ok := u64(p); ok {
					s.MaxLength = &n
				}
			}
		case kind == reflect.String && (name == "max" || name == "lte"):
			if n, ok := u64(p); ok {
				s.MaxLength = &n
			}
		case (kind == reflect.Slice || kind == reflect.Array) && (name == "min" || name == "gte"):
			if n, ok := u64(p); ok {
				s.MinItems = n
			}
		case (kind == reflect.Slice || kind == reflect.Array) && (name == "max" || name == "lte"):
			if n, ok := u64(p); ok {
				s.MaxItems = &n
			}
		case kind >= reflect.Int && kind <= reflect.Float64 && (name == "min" || name == "gte" || name == "gt"):
			if f, ok := num(p); ok {
				s.Min = &f
				if name == "gt" {
					s.WithExclusiveMin(true)
				}
			}
		case kind >= reflect.Int && kind <= reflect.Float64 && (name == "max" || name == "lte" || name == "lt"):
			if f, ok := num(p); ok {
				s.Max = &f
				if name == "lt" {
					s.WithExclusiveMax(true)
				}
			}
		}
	}
}

// requiredFields lists the JSON names of t's fields validated as required.
func requiredFields(t reflect.Type, props openapi3.Schemas) []string {
	var req []string
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		if _, ok := rulesOf(f.Tag)["required"]; !ok {
			continue
		}
		name := jsonName(f)
		if _, ok := props[name]; ok && !slices.Contains(req, name) {
			req = append(req, name)
		}
	}
	return req
}

func (b *docBuilder) schema(v any) (*openapi3.SchemaRef, error) {
	ref, err := b.gen.NewSchemaRefForValue(v, b.doc.Components.Schemas)
	if err != nil {
		return nil, err
	}
	if ref == nil {
		return nil, fmt.Errorf("type %T has no JSON schema", v)
	}
	return ref, nil
}

func (b *docBuilder) add(r Route) error {
	path := OpenAPIPath(r.Path)
	if item := b.doc.Paths.Value(path); item != nil && item.GetOperation(r.Method) != nil {
		return errors.New("documented twice")
	}
	op := openapi3.NewOperation()
	op.Summary = r.Summary
	op.Tags = r.Tags
	op.OperationID = b.operationID(r.Method, path)
	op.Responses = openapi3.NewResponses()

	for _, name := range pathParams(r.Path) {
		p := openapi3.NewPathParameter(name).WithSchema(paramSchema(name))
		op.AddParameter(p)
	}
	if r.Idempotent {
		one, max := uint64(1), uint64(255)
		op.AddParameter(openapi3.NewHeaderParameter("Idempotency-Key").WithRequired(true).
			WithDescription("Same key and body replay the stored response (keys live at least 24 h, per user).").
			WithSchema(&openapi3.Schema{Type: &openapi3.Types{openapi3.TypeString}, MinLength: one, MaxLength: &max}))
	}
	if r.Query != nil {
		if err := b.addQuery(op, r.Query); err != nil {
			return err
		}
	}
	isList := r.Response != nil && reflect.TypeOf(r.Response).Implements(listMarker)
	if isList {
		if op.Parameters.GetByInAndName(openapi3.ParameterInQuery, "limit") == nil {
			lo, hi, def := float64(1), float64(MaxLimit), DefaultLimit
			op.AddParameter(openapi3.NewQueryParameter("limit").WithDescription("Page size.").
				WithSchema(&openapi3.Schema{Type: &openapi3.Types{openapi3.TypeInteger}, Min: &lo, Max: &hi, Default: def}))
		}
		if op.Parameters.GetByInAndName(openapi3.ParameterInQuery, "cursor") == nil {
			op.AddParameter(openapi3.NewQueryParameter("cursor").
				WithDescription("next_cursor of the previous page; omit for the first page.").
				WithSchema(openapi3.NewStringSchema()))
		}
	}

	if r.Request != nil {
		ref, err := b.schema(r.Request)
		if err != nil {
			return fmt.Errorf("request schema: %w", err)
		}
		op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(true).WithJSONSchemaRef(ref)}
	}

	status := r.Status
	if status == 0 {
		status = http.StatusOK
	}
	desc := http.StatusText(status)
	resp := &openapi3.Response{Description: &desc}
	switch {
	case r.Response != nil:
		ref, err := b.schema(r.Response)
		if err != nil {
			return fmt.Errorf("response schema: %w", err)
		}
		mt := r.Produces
		if mt == "" {
			mt = echo.MIMEApplicationJSON
		}
		resp.Content = openapi3.NewContentWithSchemaRef(ref, []string{mt})
	case r.Produces != "":
		resp.Content = openapi3.NewContentWithSchema(openapi3.NewStringSchema(), []string{r.Produces})
	}
	op.Responses.Set(strconv.Itoa(status), &openapi3.ResponseRef{Value: resp})

	problem := &openapi3.ResponseRef{Ref: "#/components/responses/" + problemResponse}
	errorStatuses := []int{}
	if r.Request != nil || r.Query != nil || isList || len(pathParams(r.Path)) > 0 || r.Idempotent {
		errorStatuses = append(errorStatuses, http.StatusBadRequest)
	}
	if r.Auth {
		errorStatuses = append(errorStatuses, http.StatusUnauthorized, http.StatusForbidden)
		op.Security = &openapi3.SecurityRequirements{openapi3.NewSecurityRequirement().Authenticate(bearerScheme)}
	}
	if len(pathParams(r.Path)) > 0 {
		errorStatuses = append(errorStatuses, http.StatusNotFound)
	}
	if r.Idempotent {
		errorStatuses = append(errorStatuses, http.StatusConflict, http.StatusUnprocessableEntity)
	}
	if r.Request != nil {
		errorStatuses = append(errorStatuses, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType)
	}
	if r.RateLimit != "" {
		errorStatuses = append(errorStatuses, http.StatusTooManyRequests)
	}
	for _, st := range errorStatuses {
		op.Responses.Set(strconv.Itoa(st), problem)
	}
	op.Responses.Set("default", problem)

	b.doc.AddOperation(path, r.Method, op)
	return nil
}

func (b *docBuilder) addQuery(op *openapi3.Operation, q any) error {
	t := reflect.TypeOf(q)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return fmt.Errorf("route query type must be a struct, got %s", t)
	}
	for _, f := range reflect.VisibleFields(t) {
		name, _, _ := strings.Cut(f.Tag.Get("query"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		ref, err := b.schema(reflect.Zero(f.Type).Interface())
		if err != nil {
			return fmt.Errorf("query parameter %s: %w", name, err)
		}
		if ref.Value != nil && !isComponentRef(ref) {
			applyFieldRules(f.Type, f.Tag, ref.Value)
		}
		rules := rulesOf(f.Tag)
		_, required := rules["required"]
		p := openapi3.NewQueryParameter(name).WithRequired(required)
		p.Schema = ref
		op.AddParameter(p)
	}
	return nil
}

// paramSchema documents a path parameter; *id parameters carry the ID pattern.
func paramSchema(name string) *openapi3.Schema {
	s := openapi3.NewStringSchema()
	if name == "id" || strings.HasSuffix(name, "_id") {
		s.Pattern = idPattern
	}
	return s
}

func (b *docBuilder) operationID(method, path string) string {
	id := strings.ToLower(method) + strings.Map(func(r rune) rune {
		switch {
		case ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9'):
			return r
		case r == '{' || r == '}':
			return -1
		}
		return '_'
	}, path)
	for i, base := 2, id; b.ops[id]; i++ {
		id = base + "_" + strconv.Itoa(i)
	}
	b.ops[id] = true
	return id
}

// OpenAPIPath converts echo's path syntax to OpenAPI's: /orders/:id -> /orders/{id}, and a
// trailing * wildcard -> {path}.
func OpenAPIPath(echoPath string) string {
	segs := strings.Split(echoPath, "/")
	for i, s := range segs {
		switch {
		case strings.HasPrefix(s, ":"):
			segs[i] = "{" + s[1:] + "}"
		case s == "*":
			segs[i] = "{path}"
		}
	}
	return strings.Join(segs, "/")
}

func pathParams(echoPath string) []string {
	var names []string
	for _, s := range strings.Split(echoPath, "/") {
		switch {
		case strings.HasPrefix(s, ":"):
			names = append(names, s[1:])
		case s == "*":
			names = append(names, "path")
		}
	}
	return names
}

// CheckOpenAPI verifies that doc and e describe the same set of operations: every route
// registered with echo is documented, and every documented operation has a route. A route
// added to echo directly (bypassing the Route table) or a stale document both fail it. The
// composition root's test runs it on the real application.
func CheckOpenAPI(e *echo.Echo, doc *openapi3.T) error {
	registered := map[string]bool{}
	for _, r := range e.Routes() {
		if r.Method == echo.RouteNotFound {
			continue // a custom 404 handler, not an operation
		}
		registered[r.Method+" "+OpenAPIPath(r.Path)] = true
	}
	documented := map[string]bool{}
	if doc != nil && doc.Paths != nil {
		for path, item := range doc.Paths.Map() {
			for method := range item.Operations() {
				documented[method+" "+path] = true
			}
		}
	}
	var problems []string
	for k := range registered {
		if !documented[k] {
			problems = append(problems, "route "+k+" is registered with echo but missing from the OpenAPI document (register it through an httpx.Route)")
		}
	}
	for k := range documented {
		if !registered[k] {
			problems = append(problems, "OpenAPI documents "+k+" but no such route is registered")
		}
	}
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	return fmt.Errorf("openapi: document and routes differ:\n  %s", strings.Join(problems, "\n  "))
}
