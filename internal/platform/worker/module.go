package worker

import (
	"go.uber.org/fx"
)

// Module runs every worker of the "workers" group from OnStart to OnStop. It uses
// redis.UniversalClient, Scope, prometheus.Registerer and *slog.Logger when provided.
//
// The Runner depends on every worker's constructor, so fx starts it after the services
// the workers call and stops it (waiting for the runs in flight) before them.
var Module = fx.Module("worker",
	fx.Provide(newFromFx),
	fx.Invoke(func(*Runner) {}),
)

func newFromFx(lc fx.Lifecycle, p Params) (*Runner, error) {
	r, err := New(p)
	if err != nil {
		return nil, err
	}
	lc.Append(fx.Hook{OnStart: r.Start, OnStop: r.Stop})
	return r, nil
}

// As annotates a constructor returning a Spec for the "workers" group:
//
//	fx.Provide(worker.As(newSweeper))
func As(f any) any {
	return fx.Annotate(f, fx.ResultTags(`group:"workers"`))
}
