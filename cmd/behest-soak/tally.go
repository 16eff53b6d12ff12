package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/behest/caddy-behest/internal/loadtest"
)

// Outcomes that are not a status code.
const (
	outcomeCut   = "cut"   // a stream the client left after its first event, on purpose
	outcomeNoAns = "noans" // no answer: the connection failed or the request timed out
	// No answer on a kept-alive connection that a reload closed as the request went out: the
	// keep-alive race of HTTP/1.1 servers shutting down gracefully. SDKs retry these.
	outcomeReset = "reset"
)

// reloadTimes are when the last reloads ran, to tell a request refused in the keep-alive race
// of a reload from one that got no answer for another reason.
type reloadTimes struct {
	mu    sync.Mutex
	spans [8][2]time.Time // start and end of the last reloads, a ring
	n     int
}

// begin records that a reload starts now; end(i) that it is over.
func (rt *reloadTimes) begin() (i int) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	i = rt.n % len(rt.spans)
	rt.spans[i] = [2]time.Time{time.Now()}
	rt.n++
	return i
}

func (rt *reloadTimes) end(i int) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.spans[i][1] = time.Now()
}

// near tells whether t is during a reload or within a second after one.
func (rt *reloadTimes) near(t time.Time) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, sp := range rt.spans {
		if !sp[0].IsZero() && !t.Before(sp[0]) && (sp[1].IsZero() || t.Before(sp[1].Add(time.Second))) {
			return true
		}
	}
	return false
}

// tally counts the outcomes of the soak's requests, this minute's and the whole run's, and
// what was not as expected (a bad token let through, a 5xx, a stream cut short).
type tally struct {
	reloads reloadTimes

	mu         sync.Mutex
	minute     map[string]int
	total      map[string]int
	unexpected int
	examples   []string // the first few unexpected outcomes, to print
}

func newTally() *tally {
	return &tally{minute: map[string]int{}, total: map[string]int{}}
}

// count records an outcome; unexpected says what was wrong with it, or is "".
func (t *tally) count(outcome, unexpected string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.minute[outcome]++
	t.total[outcome]++
	if unexpected != "" {
		t.failLocked(unexpected)
	}
}

// fail records something unexpected that is not a request's outcome (a failed reload).
func (t *tally) fail(what string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failLocked(what)
}

func (t *tally) failLocked(what string) {
	t.unexpected++
	if len(t.examples) < 10 {
		t.examples = append(t.examples, time.Now().Format("15:04:05.000 ")+what)
	}
}

// countErr records a call whose only expected answer is a success (a nil err).
func (t *tally) countErr(what string, err error) {
	if err == nil {
		t.count("200", "")
		return
	}
	if o := outcomeOf(err); o != outcomeNoAns {
		t.count(o, what+": "+err.Error())
		return
	}
	t.noAnswer(what, err)
}

// noAnswer counts a request that got no (whole) answer: as the keep-alive race of a reload
// when it came at one, else as unexpected.
func (t *tally) noAnswer(what string, err error) {
	if t.reloads.near(time.Now()) {
		t.count(outcomeReset, "")
		return
	}
	t.count(outcomeNoAns, what+": "+err.Error())
}

// outcomeOf is a failed call's outcome: the status it was answered with, or none.
func outcomeOf(err error) string {
	var se *loadtest.StatusError
	if errors.As(err, &se) {
		return strconv.Itoa(se.Status)
	}
	return outcomeNoAns
}

// takeMinute returns this minute's counts and starts the next minute's.
func (t *tally) takeMinute() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.minute
	t.minute = map[string]int{}
	return m
}

// totals are the whole run's counts, the unexpected ones and examples of those.
func (t *tally) totals() (map[string]int, int, []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.total), t.unexpected, slices.Clone(t.examples)
}

// sum is the number of requests counted in m.
func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// formatCounts prints counts as "200:1234 401:56 429:789 cut:12", status codes first.
func formatCounts(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
