package httpx

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/text"
)

// Check is a readiness check contributed through the fx group "readiness" (see AsCheck).
// Check must honour ctx: /readyz gives all checks together a short deadline.
type Check struct {
	Name  string
	Check func(context.Context) error
}

// DefaultReadinessTimeout bounds one /readyz evaluation; load balancers probe often and a
// dependency that does not answer in this time is as good as down.
const DefaultReadinessTimeout = 2 * time.Second

type healthResponse struct {
	Status string `json:"status"`
}

// readyResponse is /readyz's 200: the checks only for a caller entitled to details (the ops
// listener, or the ops token on the main listener).
type readyResponse struct {
	Status string        `json:"status"`
	Checks []checkStatus `json:"checks,omitempty"`
}

type checkStatus struct {
	Name       string  `json:"name"`
	Status     string  `json:"status"` // ok | failed | timeout
	DurationMS float64 `json:"duration_ms"`
}

// readiness runs the checks and remembers whether shutdown has begun.
type readiness struct {
	checks   []Check
	timeout  time.Duration
	stopping atomic.Bool
}

var (
	errShuttingDown = errs.ErrUnavailable.WithDetail("shutting down")
	errNotReady     = errs.ErrUnavailable.WithDetail("not ready")
)

// handle answers /readyz. Without details it says only ready or not: check names and their
// errors (addresses, driver messages) are for operators, not for anyone on the internet.
func (r *readiness) handle(c echo.Context, detailed bool) error {
	if r.stopping.Load() {
		return errShuttingDown
	}
	results := r.run(c.Request().Context())
	if !detailed {
		for _, res := range results {
			if res.err != nil {
				return errNotReady
			}
		}
		if r.stopping.Load() {
			return errShuttingDown
		}
		return c.JSON(http.StatusOK, readyResponse{Status: "ok"})
	}
	var failed []errs.FieldError
	var names []string
	for _, res := range results {
		if res.err != nil {
			failed = append(failed, errs.FieldError{Field: res.Name, Message: text.Ellipsis(res.err.Error(), 300)})
			names = append(names, res.Name)
		}
	}
	// Shutdown may have begun while the checks ran.
	if r.stopping.Load() {
		return errShuttingDown
	}
	if len(failed) > 0 {
		return errs.ErrUnavailable.WithDetail("not ready: %s", strings.Join(names, ", ")).WithFields(failed...)
	}
	out := readyResponse{Status: "ok", Checks: make([]checkStatus, 0, len(results))}
	for _, res := range results {
		out.Checks = append(out.Checks, res.checkStatus)
	}
	return c.JSON(http.StatusOK, out)
}

type checkResult struct {
	checkStatus
	err error
}

var errCheckTimeout = fmt.Errorf("did not answer within the readiness timeout")

// run evaluates every check concurrently under one deadline. A check that ignores ctx is
// reported as timed out; its goroutine finishes on its own later (the channel is buffered).
func (r *readiness) run(ctx context.Context) []checkResult {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	type done struct {
		i   int
		err error
		d   time.Duration
	}
	ch := make(chan done, len(r.checks))
	start := time.Now()
	for i, chk := range r.checks {
		go func() {
			t := time.Now()
			err := callCheck(ctx, chk)
			ch <- done{i: i, err: err, d: time.Since(t)}
		}()
	}
	results := make([]checkResult, len(r.checks))
	for i, chk := range r.checks {
		results[i] = checkResult{checkStatus: checkStatus{Name: chk.Name, Status: "timeout"}, err: errCheckTimeout}
	}
	for range r.checks {
		select {
		case d := <-ch:
			res := &results[d.i]
			res.DurationMS = float64(d.d.Microseconds()) / 1000
			res.err = d.err
			res.Status = "ok"
			if d.err != nil {
				res.Status = "failed"
			}
		case <-ctx.Done():
			for i := range results {
				if results[i].Status == "timeout" {
					results[i].DurationMS = float64(time.Since(start).Microseconds()) / 1000
				}
			}
			return results
		}
	}
	return results
}

// callCheck turns a panicking check into a failed one: /readyz must keep answering.
func callCheck(ctx context.Context, chk Check) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("check panicked: %v", r)
		}
	}()
	if chk.Check == nil {
		return fmt.Errorf("check %q has no function", chk.Name)
	}
	return chk.Check(ctx)
}

// opsAccess is who may see /metrics and detailed /readyz on the main listener (ADR 0027).
type opsAccess struct {
	token      string // http.ops_token: opens both with Authorization: Bearer <token>
	separate   bool   // http.ops_addr is set: /metrics is served there only
	production bool   // app.env=production: no anonymous /metrics
}

var (
	errOpsToken       = errs.ErrUnauthenticated.WithDetail("the ops token is required (Authorization: Bearer <http.ops_token>)")
	errMetricsOnOps   = errs.ErrNotFound.WithDetail("metrics are served on the ops listener")
	errMetricsPrivate = errs.ErrNotFound.WithDetail("metrics are not public in production")
)

