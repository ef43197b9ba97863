package httpx

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/config"
)

// runDebug serves net/http/pprof on http.debug_addr when it is set (off by default). It is a
// listener of its own, meant for localhost or an ops network: profiles reveal internals and
// cost CPU, so they never share the public port.
func runDebug(lc fx.Lifecycle, cfg config.Config, log *slog.Logger) {
	addr := cfg.HTTP.DebugAddr
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			log.Info("debug server listening (pprof)", "addr", ln.Addr().String())
			go func() {
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					log.Error("debug server stopped", "error", err.Error())
				}
			}()
			return nil
		},
		OnStop: srv.Shutdown,
	})
}
