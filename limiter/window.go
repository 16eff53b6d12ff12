package limiter

import (
	"sync"
	"time"
)

// windowSlots is the ring's size: at least the 61 seconds a window can span (see minuteWindow),
// rounded up to a power of two so the slot of a second is a mask.
const windowSlots = 64

// minuteWindow counts one user's requests and tokens over a rolling 60 s, in one-second
// buckets held in a ring.
//
// A request made at t is counted in the bucket of second ceil(t) and leaves the window when the
// clock reaches that second + 60: never less than 60 s after it was made, so no span of 60 s of
// real time ever holds more than a limit. (Rounding down instead would let a request made at
// 12:00:00.9 leave at 12:01:00.0, 59.1 s later.) At now, the live buckets are those of the
// seconds in (floor(now)-60, ceil(now)]: 61 at most, so 64 slots never collide.
//
// Times passed to a window never go back (the caller clamps them to the user's newest), so a
// slot holding another second than the one being added holds an expired one.
type minuteWindow struct {
	secs   [windowSlots]int64 // the second (unix) each slot counts
	reqs   [windowSlots]int64
	tokens [windowSlots]int64
}

// windowPool recycles the windows of users idle for a minute: a window is 1.5 KiB, and most of
// the users the store knows have not made a request in the last minute.
var windowPool = sync.Pool{New: func() any { return new(minuteWindow) }}

func getWindow() *minuteWindow { return windowPool.Get().(*minuteWindow) }

func putWindow(w *minuteWindow) {
	*w = minuteWindow{}
	windowPool.Put(w)
}

func slotOf(sec int64) int { return int(sec & (windowSlots - 1)) }

// ceilSec is the second a request made at ns (unix nanoseconds) is counted in.
func ceilSec(ns int64) int64 { return -floorDiv(-ns, 1e9) }

// expiredBy is the newest second whose bucket has left the window at ns.
func expiredBy(ns int64) int64 { return floorDiv(ns, 1e9) - 60 }

// windowSums is what a window holds at a time.
type windowSums struct {
	reqs, tokens int64
	// The newest seconds with requests and with tokens (0: none): the window is rid of them
	// 60 s after.
	newestReq, newestTok int64
}

// sums reads the window at ns, in one pass: it runs on every request.
func (w *minuteWindow) sums(ns int64) windowSums {
	var s windowSums
	gone := expiredBy(ns)
	for i := range w.secs {
		if sec := w.secs[i]; sec > gone {
			if r := w.reqs[i]; r != 0 {
				s.reqs += r
				s.newestReq = max(s.newestReq, sec)
			}
			if t := w.tokens[i]; t != 0 {
				s.tokens += t
				s.newestTok = max(s.newestTok, sec)
			}
		}
	}
	return s
}

// resetAfter is how long from now (unix ns) until a window whose newest counted second is
// newest is empty: x-ratelimit-reset-* (0 when it is empty already).
func resetAfter(newest, now int64) time.Duration {
	if newest == 0 {
		return 0
	}
	return time.Duration((newest+60)*1e9 - now)
}

// add counts a request made at ns and returns the second it is counted in.
func (w *minuteWindow) add(ns, reqs, tokens int64) int64 {
	sec := ceilSec(ns)
	i := slotOf(sec)
	if w.secs[i] != sec {
		w.secs[i], w.reqs[i], w.tokens[i] = sec, 0, 0
	}
	w.reqs[i] += reqs
	w.tokens[i] += tokens
	return sec
}

// adjustTokens changes the tokens counted in second sec, if its bucket is still held; a bucket
// never goes below zero.
func (w *minuteWindow) adjustTokens(sec, delta int64) {
	if i := slotOf(sec); w.secs[i] == sec {
		w.tokens[i] = max(w.tokens[i]+delta, 0)
	}
}

// waitFor is how long from now until excess of vals (reqs or tokens) has left the window,
// which is at ns (ns >= now: the user's clamped time). The caller knows excess can leave.
func (w *minuteWindow) waitFor(vals *[windowSlots]int64, ns, now, excess int64) time.Duration {
	for sec := expiredBy(ns) + 1; sec <= ceilSec(ns); sec++ {
		if i := slotOf(sec); w.secs[i] == sec {
			if excess -= vals[i]; excess <= 0 {
				return time.Duration((sec+60)*1e9 - now)
			}
		}
	}
	return time.Minute // unreachable when excess fits the window's contents
}

// emptyAt is when (unix ns) everything now counted will have left the window (0 if nothing
// is counted).
func (w *minuteWindow) emptyAt() int64 {
	newest := int64(0)
	for i := range w.secs {
		if (w.reqs[i] != 0 || w.tokens[i] != 0) && w.secs[i] > newest {
			newest = w.secs[i]
		}
	}
	if newest == 0 {
		return 0
	}
	return (newest + 60) * 1e9
}
