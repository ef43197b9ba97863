package payment

import (
	"errors"
	"strconv"
)

// maxFen bounds amounts: Alipay's limit for one trade is 100,000,000.00 yuan. Staying far
// below MaxInt64 keeps every sum of a few amounts exact.
const maxFen = 100_000_000_00

var errAmount = errors.New("malformed amount")

// FormatYuan formats fen as yuan with exactly two decimals ("0.01", "123.45"), the way
// gateways take amounts. It uses integer arithmetic only. fen must not be negative.
func FormatYuan(fen int64) string {
	if fen < 0 {
		return "-" + FormatYuan(-fen)
	}
	yuan, cents := fen/100, fen%100
	b := strconv.AppendInt(make([]byte, 0, 24), yuan, 10)
	b = append(b, '.', byte('0'+cents/10), byte('0'+cents%10))
	return string(b)
}

// ParseYuan parses a gateway's yuan amount into fen, exactly: digits with no sign and no
// leading zeros ("0" alone is fine), optionally '.' and one or two decimals. Anything else
// ("1.234", "-1", "+1", "1e3", " 1", "01", "1.", ".5", "Infinity") is an error, and so is
// an amount above 100,000,000.00.
func ParseYuan(s string) (int64, error) {
	intPart, frac := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			intPart, frac = s[:i], s[i+1:]
			if frac == "" || len(frac) > 2 {
				return 0, errAmount
			}
			break
		}
	}
	if intPart == "" || len(intPart) > 10 || (len(intPart) > 1 && intPart[0] == '0') {
		return 0, errAmount
	}
	var fen int64
	for i := 0; i < len(intPart); i++ {
		c := intPart[i]
		if c < '0' || c > '9' {
			return 0, errAmount
		}
		fen = fen*10 + int64(c-'0')
	}
	fen *= 100
	for i, scale := 0, int64(10); i < len(frac); i, scale = i+1, scale/10 {
		c := frac[i]
		if c < '0' || c > '9' {
			return 0, errAmount
		}
		fen += int64(c-'0') * scale
	}
	if fen > maxFen {
		return 0, errAmount
	}
	return fen, nil
}

// parseID parses a positive decimal int64 with no sign and no leading zeros.
func parseID(s string) (int64, bool) {
	if s == "" || len(s) > 19 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}
