package limiter

import "time"

// Days and months are numbered so that comparing two of them is comparing integers: a day is
// the number of UTC days since 1970-01-01, a month is year*12 + month-1 (UTC). Both are
// computed with integer arithmetic from unix nanoseconds, because Reserve needs them on every
// call and time.Time.Date is several times slower.

const nanosPerDay = int64(24 * time.Hour)

// dayOfNanos is the UTC day of a unix time in nanoseconds.
func dayOfNanos(ns int64) int64 { return floorDiv(ns, nanosPerDay) }

// dayOf is the UTC day of t.
func dayOf(t time.Time) int64 { return floorDiv(t.Unix(), 86400) }

// monthOfDay is the month a day falls in.
func monthOfDay(day int64) int64 {
	y, m, _ := civil(day)
	return y*12 + m - 1
}

// dayStart is when a day starts.
func dayStart(day int64) time.Time { return time.Unix(day*86400, 0).UTC() }

// monthStart is when a month starts.
func monthStart(month int64) time.Time {
	return time.Date(int(floorDiv(month, 12)), time.Month(month-floorDiv(month, 12)*12+1), 1, 0, 0, 0, 0, time.UTC)
}

// dayString formats a day as the usage API keys it: YYYY-MM-DD.
func dayString(day int64) string { return dayStart(day).Format(time.DateOnly) }

// untilDay is how long from now until day starts (at least 1ns, so a refusal always says to
// wait a little).
func untilDay(now time.Time, day int64) time.Duration {
	return max(dayStart(day).Sub(now), time.Nanosecond)
}

// untilMonth is how long from now until month starts (at least 1ns).
func untilMonth(now time.Time, month int64) time.Duration {
	return max(monthStart(month).Sub(now), time.Nanosecond)
}

// civil converts days since 1970-01-01 to a proleptic Gregorian year, month (1-12) and day
// (1-31). It is Howard Hinnant's civil_from_days.
func civil(days int64) (year, month, day int64) {
	z := days + 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11], March first
	day = doy - (153*mp+2)/5 + 1
	month = mp + 3
	if month > 12 {
		month -= 12
	}
	year = yoe + era*400
	if month <= 2 {
		year++
	}
	return year, month, day
}

// floorDiv is a / b rounded down (Go's / truncates toward zero).
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
