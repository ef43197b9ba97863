// Package usertest helps other modules' tests: an in-memory user.Service and callers with
// chosen permissions, without databases, keys or tokens. Production code never imports it.
package usertest

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/user"
)

// WithCaller returns ctx carrying an authenticated caller that holds exactly perms
// (merchant-scoped ones only with merchantID != 0), as the authentication middleware would
// set it up from a verified token.
func WithCaller(ctx context.Context, userID, merchantID int64, perms ...user.Permission) context.Context {
	ctx = authn.With(ctx, authn.Principal{UserID: userID, TokenID: "test", Roles: []string{string(user.RoleBuyer)}, MerchantID: merchantID})
	return user.WithGrants(ctx, user.NewGrants(merchantID, perms...))
}

// HeaderCaller is read by Middleware: "<user id>[;<merchant id>[;<perm>,<perm>...]]".
const HeaderCaller = "X-Test-Caller"

// Middleware authenticates test requests from HeaderCaller (see WithCaller); requests without
// it stay anonymous. Use it as an httpx.Middleware in a test server in place of the user
// module's token check.
func Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(HeaderCaller)
		if h == "" {
			return next(c)
		}
		parts := strings.Split(h, ";")
		uid, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "usertest: bad "+HeaderCaller)
		}
		var mid int64
		if len(parts) > 1 && parts[1] != "" {
			if mid, err = strconv.ParseInt(parts[1], 10, 64); err != nil {
				return echo.NewHTTPError(http.StatusBadRequest, "usertest: bad "+HeaderCaller)
			}
		}
		var perms []user.Permission
		if len(parts) > 2 && parts[2] != "" {
			for _, p := range strings.Split(parts[2], ",") {
				perms = append(perms, user.Permission(p))
			}
		}
		req := c.Request()
		c.SetRequest(req.WithContext(WithCaller(req.Context(), uid, mid, perms...)))
		return next(c)
	}
}

// Caller formats HeaderCaller.
func Caller(userID, merchantID int64, perms ...user.Permission) string {
	ps := make([]string, len(perms))
	for i, p := range perms {
		ps[i] = string(p)
	}
	return strconv.FormatInt(userID, 10) + ";" + strconv.FormatInt(merchantID, 10) + ";" + strings.Join(ps, ",")
}

// Fake is an in-memory user.Service. The zero value is ready; it is safe for concurrent use.
type Fake struct {
	mu        sync.Mutex
	nextID    int64
	users     map[int64]user.User
	bindings  map[int64][]user.RoleBinding
	addresses map[int64][]user.Address // by user, oldest first
	// Grants records every GrantRole call, in order.
	Grants []Grant
	// Revokes records every RevokeRole call, in order.
	Revokes []Grant
}

// Grant is one recorded GrantRole call.
type Grant struct {
	UserID     int64
	Role       user.Role
	MerchantID int64
}

var _ user.Service = (*Fake)(nil)

func (f *Fake) init() {
	if f.users == nil {
		f.users, f.bindings, f.addresses = map[int64]user.User{}, map[int64][]user.RoleBinding{}, map[int64][]user.Address{}
	}
}

// AddUser stores a user (ID assigned when 0) and returns it.
func (f *Fake) AddUser(u user.User) user.User {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if u.ID == 0 {
		f.nextID++
		u.ID = f.nextID
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now().UTC()
	}
	u.Email = strings.ToLower(strings.TrimSpace(u.Email))
	f.users[u.ID] = u
	return u
}

// AddAddress stores an address for a.UserID (ID assigned when 0) and returns it.
func (f *Fake) AddAddress(a user.Address) user.Address {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if a.ID == 0 {
		f.nextID++
		a.ID = f.nextID
	}
	f.addresses[a.UserID] = append(f.addresses[a.UserID], a)
	return a
}

func (f *Fake) Get(_ context.Context, id int64) (user.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	u, ok := f.users[id]
	if !ok {
		return user.User{}, user.ErrNotFound
	}
	return u, nil
}

