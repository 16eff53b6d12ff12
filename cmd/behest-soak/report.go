package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/behest/caddy-behest/internal/loadtest"
)

// run is the soak's state that outlives a minute: the samples and the reloads.
type run struct {
	admin loadtest.Admin
	caddy *loadtest.Caddy
	dir   string
	tally *tally
	users *population

	samples []sample
	rest    *sample // after the traffic, once connections have closed

	mu                     sync.Mutex
	reloaded, reloadFailed int
}

// sample is one line of the report: the requests since the line before, and Caddy's memory
// and goroutines now.
type sample struct {
	at         time.Duration
	counts     map[string]int
	rss, heap  uint64
	goroutines int
	onConns    int // goroutines serving a connection (Caddy's clients' or its upstream's)
	came       int // new users so far
	reloads    int
}

// profileName is the file of sample i's heap or goroutine profile.
func profileName(kind string, i int, ext string) string {
	return fmt.Sprintf("%s-%02d.%s", kind, i, ext)
}

// sample measures Caddy at `at` into the report, with the counts of the requests since the
// sample before, and prints its line.
func (r *run) sample(at time.Duration, counts map[string]int) {
	i := len(r.samples)
	s := r.measure(at, i)
	s.counts = counts
	r.samples = append(r.samples, s)
	rate := 0.0
	if i > 0 {
		rate = float64(sum(counts)) / (at - r.samples[i-1].at).Seconds()
	}
	r.print(fmtElapsed(at), s, rate)
}

// sampleAtRest measures Caddy once the traffic has stopped and its connections have closed.
func (r *run) sampleAtRest(at time.Duration) {
	s := r.measure(at, len(r.samples))
	r.rest = &s
	r.print("rest", s, 0)
}

func (r *run) print(label string, s sample, rate float64) {
	fmt.Printf("%-7s %8d %6.0f  %-50s %9s %9s %10s %7d %7d\n", label, sum(s.counts), rate, formatCounts(s.counts),
		mib(s.rss), mib(s.heap), fmt.Sprintf("%d (%d)", s.goroutines, s.onConns), s.came, s.reloads)
}

// measure reads Caddy's RSS, heap after GC and goroutines at `at`, keeping the profiles as
// those of sample i. A measurement that fails is tried again, twice.
func (r *run) measure(at time.Duration, i int) sample {
	s := sample{at: at}
	var err error
	for try := 0; try < 3; try++ {
		if err = r.measureOnce(&s, i); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		fatalf("measuring caddy at %s: %v", fmtElapsed(at), err)
	}
	s.came, _ = r.users.counts()
	r.mu.Lock()
	s.reloads = r.reloaded
	r.mu.Unlock()
	return s
}

// heapReads is how many times the heap is read after a forced GC, a second apart, for one
// sample: the smallest is kept, so that what the requests in flight at one GC hold (a usage
// query over every user holds megabytes) is not taken for what stays.
const heapReads = 3

func (r *run) measureOnce(s *sample, i int) error {
	var err error
	if s.rss, err = loadtest.RSS(r.caddy.Pid()); err != nil {
		return err
	}
	var kept bytes.Buffer
	for n := range heapReads {
		if n > 0 {
			time.Sleep(time.Second)
		}
		var profile bytes.Buffer
		ms, err := r.admin.HeapAfterGC(&profile)
		if err != nil {
			return err
		}
		if n == 0 || ms.HeapAlloc < s.heap {
			s.heap, kept = ms.HeapAlloc, profile
		}
	}
	if err := os.WriteFile(filepath.Join(r.dir, profileName("heap", i, "pb.gz")), kept.Bytes(), 0o600); err != nil {
		return err
	}
	var goroutines bytes.Buffer
	if s.goroutines, err = r.admin.Goroutines(&goroutines); err != nil {
		return err
	}
	s.onConns = onConnections(goroutines.String())
	return os.WriteFile(filepath.Join(r.dir, profileName("goroutines", i, "txt")), goroutines.Bytes(), 0o600)
}

// onConnections counts the goroutines of a goroutine profile (debug=1) that serve a
// connection: net/http's server conns and its client's read and write loops. Their number
// follows the traffic and the connection pools; the others should stay put.
func onConnections(profile string) int {
	n, count := 0, 0
	for _, line := range strings.Split(profile, "\n") {
		if c, rest, ok := strings.Cut(line, " @ "); ok && rest != "" {
			count, _ = strconv.Atoi(c) // a stack's first line: "<count> @ <pcs>"
			continue
		}
		if count > 0 && (strings.Contains(line, "net/http.(*conn).serve") || strings.Contains(line, "net/http.(*persistConn).")) {
			n += count
			count = 0 // once per stack
		}
	}
	return n
}

func fmtElapsed(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

func mib(b uint64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }
