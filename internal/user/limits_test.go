package user_test

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app"
	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/metrics"
	"github.com/mallhq/mall/internal/user"
)

// limitsApp runs the user module with the shipped limits (configs/mall.yaml), edited by
// edit, and reads how many passwords were verified.
type limitsApp struct {
	*apptest.App
	gather prometheus.Gatherer
}

func startLimits(t *testing.T, edit func(*config.Config, *user.Config)) *limitsApp {
	t.Helper()
	cfg := apptest.DefaultLimits(t, apptest.Config(t))
	rl := cfg.RateLimit
	cfg = withAuth(cfg, func(c *user.Config) {
		if edit != nil {
			pc := config.Config{RateLimit: rl}
			edit(&pc, c)
			rl = pc.RateLimit
		}
	})
	cfg.RateLimit = rl
	l := &limitsApp{}
	l.App = apptest.Start(t, cfg, apptest.Options{Modules: []fx.Option{user.Module}, Populate: []any{&l.gather}})
	return l
}

// checks is mall_user_password_checks_total: the attempts that reached the password check.
func (l *limitsApp) checks(t *testing.T) int {
	t.Helper()
	v, err := metrics.Value(l.gather, user.MetricPasswordChecks, nil)
	if err != nil {
		t.Fatal(err)
	}
	return int(v)
}

func (l *limitsApp) login(email, password, ip string) response {
	r, err := l.Do(http.MethodPost, "/api/v1/auth/login", map[string]string{"email": email, "password": password},
		"X-Forwarded-For", ip)
	if err != nil {
		l.T.Errorf("login: %v", err)
	}
	return r
}

