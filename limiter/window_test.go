package limiter

import (
	"testing"
	"time"
)

const testSec = 1_769_903_880 // 2026-01-31T23:58:00Z

// at is testSec + d, in unix ns.
func at(d time.Duration) int64 { return testSec*1e9 + int64(d) }

func TestWindow(t *testing.T) {
	var w minuteWindow
	w.add(at(0), 1, 5)
	w.add(at(0), 1, 1)
	w.add(at(10*time.Second), 1, 3)
	w.add(at(59*time.Second), 1, 7)
	for _, c := range []struct {
		at         time.Duration
		reqs, toks int64
	}{
		{59 * time.Second, 4, 16},
		{59*time.Second + 999*time.Millisecond, 4, 16}, // the +0s bucket is held to +60s
		{60 * time.Second, 2, 10}, {69 * time.Second, 2, 10}, {70 * time.Second, 1, 7},
		{118 * time.Second, 1, 7}, {119 * time.Second, 0, 0},
	} {
		if got := w.sums(at(c.at)); got.reqs != c.reqs || got.tokens != c.toks {
			r, tk := got.reqs, got.tokens
			t.Errorf("sums(+%v) = %d, %d; want %d, %d", c.at, r, tk, c.reqs, c.toks)
		}
	}
	now := at(59 * time.Second)
	if got := resetAfter(w.sums(now).newestTok, now); got != 60*time.Second {
		t.Errorf("reset = %v, want 60s", got)
	}
	if s := w.sums(at(200 * time.Second)); s != (windowSums{}) || resetAfter(s.newestTok, at(200*time.Second)) != 0 {
		t.Errorf("an empty window: %+v", s)
	}
	// 16 tokens in the window at +59s: 1 more needs the 6 of +0s gone (+60s), 8 more the 3 of
	// +10s too (+70s), 10 more all but the 7 of +59s (+119s).
	for _, c := range []struct {
		excess int64
		want   time.Duration
	}{{1, time.Second}, {6, time.Second}, {7, 11 * time.Second}, {9, 11 * time.Second}, {10, 60 * time.Second}, {16, 60 * time.Second}} {
		if got := w.waitFor(&w.tokens, now, now, c.excess); got != c.want {
			t.Errorf("waitFor(%d) = %v, want %v", c.excess, got, c.want)
		}
	}
	// Counted from the caller's earlier now when the user's time is later.
	if got := w.waitFor(&w.tokens, now, at(58*time.Second+500*time.Millisecond), 1); got != 1500*time.Millisecond {
		t.Errorf("waitFor from an earlier now = %v, want 1.5s", got)
	}

	w.adjustTokens(testSec, -4)
	w.adjustTokens(testSec+10, -100)
	if tk := w.sums(now).tokens; tk != 2+0+7 {
		t.Errorf("after adjust: tokens = %d, want 9 (never below 0 per bucket)", tk)
	}
	w.add(at(64*time.Second), 1, 1) // reuses the slot of +0s
	w.adjustTokens(testSec, 50)     // +0s is gone: no effect
	if tk := w.sums(at(64 * time.Second)).tokens; tk != 0+7+1 {
		t.Errorf("after reuse: tokens = %d, want 8", tk)
	}
	if got := w.emptyAt(); got != at(124*time.Second) {
		t.Errorf("emptyAt = %v after the base, want 124s", time.Duration(got-at(0)))
	}
	if got := new(minuteWindow).emptyAt(); got != 0 {
		t.Errorf("emptyAt of an empty window = %d", got)
	}
}

// TestWindowSubSecond: a request is held a full 60 s of real time, whatever the fraction of a
// second it was made at.
func TestWindowSubSecond(t *testing.T) {
	for _, made := range []time.Duration{0, time.Nanosecond, 300 * time.Millisecond, 999 * time.Millisecond} {
		var w minuteWindow
		w.add(at(made), 1, 0)
		before := at(made + 60*time.Second - time.Nanosecond)
		if r := w.sums(before).reqs; r != 1 {
			t.Errorf("made at +%v: left the window before 60 s had passed", made)
		}
		if got := w.waitFor(&w.reqs, before, before, 1); got < time.Nanosecond {
			t.Errorf("made at +%v: waitFor just before 60 s = %v", made, got)
		}
		if r := w.sums(at(made + 61*time.Second)).reqs; r != 0 {
			t.Errorf("made at +%v: still in the window after 61 s", made)
		}
	}
}

func TestUSD(t *testing.T) {
	for _, c := range []struct {
		usd  float64
		want Nanos
	}{{0, 0}, {1, 1e9}, {0.5, 5e8}, {1e-9, 1}, {1.5e-9, 2}, {0.0000000001, 1}, {2.50, 2_500_000_000}, {1000, 1e12}} {
		if got := USD(c.usd); got != c.want {
			t.Errorf("USD(%v) = %d, want %d", c.usd, got, c.want)
		}
	}
	if got := Nanos(1_250_000_000).Dollars(); got != 1.25 {
		t.Errorf("Dollars = %v, want 1.25", got)
	}
}

func TestPeriods(t *testing.T) {
	// Integer calendar arithmetic agrees with package time, day by day over four centuries
	// either side of 1970 (leap years, the 1900 and 2000 rules).
	for d := int64(-146097); d <= 146097; d++ {
		tm := time.Unix(d*86400, 0).UTC()
		y, m, dd := civil(d)
		if y != int64(tm.Year()) || m != int64(tm.Month()) || dd != int64(tm.Day()) {
			t.Fatalf("civil(%d) = %d-%d-%d, want %s", d, y, m, dd, tm.Format(time.DateOnly))
		}
		if got := monthStart(monthOfDay(d)); got.Year() != tm.Year() || got.Month() != tm.Month() || got.Day() != 1 {
			t.Fatalf("monthStart(monthOfDay(%d)) = %s, want the 1st of %s", d, got, tm.Format("2006-01"))
		}
	}
	ny := time.FixedZone("UTC-5", -5*3600)
	for _, c := range []struct {
		t              time.Time
		day, nextMonth time.Duration
	}{
		{time.Date(2026, 1, 31, 23, 58, 0, 0, time.UTC), 2 * time.Minute, 2 * time.Minute},
		{time.Date(2026, 1, 31, 18, 58, 0, 0, ny), 2 * time.Minute, 2 * time.Minute},
		{time.Date(2026, 2, 15, 0, 0, 0, 0, time.UTC), 24 * time.Hour, 14 * 24 * time.Hour},
		{time.Date(2026, 12, 31, 23, 59, 59, 500e6, time.UTC), 500 * time.Millisecond, 500 * time.Millisecond},
	} {
		d := dayOfNanos(c.t.UnixNano())
		if d != dayOf(c.t) {
			t.Errorf("dayOfNanos(%s) = %d, dayOf = %d", c.t, d, dayOf(c.t))
		}
		if got := untilDay(c.t, d+1); got != c.day {
			t.Errorf("until the next day from %s = %v, want %v", c.t, got, c.day)
		}
		if got := untilMonth(c.t, monthOfDay(d)+1); got != c.nextMonth {
			t.Errorf("until the next month from %s = %v, want %v", c.t, got, c.nextMonth)
		}
	}
	if dayString(dayOf(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))) != "2026-02-01" {
		t.Error("dayString")
	}
	if ceilSec(-1) != 0 || ceilSec(0) != 0 || ceilSec(1) != 1 || ceilSec(1e9) != 1 || ceilSec(1e9+1) != 2 {
		t.Error("ceilSec")
	}
}
