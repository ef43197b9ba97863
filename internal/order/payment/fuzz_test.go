package payment

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The notification fuzz targets take a raw form body, as POST /api/v1/payments/notify/{provider}
// receives it. A sign value of "$SIGN" is replaced by a correct signature of the rest of
// the form (computed by the test's own reference code, with the test's keys), so seeds
// reach the parsing behind the signature check. The property: never a panic, and an
// accepted notification is one the reference verifier accepts too, with each field
// present once and the returned values exactly the form's. Seeds live in
// testdata/fuzz/<Target>/.

const signPlaceholder = "$SIGN"

// fuzzForm parses body like the notify endpoint and fills in a "$SIGN" placeholder.
func fuzzForm(body string, sign func(url.Values) string) url.Values {
	form, _ := url.ParseQuery(body) // whatever parsed; the endpoint would stop earlier
	if form == nil {
		form = url.Values{}
	}
	if vs := form["sign"]; len(vs) > 0 && vs[0] == signPlaceholder {
		vs[0] = sign(form)
	}
	return form
}

func onlyOnce(t *testing.T, form url.Values) {
	t.Helper()
	for k, vs := range form {
		if len(vs) != 1 {
			t.Fatalf("accepted a form with %s given %d times", k, len(vs))
		}
	}
}

func FuzzSandboxVerifyNotification(f *testing.F) {
	s := newTestSandbox(f)
	ts := strconv.FormatInt(sandboxNow.Unix(), 10)
	for _, seed := range []string{
		"payment_id=42&trade_no=sandbox-T&amount=100&status=succeeded&notify_id=N1&timestamp=" + ts + "&paid_at=" + ts + "&sign=$SIGN",
		"payment_id=42&trade_no=sandbox-T&amount=100&status=succeeded&notify_id=N1&timestamp=" + ts + "&sign=" + hex.EncodeToString(make([]byte, 32)),
		s.Sign(Notification{PaymentID: 7, TradeNo: "T", Amount: 1, Status: StatusClosed, NotifyID: "x", Refunded: 1}).Encode(),
	} {
		f.Add(seed)
	}
	refSign := func(form url.Values) string {
		m := hmac.New(sha256.New, []byte(testSecret))
		m.Write([]byte(refCanonical(form)))
		return hex.EncodeToString(m.Sum(nil))
	}
	f.Fuzz(func(t *testing.T, body string) {
		form := fuzzForm(body, refSign)
		n, err := s.VerifyNotification(context.Background(), form)
		if err != nil {
			if !errors.Is(err, ErrBadNotification) {
				t.Fatalf("error %v is not ErrBadNotification", err)
			}
			return
		}
		onlyOnce(t, form)
		if !hmac.Equal([]byte(form.Get("sign")), []byte(refSign(form))) {
			t.Fatalf("accepted a form the reference verifier rejects: %q", body)
		}
		for k := range form {
			if !sandboxFields[k] {
				t.Fatalf("accepted unknown field %q", k)
			}
		}
		signed, _ := strconv.ParseInt(form.Get("timestamp"), 10, 64)
		if age := sandboxNow.Sub(time.Unix(signed, 0)); age > 15*time.Minute || age < -maxSkew {
			t.Fatalf("accepted a notification signed %v ago", age)
		}
		if strconv.FormatInt(n.PaymentID, 10) != form.Get("payment_id") || strconv.FormatInt(n.Amount, 10) != form.Get("amount") ||
			string(n.Status) != form.Get("status") || n.TradeNo != form.Get("trade_no") || n.NotifyID != form.Get("notify_id") {
			t.Fatalf("notification %+v differs from the form %v", n, form)
		}
		if n.PaymentID <= 0 || n.Amount <= 0 || n.Amount > maxFen || n.Refunded < 0 || n.Refunded > n.Amount {
			t.Fatalf("out of range: %+v", n)
		}
	})
}

func FuzzAlipayVerifyNotification(f *testing.F) {
	a := newTestAlipay(f, "")
	valid := alipayNotification(alipayKey, nil)
	for _, seed := range []string{
		valid.Encode(),
		"app_id=" + testAppID + "&seller_id=" + testSellerID + "&out_trade_no=1&total_amount=0.01&trade_status=TRADE_SUCCESS&trade_no=T&notify_id=N&sign_type=RSA2&sign=$SIGN",
		alipayNotification(otherKey, nil).Encode(),
	} {
		f.Add(seed)
	}
	refSign := func(form url.Values) string { return rsaSign(alipayKey, []byte(refCanonical(form, "sign_type"))) }
	f.Fuzz(func(t *testing.T, body string) {
		form := fuzzForm(body, refSign)
		n, err := a.VerifyNotification(context.Background(), form)
		if err != nil {
			if !errors.Is(err, ErrBadNotification) {
				t.Fatalf("error %v is not ErrBadNotification", err)
			}
			return
		}
		onlyOnce(t, form)
		if err := rsaVerify(&alipayKey.PublicKey, []byte(refCanonical(form, "sign_type")), form.Get("sign")); err != nil {
			t.Fatalf("accepted a form the reference verifier rejects (%v): %q", err, body)
		}
		if form.Get("app_id") != testAppID || form.Get("seller_id") != testSellerID || form.Get("sign_type") != "RSA2" {
			t.Fatalf("accepted a foreign notification: %v", form)
		}
		amount, err := ParseYuan(form.Get("total_amount"))
		if err != nil || amount != n.Amount || n.Amount <= 0 {
			t.Fatalf("amount %d from %q", n.Amount, form.Get("total_amount"))
		}
		if strconv.FormatInt(n.PaymentID, 10) != form.Get("out_trade_no") || n.TradeNo != form.Get("trade_no") || n.NotifyID != form.Get("notify_id") {
			t.Fatalf("notification %+v differs from the form %v", n, form)
		}
		if ts := form.Get("trade_status"); n.Status == StatusSucceeded && ts != "TRADE_SUCCESS" && ts != "TRADE_FINISHED" {
			t.Fatalf("trade_status %q is success", ts)
		}
	})
}

// TestNotificationSeeds keeps the checked-in seeds meaningful: the seeds named "signed*"
// verify, every other one is rejected.
func TestNotificationSeeds(t *testing.T) {
	s := newTestSandbox(t)
	a := newTestAlipay(t, "")
	sandboxSign := func(form url.Values) string {
		m := hmac.New(sha256.New, []byte(testSecret))
		m.Write([]byte(refCanonical(form)))
		return hex.EncodeToString(m.Sum(nil))
	}
	alipaySign := func(form url.Values) string { return rsaSign(alipayKey, []byte(refCanonical(form, "sign_type"))) }
	targets := []struct {
		dir    string
		sign   func(url.Values) string
		verify func(context.Context, url.Values) (Notification, error)
	}{
		{"FuzzSandboxVerifyNotification", sandboxSign, s.VerifyNotification},
		{"FuzzAlipayVerifyNotification", alipaySign, a.VerifyNotification},
	}
	for _, tt := range targets {
		dir := filepath.Join("testdata", "fuzz", tt.dir)
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("%s: %v (no seeds)", dir, err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "string(") {
				t.Fatalf("%s/%s: not a string seed", tt.dir, e.Name())
			}
			body, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
			if err != nil {
				t.Fatalf("%s/%s: %v", tt.dir, e.Name(), err)
			}
			_, err = tt.verify(context.Background(), fuzzForm(body, tt.sign))
			if want := strings.HasPrefix(e.Name(), "signed"); (err == nil) != want {
				t.Errorf("%s/%s: err = %v, want accepted %v", tt.dir, e.Name(), err, want)
			}
		}
	}
}