// Register stores a new user (the password is not kept); a taken email is user.ErrEmailTaken.
func (f *Fake) Register(ctx context.Context, email, _, nickname string) (user.User, error) {
	if _, err := f.FindByEmail(ctx, email); err == nil {
		return user.User{}, user.ErrEmailTaken
	}
	// Verified: tests on the fake are about other rules (AddUser makes unverified ones).
	return f.AddUser(user.User{Email: email, Nickname: nickname, EmailVerified: true}), nil
}

func (f *Fake) FindByEmail(_ context.Context, email string) (user.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	email = strings.ToLower(strings.TrimSpace(email))
	for _, u := range f.users {
		if u.Email == email && email != "" {
			return u, nil
		}
	}
	return user.User{}, user.ErrNotFound
}

func (f *Fake) Roles(_ context.Context, userID int64) ([]user.RoleBinding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if _, ok := f.users[userID]; !ok {
		return nil, user.ErrNotFound
	}
	return append([]user.RoleBinding{{Role: user.RoleBuyer}}, f.bindings[userID]...), nil
}

// GrantRole checks what the real one checks except the roles table: merchant roles need a
// merchant, platform roles none, and a user works for one merchant at most.
func (f *Fake) GrantRole(_ context.Context, userID int64, role user.Role, merchantID int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if _, ok := f.users[userID]; !ok {
		return user.ErrNotFound
	}
	merchantRole := role == user.RoleMerchantOwner || role == user.RoleMerchantStaff
	switch {
	case role == user.RoleBuyer && merchantID == 0:
		return nil
	case merchantRole && merchantID <= 0:
		return user.ErrMerchantRequired
	case !merchantRole && merchantID != 0:
		return user.ErrMerchantNotAllowed
	}
	b := user.RoleBinding{Role: role, MerchantID: merchantID}
	for _, have := range f.bindings[userID] {
		if have.MerchantID != 0 && merchantID != 0 && have.MerchantID != merchantID {
			return user.ErrMerchantConflict
		}
	}
	f.Grants = append(f.Grants, Grant{UserID: userID, Role: role, MerchantID: merchantID})
	if !slices.Contains(f.bindings[userID], b) {
		f.bindings[userID] = append(f.bindings[userID], b)
	}
	return nil
}

// RevokeRole removes the binding (absent is fine) and records it in Revokes.
func (f *Fake) RevokeRole(_ context.Context, userID int64, role user.Role, merchantID int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if _, ok := f.users[userID]; !ok {
		return user.ErrNotFound
	}
	if role == user.RoleBuyer {
		return user.ErrMerchantNotAllowed
	}
	f.Revokes = append(f.Revokes, Grant{UserID: userID, Role: role, MerchantID: merchantID})
	f.bindings[userID] = slices.DeleteFunc(f.bindings[userID], func(b user.RoleBinding) bool {
		return b == user.RoleBinding{Role: role, MerchantID: merchantID}
	})
	return nil
}

func (f *Fake) Address(_ context.Context, userID, addressID int64) (user.Address, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	for _, a := range f.addresses[userID] {
		if a.ID == addressID {
			return a, nil
		}
	}
	return user.Address{}, user.ErrAddressNotFound
}

func (f *Fake) LatestAddress(_ context.Context, userID int64) (user.Address, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	as := f.addresses[userID]
	if len(as) == 0 {
		return user.Address{}, user.ErrAddressNotFound
	}
	return as[len(as)-1], nil
}

// LoginWithIdentity returns fake tokens naming the subject; it creates nothing.
func (f *Fake) LoginWithIdentity(_ context.Context, id user.ExternalIdentity) (user.Tokens, error) {
	if id.Provider == "" || id.Subject == "" {
		return user.Tokens{}, user.ErrOAuthFailed
	}
	return user.Tokens{AccessToken: "fake-access-" + id.Subject, RefreshToken: "fake-refresh-" + id.Subject, ExpiresIn: 15 * time.Minute}, nil
}
