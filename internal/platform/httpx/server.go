package httpx

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/mallhq/mall/internal/platform/config"
)

// ServerConfig is everything NewServer needs, for use without fx (tests, tools).
type ServerConfig struct {
	HTTP config.HTTP
	// ShutdownTimeout bounds Shutdown (drain delay plus in-flight requests); 0 = ctx only.
	ShutdownTimeout time.Duration
	// DrainDelay is how long Shutdown keeps serving, with /readyz already answering 503,
	// before it closes the listener, so a load balancer probing /readyz stops sending new
	// requests first. 0 closes at once.
	DrainDelay time.Duration
	// ReadinessTimeout bounds one /readyz evaluation (default DefaultReadinessTimeout).
	ReadinessTimeout time.Duration
	// Production (app.env=production): with neither HTTP.OpsAddr nor HTTP.OpsToken the main
	// listener serves no /metrics (ADR 0027).
	Production bool

	Logger *slog.Logger
	// Registerer receives the HTTP metrics; Gatherer is what /metrics exposes. Usually both
	// are the process's *prometheus.Registry. A nil Gatherer falls back to Registerer when it
	// is also a Gatherer.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer

	Routes          []Route
	Checks          []Check
	Middleware      []Middleware
	RouteMiddleware []RouteMiddleware
	// TracerProvider receives request spans; nil uses an SDK provider without exporter.
	TracerProvider trace.TracerProvider
}

// Server is Mall's HTTP server: the echo app with every route, the OpenAPI document and
// the listener lifecycle.
type Server struct {
	log             *slog.Logger
	echo            *echo.Echo
	doc             *openapi3.T
	docJSON         []byte
	srv             *http.Server
	addr            string
	ready           *readiness
	access          opsAccess
	shutdownTimeout time.Duration
	drainDelay      time.Duration
	tls             bool // srv.TLSConfig holds the certificate: serve HTTPS (HTTP/2)

	// ops is the listener of http.ops_addr (nil when unset): /metrics and detailed /readyz.
	ops     *http.Server
	opsAddr string

	mu       sync.Mutex
	ln       net.Listener
	opsLn    net.Listener
	done     chan struct{} // closed when Serve returns
	serveErr error
}

// NewServer builds the echo app (NewEcho), registers the operational routes and routes,
// builds the OpenAPI document and checks that it matches the registered routes.
func NewServer(c ServerConfig) (*Server, error) {
	if c.Logger == nil {
		return nil, errors.New("httpx: Logger is required")
	}
	gatherer := c.Gatherer
	if gatherer == nil {
		g, ok := c.Registerer.(prometheus.Gatherer)
		if !ok {
			return nil, errors.New("httpx: a Gatherer is required for /metrics")
		}
		gatherer = g
	}
	timeout := c.ReadinessTimeout
	if timeout <= 0 {
		timeout = DefaultReadinessTimeout
	}
	opts := []Option{WithMiddleware(c.Middleware...)}
	if c.TracerProvider != nil {
		opts = append(opts, WithTracerProvider(c.TracerProvider))
	}
	e, err := NewEcho(c.HTTP, c.Logger, c.Registerer, opts...)
	if err != nil {
		return nil, err
	}
	s := &Server{
		log:             c.Logger,
		echo:            e,
		addr:            c.HTTP.Addr,
		ready:           &readiness{checks: c.Checks, timeout: timeout},
		access:          opsAccess{token: c.HTTP.OpsToken, separate: c.HTTP.OpsAddr != "", production: c.Production},
		shutdownTimeout: c.ShutdownTimeout,
		drainDelay:      c.DrainDelay,
	}
	modRoutes, err := applyRouteMiddleware(c.Routes, c.RouteMiddleware)
	if err != nil {
		return nil, err
	}
	routes := append(s.opsRoutes(gatherer), modRoutes...)
	if err := Register(e, routes); err != nil {
		return nil, err
	}
	if s.doc, err = BuildOpenAPI(routes); err != nil {
		return nil, err
	}
	if s.docJSON, err = json.Marshal(s.doc); err != nil {
		return nil, fmt.Errorf("openapi: marshal: %w", err)
	}
	// Always true here (nothing else can reach e yet); kept so a future change that adds
	// routes another way fails at startup instead of shipping an incomplete document.
	if err := CheckOpenAPI(e, s.doc); err != nil {
		return nil, err
	}
	s.srv = &http.Server{
		Handler:           e,
		ReadTimeout:       c.HTTP.ReadTimeout,
		ReadHeaderTimeout: c.HTTP.ReadHeaderTimeout,
		WriteTimeout:      c.HTTP.WriteTimeout,
		IdleTimeout:       c.HTTP.IdleTimeout,
		// net/http's own complaints (TLS handshakes, bad requests) go to the JSON log.
		ErrorLog: slog.NewLogLogger(c.Logger.Handler(), slog.LevelWarn),
	}
	if c.HTTP.TLSCertFile != "" || c.HTTP.TLSKeyFile != "" {
		// Loaded once: a renewed certificate takes a restart (a rolling one behind a balancer).
		cert, err := tls.LoadX509KeyPair(c.HTTP.TLSCertFile, c.HTTP.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("http.tls_cert_file, http.tls_key_file: %w", err)
		}
		// ServeTLS adds "h2" to NextProtos: HTTP/2 for clients that offer it, else HTTP/1.1.
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.tls = true
	}
	if c.HTTP.OpsAddr != "" {
		s.opsAddr = c.HTTP.OpsAddr
		s.ops = &http.Server{
			Handler:           s.newOpsEcho(gatherer),
			ReadHeaderTimeout: c.HTTP.ReadHeaderTimeout,
			ReadTimeout:       c.HTTP.ReadTimeout,
			WriteTimeout:      c.HTTP.WriteTimeout,
			IdleTimeout:       c.HTTP.IdleTimeout,
			ErrorLog:          slog.NewLogLogger(c.Logger.Handler(), slog.LevelWarn),
		}
	}
	return s, nil
}

