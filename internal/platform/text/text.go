// Package text holds small string helpers shared by the platform and the modules.
package text

import "unicode/utf8"

// Truncate returns the longest prefix of s of at most n bytes that does not split a UTF-8
// sequence (for columns, log fields and protocol fields limited in bytes).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Ellipsis is Truncate with "…" appended when something was cut (for messages quoting
// client input).
func Ellipsis(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Truncate(s, n) + "…"
}
