package payment

import (
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
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testAppID    = "2021000000000001"
	testSellerID = "2088000000000001"
)

// Test keys: ours, Alipay's, and a stranger's, from testdata (generating them would
// take most of a fuzz worker's time under coverage instrumentation).
var (
	keysOnce                    sync.Once
	ourKey, alipayKey, otherKey *rsa.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		rest, err := os.ReadFile("testdata/test_keys.pem")
		if err != nil {
			panic(err)
		}
		for _, k := range []**rsa.PrivateKey{&ourKey, &alipayKey, &otherKey} {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				panic("testdata/test_keys.pem: too few keys")
			}
			if *k, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
				panic(err)
			}
		}
	})
}

func pkcs1PEM(k *rsa.PrivateKey) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
}

func pkcs8PEM(k *rsa.PrivateKey) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func publicPEM(k *rsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func rsaSign(k *rsa.PrivateKey, msg []byte) string {
	sum := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func rsaVerify(k *rsa.PublicKey, msg []byte, sign string) error {
	sig, err := base64.StdEncoding.DecodeString(sign)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(msg)
	return rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig)
}

// refCanonical is the test's own rendering of Alipay's signing string, independent of the
// code under test: sorted non-empty k=v pairs without the skipped keys.
func refCanonical(form url.Values, skip ...string) string {
	var pairs []string
	for k, vs := range form {
		if len(vs) == 0 || vs[0] == "" || k == "sign" || (len(skip) > 0 && k == skip[0]) {
			continue
		}
		pairs = append(pairs, k+"="+vs[0])
	}
	for i := range pairs { // insertion sort by key
		for j := i; j > 0 && strings.SplitN(pairs[j], "=", 2)[0] < strings.SplitN(pairs[j-1], "=", 2)[0]; j-- {
			pairs[j], pairs[j-1] = pairs[j-1], pairs[j]
		}
	}
	return strings.Join(pairs, "&")
}

func newTestAlipay(t testing.TB, gateway string) *Alipay {
	t.Helper()
	testKeys(t)
	a, err := NewAlipay(AlipayConfig{
		AppID:              testAppID,
		SellerID:           testSellerID,
		PrivateKeyPEM:      pkcs8PEM(ourKey),
		AlipayPublicKeyPEM: publicPEM(&alipayKey.PublicKey),
		GatewayURL:         gateway,
		NotifyURL:          "https://mall.example/api/v1/payments/notify/alipay",
		ReturnURL:          "https://mall.example/paid",
		Timeout:            2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestNewAlipayKeys(t *testing.T) {
	testKeys(t)
	pubDER, _ := x509.MarshalPKIXPublicKey(&alipayKey.PublicKey)
	bare := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PrivateKey(ourKey))
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		priv    string
		pub     string
		wantErr bool
	}{
		{"pkcs1 + pkix", pkcs1PEM(ourKey), publicPEM(&alipayKey.PublicKey), false},
		{"pkcs8 + pkcs1 public", pkcs8PEM(ourKey), string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&alipayKey.PublicKey)})), false},
		{"bare base64 with line breaks", bare[:64] + "\n" + bare[64:], base64.StdEncoding.EncodeToString(pubDER), false},
		{"missing private", "", publicPEM(&alipayKey.PublicKey), true},
		{"garbage private", "not a key", publicPEM(&alipayKey.PublicKey), true},
		{"missing public", pkcs1PEM(ourKey), "", true},
		{"short key", pkcs1PEM(small), publicPEM(&alipayKey.PublicKey), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewAlipay(AlipayConfig{AppID: testAppID, PrivateKeyPEM: tt.priv, AlipayPublicKeyPEM: tt.pub})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "MII") {
				t.Fatalf("error leaks key material: %v", err)
			}
		})
	}
	if _, err := NewAlipay(AlipayConfig{PrivateKeyPEM: pkcs1PEM(ourKey), AlipayPublicKeyPEM: publicPEM(&alipayKey.PublicKey)}); err == nil {
		t.Fatal("missing AppID accepted")
	}
	if _, err := NewAlipay(AlipayConfig{AppID: testAppID, PrivateKeyPEM: pkcs1PEM(ourKey), AlipayPublicKeyPEM: publicPEM(&alipayKey.PublicKey), GatewayURL: "gateway.do"}); err == nil {
		t.Fatal("relative gateway accepted")
	}
}

