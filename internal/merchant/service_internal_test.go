package merchant

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
	"github.com/mallhq/mall/internal/user"
	"github.com/mallhq/mall/internal/user/usertest"
)

// flakyUsers fails the next GrantRole calls while fail > 0.
type flakyUsers struct {
	*usertest.Fake
	fail atomic.Int32
}

var errGrantDown = errors.New("user module unavailable")

func (f *flakyUsers) GrantRole(ctx context.Context, userID int64, role user.Role, merchantID int64) error {
	if f.fail.Add(-1) >= 0 {
		return errGrantDown
	}
	return f.Fake.GrantRole(ctx, userID, role, merchantID)
}

func newTestService(t *testing.T) (*service, *flakyUsers) {
	t.Helper()
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{Migrations: []sqldb.Migrations{Migrations}})
	ids, err := idgen.New(3)
	if err != nil {
		t.Fatal(err)
	}
	users := &flakyUsers{Fake: &usertest.Fake{}}
	s, err := newService(Params{DB: cl, IDs: ids, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	return s, users
}

// TestApproveSagaConverges: when the role grant fails after the merchant committed, approve
// reports the error; approving again grants the role to the same merchant.
func TestApproveSagaConverges(t *testing.T) {
	s, users := newTestService(t)
	ctx := context.Background()
	u := users.AddUser(user.User{Email: "saga@example.com", EmailVerified: true})
	app, err := s.Apply(ctx, u.ID, ApplicationInput{ShopName: "s", CompanyName: "c", LicenseNo: "l", ContactName: "n", ContactPhone: "p"})
	if err != nil {
		t.Fatal(err)
	}
	users.fail.Store(1)
	if _, err := s.Approve(ctx, app.ID, 1); !errors.Is(err, errGrantDown) {
		t.Fatalf("Approve with the grant failing = %v, want %v", err, errGrantDown)
	}
	mid, err := s.Approve(ctx, app.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Approve(ctx, app.ID, 1)
	if err != nil || again != mid {
		t.Fatalf("third Approve = %d, %v; want %d", again, err, mid)
	}
	roles, _ := users.Roles(ctx, u.ID)
	want := user.RoleBinding{Role: user.RoleMerchantOwner, MerchantID: mid}
	found := false
	for _, b := range roles {
		found = found || b == want
	}
	if !found {
		t.Fatalf("roles = %v, want %v", roles, want)
	}
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM merchant_merchants WHERE application_id = ?`, app.ID); err != nil || n != 1 {
		t.Fatalf("merchants = %d, %v", n, err)
	}
}

// TestApproveRefusesBoundApplicant: an applicant who joined a merchant since applying is not
// made the owner of a second one, and no merchant is created.
func TestApproveRefusesBoundApplicant(t *testing.T) {
	s, users := newTestService(t)
	ctx := context.Background()
	u := users.AddUser(user.User{Email: "bound@example.com", EmailVerified: true})
	app, err := s.Apply(ctx, u.ID, ApplicationInput{ShopName: "s", CompanyName: "c", LicenseNo: "l", ContactName: "n", ContactPhone: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if err := users.GrantRole(ctx, u.ID, user.RoleMerchantStaff, 42); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Approve(ctx, app.ID, 1); !errors.Is(err, ErrApplicantBound) {
		t.Fatalf("Approve = %v, want %v", err, ErrApplicantBound)
	}
	if _, err := s.Apply(ctx, u.ID, ApplicationInput{ShopName: "t"}); !errors.Is(err, ErrApplicantBound) {
		t.Fatalf("Apply = %v, want %v", err, ErrApplicantBound)
	}
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM merchant_merchants`); err != nil || n != 0 {
		t.Fatalf("merchants = %d, %v", n, err)
	}
}

// TestStatusCacheTTL: a status is served from memory until the TTL ends (the staleness
// bound of the suspension check on other replicas), and forget drops it at once.
func TestStatusCacheTTL(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newStatusCache(3*time.Second, func() time.Time { return now })
	loads := 0
	current := StatusActive
	load := func(context.Context, int64) (Status, error) { loads++; return current, nil }
	ctx := context.Background()
	tests := []struct {
		give    time.Duration // clock advance before the read
		forget  bool
		want    Status
		wantLds int
	}{
		{give: 0, want: StatusActive, wantLds: 1},
		{give: time.Second, want: StatusActive, wantLds: 1},        // cached, though now suspended
		{give: 2 * time.Second, want: StatusSuspended, wantLds: 2}, // TTL over: reloaded
		{give: 0, forget: true, want: StatusActive, wantLds: 3},
	}
	for i, tt := range tests {
		now = now.Add(tt.give)
		if i == 1 {
			current = StatusSuspended
		}
		if i == 3 {
			current = StatusActive
		}
		if tt.forget {
			c.forget(7)
		}
		got, err := c.get(ctx, 7, load)
		if err != nil || got != tt.want || loads != tt.wantLds {
			t.Fatalf("step %d: got %q %v after %d loads, want %q after %d", i, got, err, loads, tt.want, tt.wantLds)
		}
	}
	_, err := c.get(ctx, 8, func(context.Context, int64) (Status, error) { return "", ErrNotFound })
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown merchant: %v", err)
	}
}
