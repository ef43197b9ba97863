// Package settlement is Mall's merchant settlement: a double-entry ledger fed by the order
// module's events (order.completed posts a merchant's income and the platform's commission,
// order.refunded after completion reverses them), the release of pending money after
// settlement.hold_period, statements per merchant and their payouts, and a reconciliation
// check of the ledger against the orders (docs/adr/0026).
//
// Other modules import this package only: the Service interface, the domain types and the
// errors.
package settlement

import (
	"context"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
)

// Service is what the HTTP handlers, the CLI and tests may ask of the settlement module.
type Service interface {
	// Balance is the merchant's pending, available and paid-out money.
	Balance(ctx context.Context, merchantID int64) (Balance, error)
	// Entries lists the merchant's ledger entries, newest first, before the entry ID before
	// (0: from the newest).
	Entries(ctx context.Context, merchantID, before int64, limit int) ([]Entry, error)
	// MerchantStatements lists the merchant's statements, newest first; MerchantStatement is
	// one of them with its lines (ErrStatementNotFound for another merchant's).
	MerchantStatements(ctx context.Context, merchantID, before int64, limit int) ([]Statement, error)
	MerchantStatement(ctx context.Context, merchantID, statementID int64) (Statement, error)
	// Statements is the platform's view of every statement (status "" for all), newest first.
	Statements(ctx context.Context, status StatementStatus, before int64, limit int) ([]Statement, error)
	// GenerateStatements puts, per merchant, every available entry not yet in a statement
	// with available_at <= periodEnd into one new statement, when their total is positive
	// (a non-positive total waits for the next period).
	GenerateStatements(ctx context.Context, periodEnd time.Time) ([]Statement, error)
	// MarkPaid records the statement's payout under the transfer reference, once
	// (ErrAlreadyPaid after that).
	MarkPaid(ctx context.Context, statementID int64, reference string) (Statement, error)
	// Summary is the platform's totals.
	Summary(ctx context.Context) (Summary, error)
	// Release makes pending entries whose available_at has passed available; it returns how
	// many it moved. The release worker runs it every settlement.release_interval.
	Release(ctx context.Context) (int, error)
	// Check reconciles the ledger with the completed orders, postings, balances and
	// statements (`mall settlement check`).
	Check(ctx context.Context) (Report, error)
}

// Clock tells the module the time (tests provide one to move past the hold period).
type Clock func() time.Time

// Kind is what an entry is for.
type Kind string

// Entry kinds (API.md). Amounts are signed from the merchant's side.
const (
	KindIncome           Kind = "income"
	KindCommission       Kind = "commission"
	KindRefund           Kind = "refund"
	KindCommissionRefund Kind = "commission_refund"
	KindPayout           Kind = "payout"
	KindAdjustment       Kind = "adjustment"
)

// EntryStatus is which of the merchant's accounts an entry's money is in.
type EntryStatus string

// Entry statuses.
const (
	StatusPending   EntryStatus = "pending"
	StatusAvailable EntryStatus = "available"
	StatusPaidOut   EntryStatus = "paid_out"
)

// Entry is one item of a merchant's ledger.
type Entry struct {
	ID, MerchantID, PostingID int64
	Kind                      Kind
	OrderID, RefundID         int64
	// Amount in fen, signed from the merchant's side: income +, commission −, refund −,
	// commission_refund +.
	Amount      int64
	Status      EntryStatus
	StatementID int64
	AvailableAt time.Time
	CreatedAt   time.Time
}

// Balance is a merchant's money by account.
type Balance struct {
	MerchantID                  int64
	Pending, Available, PaidOut int64
	Currency                    string
}

// StatementStatus is a statement's state.
type StatementStatus string

// Statement statuses.
const (
	StatementIssued StatementStatus = "issued"
	StatementPaid   StatementStatus = "paid"
)

// Valid reports whether s is a known status.
func (s StatementStatus) Valid() bool { return s == StatementIssued || s == StatementPaid }

// Statement is one merchant's settlement for a period: its entries and what they add up to.
// Income, Commission and Refunds are magnitudes (Commission net of commission refunds);
// NetAmount = Income − Commission − Refunds is what the payout transfers.
type Statement struct {
	ID, MerchantID int64
	PeriodEnd      time.Time
	Income         int64
	Commission     int64
	Refunds        int64
	NetAmount      int64
	Status         StatementStatus
	Reference      string
	PaidAt         time.Time
	CreatedAt      time.Time
	// Lines are the statement's entries (MerchantStatement only).
	Lines []Entry
}

// Summary is the platform's side: commission earned (net of commission refunds), what it
// owes merchants (pending + available) and what it has paid out.
type Summary struct {
	CommissionEarned   int64
	PayableToMerchants int64
	PaidOut            int64
	Currency           string
}

// Currency of every amount.
const Currency = "CNY"

// Limits.
const (
	MaxReference = 128
	// MaxDifferences bounds the differences a Report lists (DifferenceCount counts all).
	MaxDifferences = 1000
)

// Errors. Codes are stable (API.md).
var (
	ErrStatementNotFound = errs.New(errs.NotFound, "settlement.statement_not_found")
	ErrAlreadyPaid       = errs.New(errs.Conflict, "settlement.already_paid")
)