// checkRequest verifies a request's parameters the way Alipay does: every parameter once,
// our signature over all non-empty parameters but sign (sign_type included), and the
// common parameters. It returns the decoded biz_content.
func checkRequest(t testing.TB, form url.Values, method string) map[string]any {
	t.Helper()
	for k, vs := range form {
		if len(vs) != 1 {
			t.Errorf("parameter %s given %d times", k, len(vs))
		}
	}
	if err := rsaVerify(&ourKey.PublicKey, []byte(refCanonical(form)), form.Get("sign")); err != nil {
		t.Errorf("request signature: %v", err)
	}
	want := map[string]string{"app_id": testAppID, "method": method, "format": "JSON", "charset": "utf-8",
		"sign_type": "RSA2", "version": "1.0", "notify_url": "https://mall.example/api/v1/payments/notify/alipay"}
	for k, v := range want {
		if got := form.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	ts, err := time.ParseInLocation("2006-01-02 15:04:05", form.Get("timestamp"), time.FixedZone("", 8*3600))
	if err != nil || time.Since(ts).Abs() > time.Minute {
		t.Errorf("timestamp %q: %v (not Beijing time now)", form.Get("timestamp"), err)
	}
	var biz map[string]any
	if err := json.Unmarshal([]byte(form.Get("biz_content")), &biz); err != nil {
		t.Errorf("biz_content: %v", err)
	}
	return biz
}

func TestAlipayCreate(t *testing.T) {
	a := newTestAlipay(t, "https://openapi.alipay.example/gateway.do")
	expires := time.Date(2026, 12, 31, 16, 30, 0, 0, time.UTC)
	tests := []struct {
		give int64
		want string
	}{
		{1, "0.01"},
		{10, "0.10"},
		{100, "1.00"},
		{12345, "123.45"},
		{maxFen, "100000000.00"},
	}
	for _, tt := range tests {
		c, err := a.Create(context.Background(), Payment{ID: 9001, Amount: tt.give, Currency: "CNY", Subject: "Mall order & more", ExpiresAt: expires})
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(c.PayURL)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Scheme + "://" + u.Host + u.Path; got != "https://openapi.alipay.example/gateway.do" {
			t.Fatalf("PayURL points at %s", got)
		}
		form, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			t.Fatal(err)
		}
		biz := checkRequest(t, form, "alipay.trade.page.pay")
		if form.Get("return_url") != "https://mall.example/paid" {
			t.Errorf("return_url = %q", form.Get("return_url"))
		}
		wantBiz := map[string]any{"out_trade_no": "9001", "product_code": "FAST_INSTANT_TRADE_PAY",
			"total_amount": tt.want, "subject": "Mall order & more", "time_expire": "2027-01-01 00:30:00"}
		if fmt.Sprint(biz) != fmt.Sprint(wantBiz) {
			t.Errorf("biz_content = %v, want %v", biz, wantBiz)
		}
	}
}

func TestAlipayCreateGatewayWithQuery(t *testing.T) {
	a := newTestAlipay(t, "https://openapi.alipay.example/gateway.do?charset=utf-8")
	c, err := a.Create(context.Background(), Payment{ID: 1, Amount: 1, Subject: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.PayURL, "https://openapi.alipay.example/gateway.do?charset=utf-8&") {
		t.Fatalf("PayURL = %s", c.PayURL)
	}
}

func TestAlipayCreateValidates(t *testing.T) {
	a := newTestAlipay(t, "")
	for _, p := range []Payment{{ID: 0, Amount: 1}, {ID: 1, Amount: 0}, {ID: 1, Amount: 1, Currency: "USD"},
		{ID: 1, Amount: 1, ExpiresAt: time.Now().Add(-time.Minute)}} {
		if _, err := a.Create(context.Background(), p); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("Create(%+v) = %v", p, err)
		}
	}
}

