package payment

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// AlipayConfig configures the Alipay provider (open API v1, RSA2 keys).
type AlipayConfig struct {
	AppID string // required
	// SellerID is the merchant's Alipay user ID (2088...); when set, a notification must
	// carry it.
	SellerID string
	// PrivateKeyPEM is our application private key (RSA, at least 2048 bits): PEM
	// (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY") or the bare base64 DER the
	// Alipay console tools print.
	PrivateKeyPEM string
	// AlipayPublicKeyPEM is Alipay's public key for our app: PEM ("PUBLIC KEY" or
	// "RSA PUBLIC KEY") or bare base64 DER.
	AlipayPublicKeyPEM string
	// GatewayURL defaults to https://openapi.alipay.com/gateway.do
	// (the sandbox is https://openapi-sandbox.dl.alipaydev.com/gateway.do).
	GatewayURL string
	NotifyURL  string // our POST /api/v1/payments/notify/alipay, absolute
	ReturnURL  string // where the buyer's browser goes after paying; optional
	// HTTPClient calls the gateway; default a plain http.Client (Timeout bounds calls).
	HTTPClient *http.Client
	// Timeout bounds one gateway call (Query, Close, Refund); default 10s.
	Timeout time.Duration
}

// DefaultAlipayGateway is Alipay's production gateway.
const DefaultAlipayGateway = "https://openapi.alipay.com/gateway.do"

const (
	alipayTimeLayout  = "2006-01-02 15:04:05"
	alipayMaxResponse = 1 << 20
	alipaySubjectMax  = 256 // characters
)

// alipayZone is Beijing time, Alipay's clock; fixed, so no tzdata is needed.
var alipayZone = time.FixedZone("CST", 8*60*60)

// Alipay is the Alipay provider: page pay (alipay.trade.page.pay) for Create, and
// alipay.trade.query/close/refund over HTTPS. Requests are signed RSA2 (SHA256withRSA)
// with our key; notifications and responses are verified with Alipay's public key.
type Alipay struct {
	appID    string
	sellerID string
	key      *rsa.PrivateKey
	alipay   *rsa.PublicKey
	gateway  string
	notify   string
	ret      string
	client   *http.Client
	timeout  time.Duration
	now      func() time.Time
}

var _ Provider = (*Alipay)(nil)

// NewAlipay returns the Alipay provider. Errors never contain key material.
func NewAlipay(cfg AlipayConfig) (*Alipay, error) {
	if cfg.AppID == "" {
		return nil, errors.New("payment: alipay: AppID is required")
	}
	key, err := parseRSAPrivateKey(cfg.PrivateKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("payment: alipay: private key: %w", err)
	}
	pub, err := parseRSAPublicKey(cfg.AlipayPublicKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("payment: alipay: Alipay public key: %w", err)
	}
	if cfg.GatewayURL == "" {
		cfg.GatewayURL = DefaultAlipayGateway
	}
	if u, err := url.Parse(cfg.GatewayURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("payment: alipay: GatewayURL must be an absolute http(s) URL")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &Alipay{
		appID: cfg.AppID, sellerID: cfg.SellerID, key: key, alipay: pub,
		gateway: cfg.GatewayURL, notify: cfg.NotifyURL, ret: cfg.ReturnURL,
		client: cfg.HTTPClient, timeout: cfg.Timeout, now: time.Now,
	}, nil
}

// Name is "alipay".
func (a *Alipay) Name() string { return "alipay" }

// Ack is "success": anything else makes Alipay redeliver (for about 25 hours).
func (a *Alipay) Ack() string { return "success" }

// --- keys ---

func pemOrBase64DER(s string) ([]byte, string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, "", errors.New("missing")
	}
	if block, _ := pem.Decode([]byte(s)); block != nil {
		return block.Bytes, block.Type, nil
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return nil, "", errors.New("neither PEM nor base64 DER")
	}
	return der, "", nil
}

func parseRSAPrivateKey(s string) (*rsa.PrivateKey, error) {
	der, _, err := pemOrBase64DER(s)
	if err != nil {
		return nil, err
	}
	var key *rsa.PrivateKey
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		key = k
	} else if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("not an RSA key")
		}
		key = rk
	} else {
		return nil, errors.New("neither PKCS#1 nor PKCS#8")
	}
	if key.N.BitLen() < 2048 {
		return nil, errors.New("RSA key shorter than 2048 bits")
	}
	return key, nil
}

