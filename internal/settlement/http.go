package settlement

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/user"
)

type handler struct{ svc *service }

func newHandler(s *service) httpx.Routes { return &handler{svc: s} }

// DTOs.

type balanceResponse struct {
	PendingAmount   int64  `json:"pending_amount"`
	AvailableAmount int64  `json:"available_amount"`
	PaidOutAmount   int64  `json:"paid_out_amount"`
	Currency        string `json:"currency"`
}

type entryResponse struct {
	ID          httpx.ID  `json:"id"`
	Kind        string    `json:"kind"`
	OrderID     *httpx.ID `json:"order_id,omitempty"`
	Amount      int64     `json:"amount"`
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"created_at"`
	AvailableAt time.Time `json:"available_at"`
}

type statementResponse struct {
	ID         httpx.ID   `json:"id"`
	MerchantID httpx.ID   `json:"merchant_id"`
	PeriodEnd  time.Time  `json:"period_end"`
	Income     int64      `json:"income"`
	Commission int64      `json:"commission"`
	Refunds    int64      `json:"refunds"`
	NetAmount  int64      `json:"net_amount"`
	Currency   string     `json:"currency"`
	Status     string     `json:"status"`
	PaidAt     *time.Time `json:"paid_at,omitempty"`
	Reference  string     `json:"reference,omitempty"`
	// Lines are in the single-statement views, not in lists.
	Lines     []entryResponse `json:"lines,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

type summaryResponse struct {
	CommissionEarned   int64  `json:"commission_earned"`
	PayableToMerchants int64  `json:"payable_to_merchants"`
	PaidOut            int64  `json:"paid_out"`
	Currency           string `json:"currency"`
}

type generateRequest struct {
	PeriodEnd time.Time `json:"period_end" validate:"required"`
}

type markPaidRequest struct {
	Reference string `json:"reference" validate:"required,max=128"`
}

type statementQuery struct {
	Status string `query:"status" validate:"omitempty,oneof=issued paid"`
}

// Routes implements httpx.Routes.
func (h *handler) Routes() []httpx.Route {
	mer, admin := []string{"merchant settlement"}, []string{"admin settlement"}
	perm := func(p user.Permission) []echo.MiddlewareFunc { return []echo.MiddlewareFunc{user.RequirePermission(p)} }
	mp, ap := perm(user.PermMerchantSettlement), perm(user.PermSettlementManage)
	return []httpx.Route{
		{Method: http.MethodGet, Path: "/api/v1/merchant/settlement/balance", Handler: h.balance,
			Summary: "The merchant's pending (in the hold period), available and paid-out money", Tags: mer,
			Response: balanceResponse{}, Auth: true, Middleware: mp},
		{Method: http.MethodGet, Path: "/api/v1/merchant/settlement/entries", Handler: h.entries,
			Summary: "The merchant's ledger entries, newest first; amounts signed from the merchant's side", Tags: mer,
			Response: httpx.List[entryResponse]{}, Auth: true, Middleware: mp},
		{Method: http.MethodGet, Path: "/api/v1/merchant/settlement/statements", Handler: h.merchantStatements,
			Summary: "The merchant's statements, newest first (without lines)", Tags: mer,
			Response: httpx.List[statementResponse]{}, Auth: true, Middleware: mp},
		{Method: http.MethodGet, Path: "/api/v1/merchant/settlement/statements/:id", Handler: h.merchantStatement,
			Summary: "One of the merchant's statements with its lines", Tags: mer, Response: statementResponse{},
			Auth: true, Middleware: mp},
		{Method: http.MethodGet, Path: "/api/v1/merchant/settlement/statements/:id/lines.csv", Handler: h.statementCSV,
			Summary: "One of the merchant's statements' lines as CSV", Tags: mer, Produces: "text/csv",
			Auth: true, Middleware: mp},

		{Method: http.MethodPost, Path: "/api/v1/admin/settlement/statements", Handler: h.generate,
			Summary: "Issue one statement per merchant of its available entries not yet stated up to period_end, " +
				"when they add up to a positive amount (a non-positive total waits for the next period)",
			Tags: admin, Request: generateRequest{}, Response: httpx.List[statementResponse]{}, Status: http.StatusCreated,
			Auth: true, Middleware: ap},
		{Method: http.MethodGet, Path: "/api/v1/admin/settlement/statements", Handler: h.adminStatements,
			Summary: "Every merchant's statements, newest first (without lines)", Tags: admin, Query: statementQuery{},
			Response: httpx.List[statementResponse]{}, Auth: true, Middleware: ap},
		{Method: http.MethodPost, Path: "/api/v1/admin/settlement/statements/:id/mark-paid", Handler: h.markPaid,
			Summary: "Record the statement's payout under the transfer reference, once (409 settlement.already_paid after)",
			Tags:    admin, Request: markPaidRequest{}, Response: statementResponse{}, Auth: true, Middleware: ap},
		{Method: http.MethodGet, Path: "/api/v1/admin/settlement/summary", Handler: h.summary,
			Summary: "The platform's commission earned, money owed to merchants (pending + available) and paid out",
			Tags:    admin, Response: summaryResponse{}, Auth: true, Middleware: ap},
	}
}

func toEntry(e Entry) entryResponse {
	out := entryResponse{ID: httpx.ID(e.ID), Kind: string(e.Kind), Amount: e.Amount, Status: string(e.Status),
		CreatedAt: e.CreatedAt, AvailableAt: e.AvailableAt}
	if e.OrderID != 0 {
		id := httpx.ID(e.OrderID)
		out.OrderID = &id
	}
	return out
}

func toStatement(st Statement) statementResponse {
	out := statementResponse{ID: httpx.ID(st.ID), MerchantID: httpx.ID(st.MerchantID), PeriodEnd: st.PeriodEnd,
		Income: st.Income, Commission: st.Commission, Refunds: st.Refunds, NetAmount: st.NetAmount, Currency: Currency,
		Status: string(st.Status), Reference: st.Reference, CreatedAt: st.CreatedAt}
	if !st.PaidAt.IsZero() {
		at := st.PaidAt
		out.PaidAt = &at
	}
	if st.Lines != nil {
		out.Lines = make([]entryResponse, len(st.Lines))
		for i, e := range st.Lines {
			out.Lines[i] = toEntry(e)
		}
	}
	return out
}

func statements(sts []Statement) []statementResponse {
	out := make([]statementResponse, len(sts))
	for i, st := range sts {
		out[i] = toStatement(st)
	}
	return out
}

func (h *handler) balance(c echo.Context) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	b, err := h.svc.Balance(ctx, mid)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, balanceResponse{PendingAmount: b.Pending, AvailableAmount: b.Available,
		PaidOutAmount: b.PaidOut, Currency: Currency})
}

