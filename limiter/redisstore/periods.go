package redisstore

import (
	"strconv"
	"time"
)

// The periods are those of limiter.Embedded: UTC days and months.

// dayOf is the UTC day of t, in days since 1970-01-01.
func dayOf(t time.Time) int64 { return t.Unix() / 86400 }

// monthOf is the UTC month of t, as year*12 + month-1.
func monthOf(t time.Time) int64 {
	u := t.UTC()
	return int64(u.Year())*12 + int64(u.Month()) - 1
}

func untilNextDay(now time.Time) time.Duration {
	u := now.UTC()
	return time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC).Sub(u)
}

func untilNextMonth(now time.Time) time.Duration {
	u := now.UTC()
	return time.Date(u.Year(), u.Month()+1, 1, 0, 0, 0, 0, time.UTC).Sub(u)
}

// unixNanos formats t for the scripts, which compare such times as decimal strings: times
// before 1970 (never a token's) count as 1970.
func unixNanos(t time.Time) string {
	return strconv.FormatInt(max(t.UnixNano(), 0), 10)
}