// Echo returns the echo instance (for tests and CheckOpenAPI).
func (s *Server) Echo() *echo.Echo { return s.echo }

// OpenAPI returns the document served at /openapi.json.
func (s *Server) OpenAPI() *openapi3.T { return s.doc }

// Handler returns the HTTP handler, for httptest servers.
func (s *Server) Handler() http.Handler { return s.echo }

// OnShutdown registers f to run when Shutdown begins closing connections. Hijacked
// connections (WebSockets) are not drained by net/http; their owners close them here.
func (s *Server) OnShutdown(f func()) { s.srv.RegisterOnShutdown(f) }

// Start binds the listener on HTTP.Addr (and the ops listener on HTTP.OpsAddr) and serves
// in the background. It returns once the ports are bound, so a failure to bind fails
// startup.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("httpx: server already started")
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", s.addr, err)
	}
	if s.ops != nil {
		opsLn, err := net.Listen("tcp", s.opsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("http.ops_addr listen %s: %w", s.opsAddr, err)
		}
		s.opsLn = opsLn
		go func() {
			if err := s.ops.Serve(opsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("ops listener stopped", "error", err.Error())
			}
		}()
	}
	s.ln = ln
	s.done = make(chan struct{})
	go s.serve(ln, s.done)
	return nil
}

func (s *Server) serve(ln net.Listener, done chan struct{}) {
	var err error
	if s.tls {
		err = s.srv.ServeTLS(ln, "", "")
	} else {
		err = s.srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	s.mu.Lock()
	s.serveErr = err
	s.mu.Unlock()
	close(done)
}

// Addr is the bound address (the real port when HTTP.Addr ends in :0), nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// OpsAddr is the ops listener's bound address, nil before Start or without http.ops_addr.
func (s *Server) OpsAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opsLn == nil {
		return nil
	}
	return s.opsLn.Addr()
}

// Done is closed when the server stops serving, by Shutdown or by a listener failure
// (then Err is not nil). It is nil before Start.
func (s *Server) Done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// Err is the error that stopped serving, nil after a clean Shutdown.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serveErr
}

// Shutdown stops gracefully: /readyz answers 503 at once, the server keeps serving for
// DrainDelay, then the listener closes and in-flight requests finish (bounded by ctx and
// ShutdownTimeout). Past the deadline remaining connections are closed forcibly.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.stopping.Store(true)
	if s.shutdownTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.shutdownTimeout)
		defer cancel()
	}
	if s.drainDelay > 0 {
		t := time.NewTimer(s.drainDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if s.ops != nil {
		// Probes and scrapes are short; the ops listener closes with the main one.
		defer s.ops.Close()
	}
	if err := s.srv.Shutdown(ctx); err != nil {
		closeErr := s.srv.Close()
		return errors.Join(fmt.Errorf("http shutdown: %w", err), closeErr)
	}
	if done := s.Done(); done != nil {
		<-done
	}
	return s.Err()
}