// alipayNotification is a notification as Alipay sends it for payment 9001 of 123.45,
// with edit applied before Alipay signs it with key.
func alipayNotification(key *rsa.PrivateKey, edit func(url.Values)) url.Values {
	f := url.Values{
		"gmt_create":       {"2026-11-28 18:00:01"},
		"charset":          {"utf-8"},
		"seller_email":     {"shop@example.com"},
		"subject":          {"Mall order & more"},
		"sign_type":        {"RSA2"},
		"buyer_id":         {"2088102000000002"},
		"invoice_amount":   {"123.45"},
		"notify_id":        {"2026112800222180002012345678901234"},
		"fund_bill_list":   {`[{"amount":"123.45","fundChannel":"ALIPAYACCOUNT"}]`},
		"notify_type":      {"trade_status_sync"},
		"trade_status":     {"TRADE_SUCCESS"},
		"receipt_amount":   {"123.45"},
		"buyer_pay_amount": {"123.45"},
		"app_id":           {testAppID},
		"seller_id":        {testSellerID},
		"gmt_payment":      {"2026-11-28 18:00:07"},
		"notify_time":      {"2026-11-28 18:00:08"},
		"version":          {"1.0"},
		"out_trade_no":     {"9001"},
		"total_amount":     {"123.45"},
		"trade_no":         {"2026112822001400000000000001"},
		"auth_app_id":      {testAppID},
		"buyer_logon_id":   {"bu***@example.com"},
		"point_amount":     {"0.00"},
	}
	if edit != nil {
		edit(f)
	}
	f.Set("sign", rsaSign(key, []byte(refCanonical(f, "sign_type"))))
	// Through the wire, as the notify endpoint gets it.
	parsed, err := url.ParseQuery(f.Encode())
	if err != nil {
		panic(err)
	}
	return parsed
}

