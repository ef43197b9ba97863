package httpx

import (
	"strings"
	"testing"
)

func TestDuplicateKeys(t *testing.T) {
	tests := []struct {
		give string
		want string // "" for no error, else a substring of the detail
	}{
		{give: `{"a":1,"b":2}`},
		{give: `{"a":{"a":1},"b":[{"a":1},{"a":2}]}`}, // the same key in different objects
		{give: `[{"a":1},{"b":{"c":[1,{"d":{}}]}}]`},
		{give: `{"a":[],"b":{},"c":null}`},
		{give: `{"a":1,"a":2}`, want: `"a" appears twice`},
		{give: `{"x":{"y":1,"z":[],"y":2}}`, want: `"y" appears twice`},
		{give: `{"x":[{"k":1},{"k":1,"k":2}]}`, want: `"k" appears twice`},
		{give: `{"x":{"y":{}},"x":1}`, want: `"x" appears twice`}, // after a nested object closes
		{give: `{"x":[[]],"x":1}`, want: `"x" appears twice`},
		{give: `"plain"`},
		{give: `{"\u0061":1,"a":2}`, want: `"a" appears twice`}, // escapes decode to the same key
	}
	for _, tt := range tests {
		err := duplicateKeys([]byte(tt.give))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.give, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: got %v, want %q", tt.give, err, tt.want)
		}
	}
}
