package realtime

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// A message travels through Redis as "<publish time, Unix nanoseconds> <JSON payload>":
// the time feeds the broadcast latency histogram, the payload is sent to clients as is.

var errEnvelope = errors.New("realtime: malformed envelope")

func encodeEnvelope(at time.Time, payload []byte) string {
	var b strings.Builder
	b.Grow(20 + len(payload))
	b.WriteString(strconv.FormatInt(at.UnixNano(), 10))
	b.WriteByte(' ')
	b.Write(payload)
	return b.String()
}

// decodeEnvelope splits an envelope into its publish time and payload.
func decodeEnvelope(s string) (time.Time, string, error) {
	ts, payload, ok := strings.Cut(s, " ")
	if !ok || ts == "" || len(ts) > 19 || payload == "" {
		return time.Time{}, "", errEnvelope
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, "", errEnvelope
	}
	return time.Unix(0, n), payload, nil
}