func (h *handler) entries(c echo.Context) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	return httpx.ListByID(c, func(before int64, limit int) ([]Entry, error) {
		return h.svc.Entries(ctx, mid, before, limit)
	}, toEntry, func(r entryResponse) int64 { return r.ID.Int64() })
}

func statementID(r statementResponse) int64 { return r.ID.Int64() }

func (h *handler) merchantStatements(c echo.Context) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	return httpx.ListByID(c, func(before int64, limit int) ([]Statement, error) {
		return h.svc.MerchantStatements(ctx, mid, before, limit)
	}, toStatement, statementID)
}

// merchantStatementOf is the caller's merchant's statement of the path (404 for another's).
func (h *handler) merchantStatementOf(c echo.Context) (Statement, error) {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return Statement{}, err
	}
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return Statement{}, err
	}
	return h.svc.MerchantStatement(ctx, mid, id.Int64())
}

func (h *handler) merchantStatement(c echo.Context) error {
	st, err := h.merchantStatementOf(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toStatement(st))
}

func (h *handler) statementCSV(c echo.Context) error {
	st, err := h.merchantStatementOf(c)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"entry_id", "kind", "order_id", "amount", "status", "created_at", "available_at"})
	for _, e := range st.Lines {
		order := ""
		if e.OrderID != 0 {
			order = strconv.FormatInt(e.OrderID, 10)
		}
		_ = w.Write([]string{strconv.FormatInt(e.ID, 10), string(e.Kind), order, strconv.FormatInt(e.Amount, 10),
			string(e.Status), e.CreatedAt.Format(time.RFC3339Nano), e.AvailableAt.Format(time.RFC3339Nano)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderContentDisposition,
		`attachment; filename="statement-`+strconv.FormatInt(st.ID, 10)+`.csv"`)
	return c.Blob(http.StatusOK, "text/csv; charset=utf-8", b.Bytes())
}

func (h *handler) generate(c echo.Context) error {
	var in generateRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	if in.PeriodEnd.Year() < 2000 || in.PeriodEnd.Year() > 9999 {
		return errs.ErrInvalid.WithDetail("period_end must be a time from the year 2000 to 9999").
			WithFields(errs.FieldError{Field: "period_end", Message: "is out of range"})
	}
	sts, err := h.svc.GenerateStatements(c.Request().Context(), in.PeriodEnd)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, httpx.NewList(statements(sts), nil))
}

func (h *handler) adminStatements(c echo.Context) error {
	var q statementQuery
	if err := httpx.BindQuery(c, &q); err != nil {
		return err
	}
	return httpx.ListByID(c, func(before int64, limit int) ([]Statement, error) {
		return h.svc.Statements(c.Request().Context(), StatementStatus(q.Status), before, limit)
	}, toStatement, statementID)
}

func (h *handler) markPaid(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	var in markPaidRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	st, err := h.svc.MarkPaid(c.Request().Context(), id.Int64(), in.Reference)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toStatement(st))
}

func (h *handler) summary(c echo.Context) error {
	s, err := h.svc.Summary(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, summaryResponse{CommissionEarned: s.CommissionEarned,
		PayableToMerchants: s.PayableToMerchants, PaidOut: s.PaidOut, Currency: Currency})
}
