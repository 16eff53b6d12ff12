package limiter

import (
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	const s = 1_769_903_880 // 2026-01-31T23:58:00Z
	var w window
	w.add(s, 5)
	w.add(s, 1)
	w.add(s+10, 3)
	w.add(s+59, 7)
	for _, c := range []struct {
		now  int64
		want int64
	}{{s - 1, 0}, {s, 6}, {s + 10, 9}, {s + 59, 16}, {s + 60, 10}, {s + 69, 10}, {s + 70, 7}, {s + 118, 7}, {s + 119, 0}} {
		if got := w.sum(c.now); got != c.want {
			t.Errorf("sum(s+%d) = %d, want %d", c.now-s, got, c.want)
		}
	}
	if got := w.reset(s + 59); got != 60*time.Second {
		t.Errorf("reset = %v, want 60s", got)
	}
	if got := w.reset(s + 200); got != 0 {
		t.Errorf("reset of an empty window = %v, want 0", got)
	}
	// limit 16 is full at s+59: one more needs the 6 of s gone (s+60), 8 more the 3 of s+10
	// too (s+70), 17 can never fit.
	for _, c := range []struct {
		n    int64
		want time.Duration
	}{{0, 0}, {1, time.Second}, {6, time.Second}, {7, 11 * time.Second}, {9, 11 * time.Second}, {10, 60 * time.Second}, {17, 60 * time.Second}} {
		if got := w.waitFor(s+59, c.n, 16); got != c.want {
			t.Errorf("waitFor(%d) = %v, want %v", c.n, got, c.want)
		}
	}

	w.adjust(s, -4) // still held
	w.adjust(s+10, -100)
	if got := w.sum(s + 59); got != 2+0+7 {
		t.Errorf("after adjust: sum = %d, want 9 (never below 0 per bucket)", got)
	}
	w.add(s+60, 1)  // reuses s's bucket
	w.adjust(s, 50) // s is gone: no effect
	if got := w.sum(s + 60); got != 0+7+1 {
		t.Errorf("after reuse: sum = %d, want 8", got)
	}
	// Buckets holding zero do not hold the reset.
	var z window
	z.add(s, 0)
	if got := z.reset(s); got != 0 {
		t.Errorf("reset with only zeros = %v, want 0", got)
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
		if got := untilNextDay(c.t); got != c.day {
			t.Errorf("untilNextDay(%s) = %v, want %v", c.t, got, c.day)
		}
		if got := untilNextMonth(c.t); got != c.nextMonth {
			t.Errorf("untilNextMonth(%s) = %v, want %v", c.t, got, c.nextMonth)
		}
	}
	if monthOf(time.Date(2026, 1, 31, 19, 0, 0, 0, ny)) != monthOf(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("monthOf is not UTC")
	}
}