func parseRSAPublicKey(s string) (*rsa.PublicKey, error) {
	der, _, err := pemOrBase64DER(s)
	if err != nil {
		return nil, err
	}
	var pub *rsa.PublicKey
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("not an RSA key")
		}
		pub = rk
	} else if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
		pub = k
	} else {
		return nil, errors.New("neither PKIX nor PKCS#1")
	}
	if pub.N.BitLen() < 2048 {
		return nil, errors.New("RSA key shorter than 2048 bits")
	}
	return pub, nil
}

// --- signing ---

func (a *Alipay) sign(msg string) (string, error) {
	sum := sha256.Sum256([]byte(msg))
	sig, err := rsa.SignPKCS1v15(rand.Reader, a.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

func (a *Alipay) verify(msg []byte, sign string) error {
	sig, err := base64.StdEncoding.DecodeString(sign)
	if err != nil {
		return errors.New("sign is not base64")
	}
	sum := sha256.Sum256(msg)
	if rsa.VerifyPKCS1v15(a.alipay, crypto.SHA256, sum[:], sig) != nil {
		return errors.New("wrong signature")
	}
	return nil
}

// request builds the signed parameters of a call: the common parameters, biz_content,
// and sign over all non-empty parameters but sign itself (sign_type included), sorted.
func (a *Alipay) request(method string, biz any, withURLs bool) (url.Values, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(biz); err != nil {
		return nil, err
	}
	params := url.Values{
		"app_id":      {a.appID},
		"method":      {method},
		"format":      {"JSON"},
		"charset":     {"utf-8"},
		"sign_type":   {"RSA2"},
		"timestamp":   {a.now().In(alipayZone).Format(alipayTimeLayout)},
		"version":     {"1.0"},
		"biz_content": {strings.TrimSuffix(b.String(), "\n")},
	}
	if a.notify != "" {
		params.Set("notify_url", a.notify)
	}
	if withURLs && a.ret != "" {
		params.Set("return_url", a.ret)
	}
	msg, err := canonical(params, "sign")
	if err != nil {
		return nil, err
	}
	sig, err := a.sign(msg)
	if err != nil {
		return nil, fmt.Errorf("payment: alipay: signing: %w", err)
	}
	params.Set("sign", sig)
	return params, nil
}

// --- Create ---

type alipayPagePay struct {
	OutTradeNo  string `json:"out_trade_no"`
	ProductCode string `json:"product_code"`
	TotalAmount string `json:"total_amount"`
	Subject     string `json:"subject"`
	TimeExpire  string `json:"time_expire,omitempty"`
}

// Create builds the page pay URL (alipay.trade.page.pay) the buyer's browser is sent to;
// no network call. The trade exists at Alipay only once the buyer opens the page, and
// it expires at ExpiresAt (time_expire), after which it can never be paid.
func (a *Alipay) Create(_ context.Context, p Payment) (Created, error) {
	if err := validatePayment(p, a.now()); err != nil {
		return Created{}, err
	}
	subject := p.Subject
	if subject == "" {
		subject = "Order payment " + strconv.FormatInt(p.ID, 10)
	}
	if r := []rune(subject); len(r) > alipaySubjectMax {
		subject = string(r[:alipaySubjectMax])
	}
	biz := alipayPagePay{
		OutTradeNo:  strconv.FormatInt(p.ID, 10),
		ProductCode: "FAST_INSTANT_TRADE_PAY",
		TotalAmount: FormatYuan(p.Amount),
		Subject:     subject,
	}
	if !p.ExpiresAt.IsZero() {
		biz.TimeExpire = p.ExpiresAt.In(alipayZone).Format(alipayTimeLayout)
	}
	params, err := a.request("alipay.trade.page.pay", biz, true)
	if err != nil {
		return Created{}, err
	}
	sep := "?"
	if strings.Contains(a.gateway, "?") {
		sep = "&"
	}
	return Created{PayURL: a.gateway + sep + params.Encode()}, nil
}

// --- notifications ---

// VerifyNotification checks an asynchronous notification (trade_status_sync): sign_type
// RSA2 (the legacy SHA1 "RSA" is refused), the signature with Alipay's public key over
// the sorted non-empty fields but sign and sign_type, each field present once, app_id is
// ours, seller_id is ours (when configured), charset utf-8; then parses out_trade_no,
// total_amount (exact yuan), trade_status, trade_no, notify_id, gmt_payment, refund_fee.
// There is no staleness check: Alipay redelivers an unacknowledged notification for about
// 25 hours with the same notify_id; the caller deduplicates by (provider, notify_id) and by
// payment state.
func (a *Alipay) VerifyNotification(_ context.Context, form url.Values) (Notification, error) {
	msg, err := canonical(form, "sign", "sign_type")
	if err != nil {
		return Notification{}, badNotification("%v", err)
	}
	sign := form.Get("sign")
	if sign == "" {
		return Notification{}, badNotification("missing sign")
	}
	if st := form.Get("sign_type"); st != "RSA2" {
		return Notification{}, badNotification("sign_type %q, want RSA2", st)
	}
	if err := a.verify([]byte(msg), sign); err != nil {
		return Notification{}, badNotification("%v", err)
	}
	if form.Get("app_id") != a.appID {
		return Notification{}, badNotification("app_id is not ours")
	}
	if a.sellerID != "" && form.Get("seller_id") != a.sellerID {
		return Notification{}, badNotification("seller_id is not ours")
	}
	if cs := form.Get("charset"); cs != "" && !strings.EqualFold(cs, "utf-8") {
		return Notification{}, badNotification("charset %q, want utf-8", cs)
	}

	var n Notification
	var ok bool
	if n.PaymentID, ok = parseID(form.Get("out_trade_no")); !ok {
		return Notification{}, badNotification("malformed out_trade_no")
	}
	if n.Amount, err = ParseYuan(form.Get("total_amount")); err != nil || n.Amount == 0 {
		return Notification{}, badNotification("malformed total_amount")
	}
	if n.Status, ok = alipayStatus(form.Get("trade_status")); !ok {
		return Notification{}, badNotification("unknown trade_status")
	}
	if n.TradeNo = form.Get("trade_no"); n.TradeNo == "" {
		return Notification{}, badNotification("missing trade_no")
	}
	if n.NotifyID = form.Get("notify_id"); n.NotifyID == "" {
		return Notification{}, badNotification("missing notify_id")
	}
	if v := form.Get("gmt_payment"); v != "" {
		if n.PaidAt, err = time.ParseInLocation(alipayTimeLayout, v, alipayZone); err != nil {
			return Notification{}, badNotification("malformed gmt_payment")
		}
	}
	if v := form.Get("refund_fee"); v != "" {
		if n.Refunded, err = ParseYuan(v); err != nil || n.Refunded > n.Amount {
			return Notification{}, badNotification("malformed refund_fee")
		}
	}
	return n, nil
}

// alipayStatus maps trade_status: TRADE_SUCCESS (refundable) and TRADE_FINISHED (paid,
// no longer refundable) are paid; WAIT_BUYER_PAY is pending; TRADE_CLOSED is an unpaid
// trade that timed out or was closed, or a paid one fully refunded.
func alipayStatus(s string) (Status, bool) {
	switch s {
	case "TRADE_SUCCESS", "TRADE_FINISHED":
		return StatusSucceeded, true
	case "WAIT_BUYER_PAY":
		return StatusPending, true
	case "TRADE_CLOSED":
		return StatusClosed, true
	}
	return "", false
}

// --- gateway calls ---

type alipayOutTradeNo struct {
	OutTradeNo string `json:"out_trade_no"`
}

type alipayRefund struct {
	OutTradeNo   string `json:"out_trade_no"`
	RefundAmount string `json:"refund_amount"`
	OutRequestNo string `json:"out_request_no"`
	RefundReason string `json:"refund_reason,omitempty"`
}

// alipayResult is the common part of a *_response object.
type alipayResult struct {
	Code    string `json:"code"`
	Msg     string `json:"msg"`
	SubCode string `json:"sub_code"`
	SubMsg  string `json:"sub_msg"`
}

// call POSTs a signed request and returns the verified *_response object's raw JSON and
// its common result. A transport failure, a non-200 status, or a response that is
// malformed, unsigned or wrongly signed is an error (ErrBadResponse for the last three);
// a business code other than 10000 is returned in the result, not as an error.
func (a *Alipay) call(ctx context.Context, method string, biz any) (json.RawMessage, alipayResult, error) {
	params, err := a.request(method, biz, false)
	if err != nil {
		return nil, alipayResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.gateway, strings.NewReader(params.Encode()))
	if err != nil {
		return nil, alipayResult{}, fmt.Errorf("payment: alipay: %s: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, alipayResult{}, fmt.Errorf("payment: alipay: %s: %w", method, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, alipayMaxResponse+1))
	if err != nil {
		return nil, alipayResult{}, fmt.Errorf("payment: alipay: %s: reading the response: %w", method, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, alipayResult{}, fmt.Errorf("payment: alipay: %s: HTTP status %d", method, resp.StatusCode)
	}
	if len(body) > alipayMaxResponse {
		return nil, alipayResult{}, fmt.Errorf("%w: alipay: %s: response larger than %d bytes", ErrBadResponse, method, alipayMaxResponse)
	}
	raw, res, err := a.verifyResponse(method, body)
	if err != nil {
		return nil, alipayResult{}, fmt.Errorf("%w: alipay: %s: %v", ErrBadResponse, method, err)
	}
	return raw, res, nil
}

// verifyResponse extracts the method's response object ("alipay_trade_query_response",
// or "error_response" for gateway-level errors) as the exact bytes Alipay sent (a
// json.RawMessage is the unmodified input), verifies "sign" over those bytes, and decodes
// the common result from the same bytes. An unsigned response is never trusted, even an
// error: an unsigned "trade does not exist" must not make Close succeed.
func (a *Alipay) verifyResponse(method string, body []byte) (json.RawMessage, alipayResult, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, alipayResult{}, errors.New("response is not a JSON object")
	}
	key := strings.ReplaceAll(method, ".", "_") + "_response"
	raw, ok := top[key]
	if !ok {
		if raw, ok = top["error_response"]; !ok {
			return nil, alipayResult{}, fmt.Errorf("no %s in the response", key)
		}
	}
	var sign string
	if s, ok := top["sign"]; !ok || json.Unmarshal(s, &sign) != nil || sign == "" {
		return nil, alipayResult{}, errors.New("unsigned response")
	}
	if err := a.verify(raw, sign); err != nil {
		return nil, alipayResult{}, err
	}
	var res alipayResult
	if err := json.Unmarshal(raw, &res); err != nil || res.Code == "" {
		return nil, alipayResult{}, errors.New("malformed response object")
	}
	return raw, res, nil
}

func (res alipayResult) err() error {
	return &GatewayError{Provider: "alipay", Code: res.Code, Msg: res.Msg, SubCode: res.SubCode, SubMsg: res.SubMsg}
}

func (res alipayResult) is(subCode string) bool {
	// Some Alipay products prefix business codes with "aop.".
	return res.Code == "40004" && (res.SubCode == subCode || res.SubCode == "aop."+subCode)
}

const alipaySuccess = "10000"

type alipayQueryResponse struct {
	TradeNo     string `json:"trade_no"`
	OutTradeNo  string `json:"out_trade_no"`
	TradeStatus string `json:"trade_status"`
	TotalAmount string `json:"total_amount"`
}

// Query calls alipay.trade.query. A trade Alipay does not know (ACQ.TRADE_NOT_EXIST: the
// buyer has not opened the pay page yet) is StatusPending with no TradeNo — it can still
// be paid until its time_expire, so the caller must Close before cancelling.
func (a *Alipay) Query(ctx context.Context, paymentID int64) (State, error) {
	raw, res, err := a.call(ctx, "alipay.trade.query", alipayOutTradeNo{strconv.FormatInt(paymentID, 10)})
	if err != nil {
		return State{}, err
	}
	if res.is("ACQ.TRADE_NOT_EXIST") {
		return State{Status: StatusPending}, nil
	}
	if res.Code != alipaySuccess {
		return State{}, res.err()
	}
	var q alipayQueryResponse
	if err := json.Unmarshal(raw, &q); err != nil {
		return State{}, fmt.Errorf("%w: alipay: alipay.trade.query: %v", ErrBadResponse, err)
	}
	if q.OutTradeNo != "" && q.OutTradeNo != strconv.FormatInt(paymentID, 10) {
		return State{}, fmt.Errorf("%w: alipay: alipay.trade.query: answer for another trade", ErrBadResponse)
	}
	st, ok := alipayStatus(q.TradeStatus)
	if !ok {
		return State{}, fmt.Errorf("%w: alipay: alipay.trade.query: unknown trade_status", ErrBadResponse)
	}
	amount, err := ParseYuan(q.TotalAmount)
	if err != nil {
		return State{}, fmt.Errorf("%w: alipay: alipay.trade.query: malformed total_amount", ErrBadResponse)
	}
	return State{Status: st, TradeNo: q.TradeNo, Amount: amount}, nil
}

// Close calls alipay.trade.close. A trade Alipay does not know (ACQ.TRADE_NOT_EXIST) is
// not an error: it never got past the pay page and expires at time_expire. When Alipay
// refuses because of the trade's status (ACQ.TRADE_STATUS_ERROR), Close queries: already
// closed is fine, paid is ErrPaid.
func (a *Alipay) Close(ctx context.Context, paymentID int64) error {
	_, res, err := a.call(ctx, "alipay.trade.close", alipayOutTradeNo{strconv.FormatInt(paymentID, 10)})
	if err != nil {
		return err
	}
	switch {
	case res.Code == alipaySuccess, res.is("ACQ.TRADE_NOT_EXIST"):
		return nil
	case res.is("ACQ.TRADE_STATUS_ERROR"):
		st, err := a.Query(ctx, paymentID)
		if err != nil {
			return fmt.Errorf("payment: alipay: close refused (%s); querying: %w", res.SubCode, err)
		}
		switch st.Status {
		case StatusClosed:
			return nil
		case StatusSucceeded:
			return ErrPaid
		}
	}
	return res.err()
}

type alipayRefundResponse struct {
	OutTradeNo string `json:"out_trade_no"`
	RefundFee  string `json:"refund_fee"` // total refunded so far
	FundChange string `json:"fund_change"`
}

// Refund calls alipay.trade.refund with out_request_no = RefundID: repeating a RefundID
// with the same amount refunds once (Alipay answers fund_change "N"), with another amount
// is refused. Refunded is Alipay's refund_fee, the total refunded for the trade so far.
// Business refusals (ACQ.TRADE_NOT_EXIST, ACQ.TRADE_STATUS_ERROR,
// ACQ.REFUND_AMT_NOT_EQUAL_TOTAL, ACQ.SELLER_BALANCE_NOT_ENOUGH, ACQ.TRADE_HAS_CLOSE,
// ACQ.TRADE_NOT_ALLOW_REFUND for a refund window that is over, ...) are ErrRefundRefused
// wrapping the *GatewayError; ACQ.SYSTEM_ERROR is Temporary: retry with the same RefundID.
func (a *Alipay) Refund(ctx context.Context, r RefundRequest) (RefundResult, error) {
	if r.PaymentID <= 0 || r.RefundID <= 0 || r.Amount <= 0 || r.Amount > maxFen {
		return RefundResult{}, fmt.Errorf("%w: refund %d of payment %d amount %d", ErrInvalidRequest, r.RefundID, r.PaymentID, r.Amount)
	}
	reason := r.Reason
	if rs := []rune(reason); len(rs) > alipaySubjectMax {
		reason = string(rs[:alipaySubjectMax])
	}
	raw, res, err := a.call(ctx, "alipay.trade.refund", alipayRefund{
		OutTradeNo:   strconv.FormatInt(r.PaymentID, 10),
		RefundAmount: FormatYuan(r.Amount),
		OutRequestNo: strconv.FormatInt(r.RefundID, 10),
		RefundReason: reason,
	})
	if err != nil {
		return RefundResult{}, err
	}
	if res.Code != alipaySuccess {
		return RefundResult{}, refundError(res.err())
	}
	var rr alipayRefundResponse
	if err := json.Unmarshal(raw, &rr); err != nil {
		return RefundResult{}, fmt.Errorf("%w: alipay: alipay.trade.refund: %v", ErrBadResponse, err)
	}
	if rr.OutTradeNo != "" && rr.OutTradeNo != strconv.FormatInt(r.PaymentID, 10) {
		return RefundResult{}, fmt.Errorf("%w: alipay: alipay.trade.refund: answer for another trade", ErrBadResponse)
	}
	total, err := ParseYuan(rr.RefundFee)
	if err != nil || total < r.Amount {
		return RefundResult{}, fmt.Errorf("%w: alipay: alipay.trade.refund: malformed refund_fee", ErrBadResponse)
	}
	return RefundResult{Refunded: total}, nil
}
