package main

import (
	"fmt"
	"time"
)

// limits are how much the heap and the goroutines may grow between the first minute after the
// warm-up and the last before the soak counts them as not flat.
type limits struct {
	heapPct      float64 // the heap after GC fails above this percentage ...
	heapBytes    uint64  // ... or above this many bytes
	goroutinePct float64 // the goroutines fail above this percentage ...
	goroutineMin int     // ... when they grew by more than this many too (a few is noise)
}

// baseline is the index of the sample that ends the first minute after warmup, or -1.
func baseline(samples []sample, warmup time.Duration) int {
	for i, s := range samples {
		if s.at >= warmup+time.Minute-time.Second { // a line is late, never early
			return i
		}
	}
	return -1
}

// verdict compares the last sample with the baseline, and the one at rest (when there is one)
// with the first, before the traffic: the lines to print, and what failed (empty when the run
// was flat and every answer was as expected).
func verdict(samples []sample, rest *sample, warmup time.Duration, lim limits, unexpected int) (lines, failed []string) {
	b := baseline(samples, warmup)
	if b < 0 || b == len(samples)-1 {
		return []string{"no minute after the warm-up to compare"}, []string{"too short"}
	}
	base, last := samples[b], samples[len(samples)-1]
	between := fmt.Sprintf("%s -> %s", fmtElapsed(base.at), fmtElapsed(last.at))

	heapGrowth := int64(last.heap) - int64(base.heap)
	heapPct := 100 * float64(heapGrowth) / float64(base.heap)
	heapOver := heapGrowth > int64(lim.heapBytes) || heapPct > lim.heapPct
	perUser := ""
	if came := last.came - base.came; came > 0 {
		perUser = fmt.Sprintf(", %+d B per user who came meanwhile (%d)", heapGrowth/int64(came), came)
	}
	lines = append(lines, fmt.Sprintf("heap after GC %s: %s -> %s, %s (%+.1f%%)%s; limit +%.0f%% or +%s: %s",
		between, mib(base.heap), mib(last.heap), signedMiB(heapGrowth), heapPct, perUser, lim.heapPct, mib(lim.heapBytes), flat(!heapOver)))
	if heapOver {
		failed = append(failed, "heap")
	}

	// Goroutines serving connections follow the traffic, and the idle upstream connections of
	// each config replaced in the last two minutes (reverse_proxy's keep-alive), by dozens from
	// one minute to the next: they are judged at rest. The others should not move.
	others := func(s sample) int { return s.goroutines - s.onConns }
	goGrowth := others(last) - others(base)
	goPct := 100 * float64(goGrowth) / float64(max(others(base), 1))
	goOver := goGrowth > lim.goroutineMin && goPct > lim.goroutinePct
	lines = append(lines, fmt.Sprintf("goroutines other than connections' %s: %d -> %d, %+d (%+.1f%%); limit +%.0f%% (and +%d): %s; on connections %d -> %d, judged at rest",
		between, others(base), others(last), goGrowth, goPct, lim.goroutinePct, lim.goroutineMin, flat(!goOver), base.onConns, last.onConns))
	if goOver {
		failed = append(failed, "goroutines")
	}

	if rest != nil {
		// At rest, every goroutine a request or a connection started should have ended.
		first := samples[0]
		growth := rest.goroutines - first.goroutines
		over := growth > lim.goroutineMin
		lines = append(lines, fmt.Sprintf("goroutines at rest: %d before the traffic, %d after it, %+d; limit +%d: %s; heap at rest %s (before the traffic %s)",
			first.goroutines, rest.goroutines, growth, lim.goroutineMin, flat(!over), mib(rest.heap), mib(first.heap)))
		if over {
			failed = append(failed, "goroutines at rest")
		}
	}

	rssGrowth := int64(last.rss) - int64(base.rss)
	lines = append(lines, fmt.Sprintf("RSS %s: %s -> %s, %s (%+.1f%%); not judged: it holds the store's mapped file and memory the Go runtime keeps",
		between, mib(base.rss), mib(last.rss), signedMiB(rssGrowth), 100*float64(rssGrowth)/float64(base.rss)))

	lines = append(lines, fmt.Sprintf("unexpected answers and failed reloads: %d", unexpected))
	if unexpected > 0 {
		failed = append(failed, "unexpected answers")
	}
	return lines, failed
}

func flat(ok bool) string {
	if ok {
		return "flat"
	}
	return "GREW"
}

func signedMiB(b int64) string { return fmt.Sprintf("%+.1fMiB", float64(b)/(1<<20)) }
