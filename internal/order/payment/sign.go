package payment

import (
	"errors"
	"slices"
	"strings"
)

var errDuplicateField = errors.New("a field occurs more than once")

// canonical is the string both gateways sign: the form's fields except skip, with empty
// values left out, sorted by name, joined as k=v with '&', values not escaped. A field
// given twice is an error: which value was signed would be ambiguous.
func canonical(form map[string][]string, skip ...string) (string, error) {
	keys := make([]string, 0, len(form))
	for k, vs := range form {
		if len(vs) > 1 {
			return "", errDuplicateField
		}
		if len(vs) == 0 || vs[0] == "" || slices.Contains(skip, k) {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(form[k][0])
	}
	return b.String(), nil
}