// authorized reports a request carrying the ops token (compared in constant time).
func (a opsAccess) authorized(r *http.Request) bool {
	if a.token == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get(echo.HeaderAuthorization), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) == 1
}

// guardMetrics is /metrics on the main listener: only on the ops listener when there is
// one, else behind the token when there is one, else open outside production only.
func (a opsAccess) guardMetrics(metrics echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch {
		case a.separate:
			return errMetricsOnOps
		case a.token != "":
			if !a.authorized(c.Request()) {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="mall-ops"`)
				return errOpsToken
			}
		case a.production:
			return errMetricsPrivate
		}
		return metrics(c)
	}
}

func metricsHandler(gatherer prometheus.Gatherer) echo.HandlerFunc {
	return echo.WrapHandler(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	}))
}

// newOpsEcho is the ops listener's app (http.ops_addr): /healthz, detailed /readyz and
// /metrics, without a token: the address is meant for an operations network, like
// http.debug_addr. It has none of the public middleware (no rate limits, no access log).
func (s *Server) newOpsEcho(gatherer prometheus.Gatherer) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = ErrorHandler(s.log)
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, healthResponse{Status: "ok"}) })
	e.GET("/readyz", func(c echo.Context) error { return s.ready.handle(c, true) })
	e.GET("/metrics", metricsHandler(gatherer))
	e.RouteNotFound("/*", func(echo.Context) error { return errs.ErrNotFound })
	return e
}

// opsRoutes are the operational endpoints. They go through the Route table like any
// module's routes, so the OpenAPI document and CheckOpenAPI cover them too.
func (s *Server) opsRoutes(gatherer prometheus.Gatherer) []Route {
	metrics := s.access.guardMetrics(metricsHandler(gatherer))
	tags := []string{"operations"}
	return []Route{
		{
			Method: http.MethodGet, Path: "/healthz", Tags: tags,
			Summary:  "Liveness: 200 while the process runs.",
			Response: healthResponse{},
			Handler: func(c echo.Context) error {
				return c.JSON(http.StatusOK, healthResponse{Status: "ok"})
			},
		},
		{
			Method: http.MethodGet, Path: "/readyz", Tags: tags,
			Summary: "Readiness: 200 when every dependency answers, else 503 (or once shutdown began). " +
				"The checks and their failures are listed only with the ops token (http.ops_token) or on the ops listener (http.ops_addr).",
			Response: readyResponse{},
			Handler: func(c echo.Context) error {
				return s.ready.handle(c, s.access.authorized(c.Request()))
			},
		},
		{
			Method: http.MethodGet, Path: "/metrics", Tags: tags,
			Summary: "Prometheus metrics: on the ops listener when http.ops_addr is set (404 here), else with the ops token " +
				"when http.ops_token is set (401 without), else open outside production (404 in production).",
			Produces: "text/plain",
			Handler:  metrics,
		},
		{
			Method: http.MethodGet, Path: "/openapi.json", Tags: tags,
			Summary:  "This OpenAPI 3 document.",
			Produces: echo.MIMEApplicationJSON,
			Handler: func(c echo.Context) error {
				return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.docJSON)
			},
		},
		{
			Method: http.MethodGet, Path: "/docs", Tags: tags,
			Summary:  "Human-readable API reference rendered from /openapi.json.",
			Produces: echo.MIMETextHTML,
			Handler: func(c echo.Context) error {
				c.Response().Header().Set(echo.HeaderContentSecurityPolicy, docsCSP)
				return c.HTMLBlob(http.StatusOK, docsHTML)
			},
		},
	}
}

// The docs page is self-contained (no CDN is reachable offline, and none is wanted): an
// inline script fetches /openapi.json and renders it. The CSP allows exactly this script
// and style by hash, and fetches to our own origin only.
var (
	docsHTML = []byte(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mall API reference</title><style>` + docsStyle + `</style></head>
<body><header><h1>Mall API reference</h1><p>Rendered from <a href="/openapi.json">/openapi.json</a>. IDs are strings; money is integer minor units; errors are <code>application/problem+json</code>.</p></header>
<main id="app"><p>Loading…</p></main>
<script>` + docsScript + `</script></body></html>
`)
	docsCSP = "default-src 'none'; script-src '" + cspHash(docsScript) + "'; style-src '" + cspHash(docsStyle) +
		"'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

const docsStyle = `
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 1rem 3rem;color:#1d2330}
h1{margin:1.2rem 0 .2rem}h2{margin-top:2rem;border-bottom:1px solid #dde;text-transform:capitalize}
details{border:1px solid #dde;border-radius:6px;margin:.4rem 0;padding:.3rem .6rem}
summary{cursor:pointer}summary code{font-size:14px}
.method{display:inline-block;min-width:4.5em;font-weight:600;text-transform:uppercase;font-size:12px}
.get{color:#0a6}.post{color:#06c}.put,.patch{color:#a60}.delete{color:#c22}
.summary{color:#555;margin-left:.6rem}.lock{margin-left:.4rem;font-size:12px;color:#a60}
table{border-collapse:collapse;margin:.4rem 0}td,th{border:1px solid #e4e4ee;padding:.15rem .5rem;text-align:left;vertical-align:top;font-size:13px}
pre{background:#f6f7fb;padding:.5rem;overflow:auto;font-size:12px}
`

const docsScript = `
(function () {
  "use strict";
  var app = document.getElementById("app");
  var methods = ["get", "post", "put", "patch", "delete", "head", "options"];
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function refName(s) {
    return s && s.$ref ? s.$ref.split("/").pop() : null;
  }
  function typeNode(s) {
    var r = refName(s);
    if (r) { var a = el("a", null, r); a.href = "#schema-" + r; return a; }
    if (!s) return el("span", null, "");
    if (s.type === "array") {
      var span = el("span", null, "array of ");
      span.appendChild(typeNode(s.items));
      return span;
    }
    var t = s.type || "any";
    if (s.format) t += " (" + s.format + ")";
    if (s.enum) t += " one of " + s.enum.join(" | ");
    if (s.pattern) t += " matching " + s.pattern;
    return el("span", null, t);
  }
  function table(head, rows) {
    var t = el("table"), tr = el("tr");
    head.forEach(function (h) { tr.appendChild(el("th", null, h)); });
    t.appendChild(tr);
    rows.forEach(function (cells) {
      var r = el("tr");
      cells.forEach(function (c) {
        var td = el("td");
        if (c instanceof Node) td.appendChild(c); else td.textContent = c;
        r.appendChild(td);
      });
      t.appendChild(r);
    });
    return t;
  }
  function content(c) {
    var box = el("div");
    Object.keys(c || {}).forEach(function (mt) {
      var line = el("div", null, mt + ": ");
      line.appendChild(typeNode(c[mt].schema));
      box.appendChild(line);
    });
    return box;
  }
  function operation(path, method, op) {
    var d = el("details"), s = el("summary");
    s.appendChild(el("span", "method " + method, method));
    s.appendChild(el("code", null, path));
    if (op.security && op.security.length) s.appendChild(el("span", "lock", "bearer token"));
    if (op.summary) s.appendChild(el("span", "summary", op.summary));
    d.appendChild(s);
    if (op.parameters && op.parameters.length) {
      d.appendChild(el("h4", null, "Parameters"));
      d.appendChild(table(["name", "in", "required", "schema"], op.parameters.map(function (p) {
        return [p.name, p.in, p.required ? "yes" : "no", typeNode(p.schema)];
      })));
    }
    if (op.requestBody) {
      d.appendChild(el("h4", null, "Request body"));
      d.appendChild(content(op.requestBody.content));
    }
    d.appendChild(el("h4", null, "Responses"));
    d.appendChild(table(["status", "content"], Object.keys(op.responses || {}).map(function (code) {
      var r = op.responses[code];
      var name = refName(r);
      if (name) return [code, "problem+json (" + name + ")"];
      return [code, r.content ? content(r.content) : (r.description || "")];
    })));
    return d;
  }
  function schema(name, s) {
    var d = el("details"), sum = el("summary");
    d.id = "schema-" + name;
    sum.appendChild(el("code", null, name));
    d.appendChild(sum);
    var req = s.required || [];
    var props = s.properties || {};
    d.appendChild(table(["field", "type", "required"], Object.keys(props).map(function (k) {
      return [k, typeNode(props[k]), req.indexOf(k) >= 0 ? "yes" : ""];
    })));
    d.appendChild(el("pre", null, JSON.stringify(s, null, 2)));
    return d;
  }
  function render(doc) {
    app.textContent = "";
    var groups = {};
    Object.keys(doc.paths || {}).sort().forEach(function (path) {
      methods.forEach(function (m) {
        var op = doc.paths[path][m];
        if (!op) return;
        var tag = (op.tags && op.tags[0]) || "other";
        (groups[tag] = groups[tag] || []).push(operation(path, m, op));
      });
    });
    Object.keys(groups).sort().forEach(function (tag) {
      app.appendChild(el("h2", null, tag));
      groups[tag].forEach(function (n) { app.appendChild(n); });
    });
    var schemas = (doc.components && doc.components.schemas) || {};
    app.appendChild(el("h2", null, "schemas"));
    Object.keys(schemas).sort().forEach(function (name) { app.appendChild(schema(name, schemas[name])); });
  }
  fetch("/openapi.json", { headers: { Accept: "application/json" } })
    .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then(render)
    .catch(function (err) { app.textContent = "Could not load /openapi.json: " + err.message; });
})();
`