func TestAlipayNotification(t *testing.T) {
	a := newTestAlipay(t, "")
	n, err := a.VerifyNotification(context.Background(), alipayNotification(alipayKey, nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Notification{PaymentID: 9001, TradeNo: "2026112822001400000000000001", Amount: 12345, Status: StatusSucceeded,
		NotifyID: "2026112800222180002012345678901234", PaidAt: time.Date(2026, 11, 28, 10, 0, 7, 0, time.UTC)}
	if !n.PaidAt.Equal(want.PaidAt) {
		t.Fatalf("PaidAt = %v, want %v", n.PaidAt, want.PaidAt)
	}
	n.PaidAt = want.PaidAt
	if n != want {
		t.Fatalf("notification = %+v, want %+v", n, want)
	}
	if a.Ack() != "success" || a.Name() != "alipay" {
		t.Fatal("Ack/Name")
	}
}

func TestAlipayNotificationStatuses(t *testing.T) {
	a := newTestAlipay(t, "")
	tests := []struct {
		give     string
		refund   string
		want     Status
		refunded int64
	}{
		{"TRADE_SUCCESS", "", StatusSucceeded, 0},
		{"TRADE_FINISHED", "", StatusSucceeded, 0},
		{"WAIT_BUYER_PAY", "", StatusPending, 0},
		{"TRADE_CLOSED", "", StatusClosed, 0},
		{"TRADE_SUCCESS", "20.00", StatusSucceeded, 2000}, // partial refund
		{"TRADE_CLOSED", "123.45", StatusClosed, 12345},   // full refund
	}
	for _, tt := range tests {
		f := alipayNotification(alipayKey, func(f url.Values) {
			f.Set("trade_status", tt.give)
			if tt.refund != "" {
				f.Set("refund_fee", tt.refund)
				f.Set("gmt_refund", "2026-11-29 10:00:00.123")
			}
			if tt.want == StatusPending {
				f.Del("gmt_payment")
			}
		})
		n, err := a.VerifyNotification(context.Background(), f)
		if err != nil || n.Status != tt.want || n.Refunded != tt.refunded {
			t.Errorf("%s/%s: %+v, %v", tt.give, tt.refund, n, err)
		}
	}
}

func TestAlipayNotificationRejects(t *testing.T) {
	a := newTestAlipay(t, "")
	set := func(k, v string) func(url.Values) { return func(f url.Values) { f.Set(k, v) } }
	tests := []struct {
		name string
		give url.Values
	}{
		{"tampered amount", func() url.Values {
			f := alipayNotification(alipayKey, nil)
			f.Set("total_amount", "0.01")
			return f
		}()},
		{"tampered out_trade_no", func() url.Values {
			f := alipayNotification(alipayKey, nil)
			f.Set("out_trade_no", "9002")
			return f
		}()},
		{"tampered status", func() url.Values {
			f := alipayNotification(alipayKey, set("trade_status", "WAIT_BUYER_PAY"))
			f.Set("trade_status", "TRADE_SUCCESS")
			return f
		}()},
		{"added field", func() url.Values {
			f := alipayNotification(alipayKey, nil)
			f.Set("refund_fee", "123.45")
			return f
		}()},
		{"duplicated field", func() url.Values {
			f := alipayNotification(alipayKey, nil)
			f.Add("total_amount", "0.01")
			return f
		}()},
		{"wrong app_id", alipayNotification(alipayKey, set("app_id", "2021000000000999"))},
		{"no app_id", alipayNotification(alipayKey, func(f url.Values) { f.Del("app_id") })},
		{"wrong seller_id", alipayNotification(alipayKey, set("seller_id", "2088000000000999"))},
		{"no seller_id", alipayNotification(alipayKey, func(f url.Values) { f.Del("seller_id") })},
		{"signed by another key", alipayNotification(otherKey, nil)},
		{"signed by us", alipayNotification(ourKey, nil)},
		{"missing sign", func() url.Values {
			f := alipayNotification(alipayKey, nil)
			f.Del("sign")
			return f
		}()},
		{"sign not base64", func() url.Values {
			f := alipayNotification(alipayKey, nil)
			f.Set("sign", "!!!")
			return f
		}()},
		{"sign_type RSA", alipayNotification(alipayKey, set("sign_type", "RSA"))},
		{"sign_type missing", alipayNotification(alipayKey, func(f url.Values) { f.Del("sign_type") })},
		{"charset gbk", alipayNotification(alipayKey, set("charset", "gbk"))},
		{"amount 3 decimals", alipayNotification(alipayKey, set("total_amount", "123.456"))},
		{"amount negative", alipayNotification(alipayKey, set("total_amount", "-1"))},
		{"amount exponent", alipayNotification(alipayKey, set("total_amount", "1e3"))},
		{"amount zero", alipayNotification(alipayKey, set("total_amount", "0.00"))},
		{"amount missing", alipayNotification(alipayKey, func(f url.Values) { f.Del("total_amount") })},
		{"out_trade_no not ours", alipayNotification(alipayKey, set("out_trade_no", "ORDER-1"))},
		{"out_trade_no zero", alipayNotification(alipayKey, set("out_trade_no", "0"))},
		{"unknown trade_status", alipayNotification(alipayKey, set("trade_status", "PAID"))},
		{"missing trade_no", alipayNotification(alipayKey, func(f url.Values) { f.Del("trade_no") })},
		{"missing notify_id", alipayNotification(alipayKey, func(f url.Values) { f.Del("notify_id") })},
		{"malformed gmt_payment", alipayNotification(alipayKey, set("gmt_payment", "2026-11-28T18:00:07Z"))},
		{"refund over total", alipayNotification(alipayKey, set("refund_fee", "200.00"))},
		{"empty form", url.Values{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := a.VerifyNotification(context.Background(), tt.give)
			if !errors.Is(err, ErrBadNotification) {
				t.Fatalf("VerifyNotification = %+v, %v; want ErrBadNotification", n, err)
			}
		})
	}
}

// TestAlipayNotificationNoSeller: without a configured SellerID, seller_id is not checked.
func TestAlipayNotificationNoSeller(t *testing.T) {
	a := newTestAlipay(t, "")
	a.sellerID = ""
	if _, err := a.VerifyNotification(context.Background(), alipayNotification(alipayKey, func(f url.Values) { f.Del("seller_id") })); err != nil {
		t.Fatal(err)
	}
}

// fakeAlipay plays Alipay's gateway: it checks our signature and parameters and answers
// with the response object handler returns, signed with Alipay's key.
type fakeAlipay struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	calls   []string // methods
	biz     []map[string]any
	answer  func(method string, biz map[string]any) string // the *_response object
	mangle  func(body string) string                       // optional, on the whole body
	signKey *rsa.PrivateKey
	status  int // non-zero: answer this HTTP status and no body
}

func (g *fakeAlipay) methods() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.calls...)
}

