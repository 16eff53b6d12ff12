package limiter

import "time"

// window counts amounts over a rolling 60 s in one-second buckets. It is exact at one-second
// resolution: an amount added at second s counts until s+60.
type window struct {
	Secs [60]int64 // the unix second each bucket holds
	Vals [60]int64
}

// sum is the total over the 60 s ending at now.
func (w *window) sum(now int64) int64 {
	var total int64
	for i := range w.Secs {
		if w.Secs[i] > now-60 && w.Secs[i] <= now {
			total += w.Vals[i]
		}
	}
	return total
}

func (w *window) add(now, n int64) {
	i := now % 60
	if w.Secs[i] != now {
		w.Secs[i], w.Vals[i] = now, 0
	}
	w.Vals[i] += n
}

// adjust changes what was added at second at, if that second is still held.
func (w *window) adjust(at, delta int64) {
	i := at % 60
	if w.Secs[i] == at {
		w.Vals[i] = max(w.Vals[i]+delta, 0)
	}
}

// waitFor is how long until the window has room for n under limit.
func (w *window) waitFor(now, n, limit int64) time.Duration {
	excess := w.sum(now) + n - limit
	if excess <= 0 {
		return 0
	}
	// Buckets leave the window oldest first; find when enough has left.
	for s := now - 59; s <= now; s++ {
		i := s % 60
		if w.Secs[i] == s {
			excess -= w.Vals[i]
			if excess <= 0 {
				return time.Duration(s+60-now) * time.Second
			}
		}
	}
	return 60 * time.Second // n alone is over the limit: a minute is the most waiting can do
}

// reset is how long until everything now in the window has left it.
func (w *window) reset(now int64) time.Duration {
	newest := int64(-1)
	for i := range w.Secs {
		if w.Secs[i] > now-60 && w.Secs[i] <= now && w.Vals[i] > 0 && w.Secs[i] > newest {
			newest = w.Secs[i]
		}
	}
	if newest < 0 {
		return 0
	}
	return time.Duration(newest+60-now) * time.Second
}