// parallel runs f(i) for i in [0, n) on workers goroutines and tallies the statuses.
func parallel(n, workers int, f func(i int) response) map[int]int {
	var (
		mu  sync.Mutex
		got = map[int]int{}
		wg  sync.WaitGroup
		ch  = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ch {
				r := f(i)
				mu.Lock()
				got[r.Status]++
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		ch <- i
	}
	close(ch)
	wg.Wait()
	return got
}

// TestNATRegistersAndLogsIn: 300 people behind one address register and log in within a
// minute, with the shipped limits: every one succeeds.
func TestNATRegistersAndLogsIn(t *testing.T) {
	l := startLimits(t, nil)
	nat := apptest.RandomIP()
	start := time.Now()
	got := parallel(300, 8, func(i int) response {
		email := apptest.UniqueEmail("nat" + strconv.Itoa(i))
		r, err := l.Do(http.MethodPost, "/api/v1/auth/register", map[string]string{"email": email, "password": goodPassword},
			"X-Forwarded-For", nat)
		if err != nil || r.Status != http.StatusCreated {
			t.Errorf("register %d: %v %s", i, err, r)
			return r
		}
		r = l.login(email, goodPassword, nat)
		if r.Status != http.StatusOK {
			t.Errorf("login %d: %s", i, r)
		}
		return r
	})
	took := time.Since(start)
	if got[http.StatusOK] != 300 || took > time.Minute {
		t.Fatalf("logins %v in %s, want 300 x 200 within a minute", got, took)
	}
	t.Logf("300 registrations and logins from one address in %s", took.Round(time.Millisecond))
}

// TestFailuresThrottled: 60 wrong passwords for one account from one address, and 300
// spread over many accounts from one address, are both throttled with the shipped limits.
func TestFailuresThrottled(t *testing.T) {
	l := startLimits(t, nil)
	def := shippedAuth(t).Login

	t.Run("one account", func(t *testing.T) {
		email := l.Register(apptest.UniqueEmail("target")).Email
		ip := apptest.RandomIP()
		before := l.checks(t)
		got := map[int]int{}
		for i := range 60 {
			got[l.login(email, "guess"+strconv.Itoa(i), ip).Status]++
		}
		checked := l.checks(t) - before
		// Back to back, the progressive delay refuses everything after the free failures.
		if got[http.StatusTooManyRequests] < 60-def.MaxFailuresPerAccountIP || checked > def.MaxFailuresPerAccountIP {
			t.Fatalf("60 guesses: %v, %d passwords checked; want at most %d checked and the rest 429",
				got, checked, def.MaxFailuresPerAccountIP)
		}
		t.Logf("60 guesses on one account from one address: %v, %d passwords checked", got, checked)
	})

	t.Run("many accounts", func(t *testing.T) {
		ip := apptest.RandomIP()
		before := l.checks(t)
		got := parallel(300, 8, func(i int) response {
			return l.login(apptest.UniqueEmail("spray"+strconv.Itoa(i)), "Winter2026!", ip)
		})
		checked := l.checks(t) - before
		if checked != def.MaxFailuresPerIP || got[http.StatusTooManyRequests] != 300-def.MaxFailuresPerIP {
			t.Fatalf("300 sprayed guesses: %v, %d passwords checked; want exactly %d checked, the rest 429",
				got, checked, def.MaxFailuresPerIP)
		}
		t.Logf("300 guesses over 300 accounts from one address: %v", got)
	})

	t.Run("IPv6 rotating in its /64", func(t *testing.T) {
		email := l.Register(apptest.UniqueEmail("v6target")).Email
		before := l.checks(t)
		got := map[int]int{}
		for i := range 30 {
			got[l.login(email, "guess", fmt.Sprintf("2001:db8:%x:%x::%x", i/1000+1, 7, i+1)).Status]++
		}
		if checked := l.checks(t) - before; checked > def.MaxFailuresPerAccountIP {
			t.Fatalf("30 guesses from one /64: %v, %d checked, want at most %d", got, checked, def.MaxFailuresPerAccountIP)
		}
	})
}

// TestAttackerCannotLockOutVictim: guesses from many other addresses use up the account's
// limit for unfamiliar addresses, but the owner still logs in from their usual one.
func TestAttackerCannotLockOutVictim(t *testing.T) {
	l := startLimits(t, func(_ *config.Config, c *user.Config) { c.Login.MaxFailuresPerAccount = 20 })
	email := l.Register(apptest.UniqueEmail("victim")).Email
	home := apptest.RandomIP()
	l.login(email, goodPassword, home).Want(t, http.StatusOK, "") // home becomes usual

	got := parallel(60, 8, func(int) response { return l.login(email, "guess", apptest.RandomIP()) })
	if got[http.StatusUnauthorized] != 20 || got[http.StatusTooManyRequests] != 40 {
		t.Fatalf("60 guesses from other addresses: %v, want 20 x 401 and 40 x 429", got)
	}
	// The account is closed to unfamiliar addresses, the right password included...
	wantTooMany(t, l.login(email, goodPassword, apptest.RandomIP()))
	// ...but not to its owner at home, even after a typo there.
	l.login(email, "typo", home).Want(t, http.StatusUnauthorized, "auth.invalid_credentials")
	l.login(email, goodPassword, home).Want(t, http.StatusOK, "")
}

// TestParallelGuessesNeverExceedLimit: 100 guesses at once pass the guard at most as
// often as the limit allows, counted at the password check.
func TestParallelGuessesNeverExceedLimit(t *testing.T) {
	const limit = 20
	l := startLimits(t, func(_ *config.Config, c *user.Config) {
		c.Login.MaxFailuresPerIP = limit
		c.Login.MaxFailuresPerAccount = limit
		c.Login.MaxFailuresPerAccountIP = limit
		c.Login.FreeFailures = limit
	})
	run := func(t *testing.T, want int, f func(i int) response) {
		t.Helper()
		before := l.checks(t)
		got := parallel(100, 100, f)
		checked := l.checks(t) - before
		if checked > want || got[http.StatusUnauthorized] != checked || got[http.StatusTooManyRequests] != 100-checked {
			t.Fatalf("100 parallel guesses: %v, %d passwords checked; want at most %d, every other one 429", got, checked, want)
		}
		t.Logf("100 parallel guesses: %d reached the password check (limit %d)", checked, want)
	}
	t.Run("one account, one address", func(t *testing.T) {
		email, ip := l.Register(apptest.UniqueEmail("par")).Email, apptest.RandomIP()
		run(t, limit, func(int) response { return l.login(email, "guess", ip) })
	})
	t.Run("many accounts, one address", func(t *testing.T) {
		ip := apptest.RandomIP()
		run(t, limit, func(i int) response { return l.login(apptest.UniqueEmail("p"+strconv.Itoa(i)), "guess", ip) })
	})
	t.Run("one account, many addresses", func(t *testing.T) {
		email := l.Register(apptest.UniqueEmail("par2")).Email
		run(t, limit, func(int) response { return l.login(email, "guess", apptest.RandomIP()) })
	})
}

// TestTrustedClientsSkipPerIPLimits: a trusted server-side caller is not limited per IP,
// while one account's guesses through it still are.
func TestTrustedClientsSkipPerIPLimits(t *testing.T) {
	l := startLimits(t, func(cfg *config.Config, c *user.Config) {
		cfg.RateLimit.TrustedClients = []string{"10.250.0.0/16"}
		c.Login.MaxFailuresPerIP = 5
	})
	got := map[int]int{}
	for i := range 20 {
		got[l.login(apptest.UniqueEmail("bff"+strconv.Itoa(i)), "guess", "10.250.3.4").Status]++
	}
	if got[http.StatusUnauthorized] != 20 {
		t.Fatalf("20 failures through a trusted client: %v, want 20 x 401", got)
	}
	email := l.Register(apptest.UniqueEmail("bffuser")).Email
	got = map[int]int{}
	for range 30 {
		got[l.login(email, "guess", "10.250.3.4").Status]++
	}
	if got[http.StatusTooManyRequests] == 0 {
		t.Fatalf("30 guesses on one account through a trusted client: %v, want 429s", got)
	}
}

// TestRefreshLimitedPerSession: a session refreshing in a loop is refused once past
// auth.refresh_per_minute, without spending its token; other sessions are not affected.
func TestRefreshLimitedPerSession(t *testing.T) {
	l := startLimits(t, func(_ *config.Config, c *user.Config) { c.RefreshPerMinute = 3 })
	_, tk := l.NewUser("looper")
	rt := tk.RefreshToken
	for range 3 {
		var next tokens
		l.Req(http.MethodPost, "/api/v1/auth/refresh", map[string]string{"refresh_token": rt}).
			Want(t, http.StatusOK, "").Decode(t, &next)
		rt = next.RefreshToken
	}
	r := l.Req(http.MethodPost, "/api/v1/auth/refresh", map[string]string{"refresh_token": rt}).
		Want(t, http.StatusTooManyRequests, "rate_limited")
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	_, other := l.NewUser("calm")
	l.Req(http.MethodPost, "/api/v1/auth/refresh", map[string]string{"refresh_token": other.RefreshToken}).
		Want(t, http.StatusOK, "")
}

// shippedAuth is the auth section as shipped (configs/mall.yaml; the development file
// changes none of them). Section.Default cannot serve here: the production defaults lack
// the secrets the auth section requires.
func shippedAuth(t *testing.T) user.Config {
	t.Helper()
	dev, err := app.LoadDevConfig("")
	if err != nil {
		t.Fatal(err)
	}
	c, err := user.ConfigSection.From(dev)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