func (g *fakeAlipay) bizAt(i int) map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.biz[i]
}

func newFakeAlipay(t *testing.T) *fakeAlipay {
	testKeys(t)
	g := &fakeAlipay{t: t, signKey: alipayKey}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeAlipay) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		g.t.Errorf("request %s %s", r.Method, r.Header.Get("Content-Type"))
	}
	if err := r.ParseForm(); err != nil {
		g.t.Errorf("form: %v", err)
	}
	method := r.PostForm.Get("method")
	biz := checkRequest(g.t, r.PostForm, method)
	if r.PostForm.Get("return_url") != "" {
		g.t.Errorf("return_url sent with %s", method)
	}
	g.mu.Lock()
	g.calls = append(g.calls, method)
	g.biz = append(g.biz, biz)
	answer, mangle, key, status := g.answer, g.mangle, g.signKey, g.status
	g.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	obj := answer(method, biz)
	name := strings.ReplaceAll(method, ".", "_") + "_response"
	body := fmt.Sprintf(`{"%s":%s,"sign":"%s"}`, name, obj, rsaSign(key, []byte(obj)))
	if mangle != nil {
		body = mangle(body)
	}
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	fmt.Fprint(w, body)
}

func TestAlipayQuery(t *testing.T) {
	g := newFakeAlipay(t)
	a := newTestAlipay(t, g.srv.URL)
	// Whitespace, escaped slashes and unicode escapes: the signature covers the raw bytes.
	g.answer = func(method string, biz map[string]any) string {
		if biz["out_trade_no"] != "9001" {
			t.Errorf("out_trade_no = %v", biz["out_trade_no"])
		}
		return `{ "code":"10000","msg":"Success","buyer_logon_id":"bu***@example.com","buyer_pay_amount":"0.00",` +
			`"out_trade_no":"9001","point_amount":"0.00","receipt_amount":"0.00","send_pay_date":"2026-11-28 18:00:07",` +
			`"total_amount":"123.45","trade_no":"2026112822001400000000000001","trade_status":"TRADE_SUCCESS",` +
			`"subject":"\u5546\u54c1 a\/b" }`
	}
	st, err := a.Query(context.Background(), 9001)
	if err != nil {
		t.Fatal(err)
	}
	if st != (State{Status: StatusSucceeded, TradeNo: "2026112822001400000000000001", Amount: 12345}) {
		t.Fatalf("State = %+v", st)
	}
	if m := g.methods(); len(m) != 1 || m[0] != "alipay.trade.query" {
		t.Fatalf("calls = %v", g.methods())
	}

	for give, want := range map[string]Status{"WAIT_BUYER_PAY": StatusPending, "TRADE_CLOSED": StatusClosed, "TRADE_FINISHED": StatusSucceeded} {
		g.answer = func(string, map[string]any) string {
			return `{"code":"10000","msg":"Success","out_trade_no":"9001","total_amount":"123.45","trade_no":"T1","trade_status":"` + give + `"}`
		}
		if st, err := a.Query(context.Background(), 9001); err != nil || st.Status != want {
			t.Errorf("%s: %+v, %v", give, st, err)
		}
	}
}

func TestAlipayQueryNotExist(t *testing.T) {
	g := newFakeAlipay(t)
	a := newTestAlipay(t, g.srv.URL)
	g.answer = func(string, map[string]any) string {
		return `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在","buyer_pay_amount":"0.00","invoice_amount":"0.00","out_trade_no":"9001","point_amount":"0.00","receipt_amount":"0.00"}`
	}
	st, err := a.Query(context.Background(), 9001)
	if err != nil || st != (State{Status: StatusPending}) {
		t.Fatalf("Query = %+v, %v", st, err)
	}
}

func TestAlipayGatewayErrors(t *testing.T) {
	tests := []struct {
		name       string
		answer     string
		mangle     func(string) string
		signKey    *rsa.PrivateKey
		wantBad    bool   // ErrBadResponse
		wantCode   string // GatewayError code
		wantSub    string
		wantTemp   bool
		wantStatus int // non-200 from the gateway
	}{
		{name: "business error", answer: `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.INVALID_PARAMETER","sub_msg":"参数无效"}`,
			wantCode: "40004", wantSub: "ACQ.INVALID_PARAMETER"},
		{name: "system error", answer: `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SYSTEM_ERROR","sub_msg":"系统错误"}`,
			wantCode: "40004", wantSub: "ACQ.SYSTEM_ERROR", wantTemp: true},
		{name: "service unavailable", answer: `{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}`,
			wantCode: "20000", wantSub: "isp.unknow-error", wantTemp: true},
		{name: "error_response", answer: `{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}`,
			mangle: func(b string) string {
				return strings.Replace(b, `"alipay_trade_query_response"`, `"error_response"`, 1)
			}, wantCode: "40002", wantSub: "isv.invalid-app-id"},
		{name: "signed by another key", answer: `{"code":"10000","msg":"Success","out_trade_no":"9001","total_amount":"1.00","trade_no":"T","trade_status":"TRADE_SUCCESS"}`,
			signKey: otherKey, wantBad: true},
		{name: "tampered after signing", answer: `{"code":"10000","msg":"Success","out_trade_no":"9001","total_amount":"1.00","trade_no":"T","trade_status":"WAIT_BUYER_PAY"}`,
			mangle: func(b string) string { return strings.Replace(b, "WAIT_BUYER_PAY", "TRADE_SUCCESS", 1) }, wantBad: true},
		{name: "reformatted after signing", answer: `{"code":"10000", "msg":"Success","out_trade_no":"9001","total_amount":"1.00","trade_no":"T","trade_status":"TRADE_SUCCESS"}`,
			mangle: func(b string) string { return strings.Replace(b, `"10000", "msg"`, `"10000","msg"`, 1) }, wantBad: true},
		{name: "unsigned error", answer: `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST"}`,
			mangle: func(b string) string { return b[:strings.LastIndex(b, `,"sign"`)] + "}" }, wantBad: true},
		{name: "empty sign", answer: `{"code":"10000","msg":"Success","out_trade_no":"9001","total_amount":"1.00","trade_no":"T","trade_status":"TRADE_SUCCESS"}`,
			mangle: func(b string) string { return b[:strings.LastIndex(b, `,"sign"`)] + `,"sign":""}` }, wantBad: true},
		{name: "not JSON", answer: `{}`, mangle: func(string) string { return "<html>busy</html>" }, wantBad: true},
		{name: "no response object", answer: `{}`, mangle: func(b string) string {
			return strings.Replace(b, `"alipay_trade_query_response"`, `"alipay_trade_close_response"`, 1)
		}, wantBad: true},
		{name: "malformed amount", answer: `{"code":"10000","msg":"Success","out_trade_no":"9001","total_amount":"1.005","trade_no":"T","trade_status":"TRADE_SUCCESS"}`,
			wantBad: true},
		{name: "another trade", answer: `{"code":"10000","msg":"Success","out_trade_no":"9002","total_amount":"1.00","trade_no":"T","trade_status":"TRADE_SUCCESS"}`,
			wantBad: true},
		{name: "unknown status", answer: `{"code":"10000","msg":"Success","out_trade_no":"9001","total_amount":"1.00","trade_no":"T","trade_status":"PAID"}`,
			wantBad: true},
		{name: "HTTP 502", answer: `{}`, wantStatus: http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeAlipay(t)
			a := newTestAlipay(t, g.srv.URL)
			g.answer = func(string, map[string]any) string { return tt.answer }
			g.mangle = tt.mangle
			if tt.signKey != nil {
				g.signKey = tt.signKey
			}
			g.status = tt.wantStatus
			st, err := a.Query(context.Background(), 9001)
			if err == nil {
				t.Fatalf("Query = %+v, want an error", st)
			}
			if errors.Is(err, ErrBadResponse) != tt.wantBad {
				t.Fatalf("err = %v, ErrBadResponse want %v", err, tt.wantBad)
			}
			var ge *GatewayError
			if tt.wantCode != "" {
				if !errors.As(err, &ge) || ge.Code != tt.wantCode || ge.SubCode != tt.wantSub || ge.Temporary() != tt.wantTemp {
					t.Fatalf("err = %#v, want code %s/%s temporary %v", err, tt.wantCode, tt.wantSub, tt.wantTemp)
				}
			} else if errors.As(err, &ge) {
				t.Fatalf("err = %v is a GatewayError", err)
			}
		})
	}
}

func TestAlipayTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	a := newTestAlipay(t, srv.URL)
	a.timeout = 100 * time.Millisecond
	start := time.Now()
	if _, err := a.Query(context.Background(), 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Query = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	// The caller's context bounds the call too.
	a.timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := a.Close(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want a deadline error", err)
	}
}

func TestAlipayClose(t *testing.T) {
	tests := []struct {
		name       string
		close      string // the close response object
		query      string // the query response object, when Close follows up
		wantErr    error
		wantGWCode string
		wantCalls  string
	}{
		{name: "closed", close: `{"code":"10000","msg":"Success","out_trade_no":"9001","trade_no":"T"}`,
			wantCalls: "alipay.trade.close"},
		{name: "not exist", close: `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在"}`,
			wantCalls: "alipay.trade.close"},
		{name: "already closed", close: `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_STATUS_ERROR","sub_msg":"交易状态不合法"}`,
			query:     `{"code":"10000","msg":"Success","out_trade_no":"9001","total_amount":"1.00","trade_no":"T","trade_status":"TRADE_CLOSED"}`,
			wantCalls: "alipay.trade.close alipay.trade.query"},
		{name: "paid", close: `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_STATUS_ERROR","sub_msg":"交易状态不合法"}`,
			query:   `{"code":"10000","msg":"Success","out_trade_no":"9001","total_amount":"1.00","trade_no":"T","trade_status":"TRADE_SUCCESS"}`,
			wantErr: ErrPaid, wantCalls: "alipay.trade.close alipay.trade.query"},
		{name: "refused", close: `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SYSTEM_ERROR","sub_msg":"系统错误"}`,
			wantGWCode: "ACQ.SYSTEM_ERROR", wantCalls: "alipay.trade.close"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeAlipay(t)
			a := newTestAlipay(t, g.srv.URL)
			g.answer = func(method string, biz map[string]any) string {
				if biz["out_trade_no"] != "9001" {
					t.Errorf("out_trade_no = %v", biz["out_trade_no"])
				}
				if method == "alipay.trade.query" {
					return tt.query
				}
				return tt.close
			}
			err := a.Close(context.Background(), 9001)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Close = %v, want %v", err, tt.wantErr)
				}
			case tt.wantGWCode != "":
				var ge *GatewayError
				if !errors.As(err, &ge) || ge.SubCode != tt.wantGWCode {
					t.Fatalf("Close = %v, want %s", err, tt.wantGWCode)
				}
			case err != nil:
				t.Fatalf("Close = %v", err)
			}
			if got := strings.Join(g.methods(), " "); got != tt.wantCalls {
				t.Fatalf("calls = %s, want %s", got, tt.wantCalls)
			}
		})
	}
}

func TestAlipayRefund(t *testing.T) {
	g := newFakeAlipay(t)
	a := newTestAlipay(t, g.srv.URL)
	refunded := map[string]string{} // out_request_no -> refund_amount, Alipay's idempotency
	total := int64(0)
	g.answer = func(method string, biz map[string]any) string {
		if method != "alipay.trade.refund" || biz["out_trade_no"] != "9001" {
			t.Errorf("%s %v", method, biz)
		}
		no, amt := biz["out_request_no"].(string), biz["refund_amount"].(string)
		fundChange := "N"
		if prev, ok := refunded[no]; ok {
			if prev != amt {
				return `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.REFUND_AMT_NOT_EQUAL_TOTAL","sub_msg":"退款金额与退款请求号不一致"}`
			}
		} else {
			fen, err := ParseYuan(amt)
			if err != nil {
				t.Errorf("refund_amount %q: %v", amt, err)
			}
			if total+fen > 12345 {
				return `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.REFUND_AMT_RESTRICTION","sub_msg":"退款金额超限"}`
			}
			refunded[no], total, fundChange = amt, total+fen, "Y"
		}
		return fmt.Sprintf(`{"code":"10000","msg":"Success","buyer_logon_id":"bu***@example.com","fund_change":"%s","gmt_refund_pay":"2026-11-29 10:00:00","out_trade_no":"9001","refund_fee":"%s","send_back_fee":"0.00","trade_no":"T"}`,
			fundChange, FormatYuan(total))
	}
	ctx := context.Background()
	r, err := a.Refund(ctx, RefundRequest{PaymentID: 9001, RefundID: 77, Amount: 2000, Reason: "broken"})
	if err != nil || r.Refunded != 2000 {
		t.Fatalf("Refund = %+v, %v", r, err)
	}
	if g.bizAt(0)["refund_amount"] != "20.00" || g.bizAt(0)["out_request_no"] != "77" || g.bizAt(0)["refund_reason"] != "broken" {
		t.Fatalf("biz_content = %v", g.bizAt(0))
	}
	if r, err := a.Refund(ctx, RefundRequest{PaymentID: 9001, RefundID: 77, Amount: 2000}); err != nil || r.Refunded != 2000 {
		t.Fatalf("repeated Refund = %+v, %v", r, err)
	}
	if r, err := a.Refund(ctx, RefundRequest{PaymentID: 9001, RefundID: 78, Amount: 1}); err != nil || r.Refunded != 2001 {
		t.Fatalf("second Refund = %+v, %v", r, err)
	}
	var ge *GatewayError
	if _, err := a.Refund(ctx, RefundRequest{PaymentID: 9001, RefundID: 77, Amount: 2001}); !errors.As(err, &ge) || ge.SubCode != "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL" {
		t.Fatalf("reused RefundID = %v", err)
	}
	if _, err := a.Refund(ctx, RefundRequest{PaymentID: 9001, RefundID: 79, Amount: 12345}); !errors.As(err, &ge) || ge.SubCode != "ACQ.REFUND_AMT_RESTRICTION" {
		t.Fatalf("over-refund = %v", err)
	}
	if _, err := a.Refund(ctx, RefundRequest{PaymentID: 9001, RefundID: 0, Amount: 1}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("RefundID 0 = %v", err)
	}
	calls := len(g.methods())
	g.answer = func(string, map[string]any) string {
		return `{"code":"10000","msg":"Success","fund_change":"Y","out_trade_no":"9001","refund_fee":"1.0.0","trade_no":"T"}`
	}
	if _, err := a.Refund(ctx, RefundRequest{PaymentID: 9001, RefundID: 80, Amount: 1}); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("malformed refund_fee = %v", err)
	}
	if len(g.methods()) != calls+1 {
		t.Fatalf("calls = %v", g.methods())
	}
}

// TestAlipayRefundRefusal: a business refusal is ErrRefundRefused (the *GatewayError rides
// along); a Temporary code and a transport failure are not.
func TestAlipayRefundRefusal(t *testing.T) {
	g := newFakeAlipay(t)
	a := newTestAlipay(t, g.srv.URL)
	tests := []struct {
		give    string // the gateway's answer
		refused bool
	}{
		{`{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SELLER_BALANCE_NOT_ENOUGH","sub_msg":"卖家余额不足"}`, true},
		{`{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_HAS_CLOSE","sub_msg":"交易已经关闭"}`, true},
		{`{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_ALLOW_REFUND","sub_msg":"当前交易不允许退款"}`, true},
		{`{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SYSTEM_ERROR","sub_msg":"系统错误"}`, false},
		{`{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error","sub_msg":"系统繁忙"}`, false},
	}
	for _, tt := range tests {
		g.answer = func(string, map[string]any) string { return tt.give }
		_, err := a.Refund(context.Background(), RefundRequest{PaymentID: 9001, RefundID: 77, Amount: 1})
		var ge *GatewayError
		if !errors.As(err, &ge) || errors.Is(err, ErrRefundRefused) != tt.refused {
			t.Errorf("%s: err %v, want refused %v", tt.give, err, tt.refused)
		}
	}
	a = newTestAlipay(t, "http://127.0.0.1:1") // nothing listens: a transport failure
	if _, err := a.Refund(context.Background(), RefundRequest{PaymentID: 9001, RefundID: 77, Amount: 1}); err == nil ||
		errors.Is(err, ErrRefundRefused) {
		t.Errorf("transport failure: %v", err)
	}
}
