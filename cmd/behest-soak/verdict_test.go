package main

import (
	"slices"
	"testing"
	"time"
)

func TestVerdict(t *testing.T) {
	const mb = 1 << 20
	lim := limits{heapPct: 25, heapBytes: 20 * mb, goroutinePct: 50, goroutineMin: 10}
	line := func(min int, heap uint64, goroutines int) sample {
		return sample{at: time.Duration(min)*time.Minute + 300*time.Millisecond, heap: heap, goroutines: goroutines, rss: 100 * mb, came: 300 * min}
	}
	onConns := func(s sample, n int) sample { s.onConns = n; s.goroutines += n; return s }
	for _, tc := range []struct {
		name       string
		samples    []sample
		rest       *sample
		unexpected int
		failed     []string
	}{
		{"flat", []sample{line(0, 9*mb, 17), line(1, 30*mb, 60), line(2, 40*mb, 80), line(10, 45*mb, 100)}, nil, 0, nil},
		{"the warm-up is not compared", []sample{line(0, 9*mb, 17), line(1, 10*mb, 20), line(2, 40*mb, 80), line(3, 41*mb, 81)}, nil, 0, nil},
		{"heap by percent", []sample{line(2, 40*mb, 80), line(10, 51*mb, 80)}, nil, 0, []string{"heap"}},
		{"heap by MiB", []sample{line(2, 200*mb, 80), line(10, 221*mb, 80)}, nil, 0, []string{"heap"}},
		{"goroutines", []sample{line(2, 40*mb, 80), line(10, 40*mb, 121)}, nil, 0, []string{"goroutines"}},
		{"a few goroutines more is noise", []sample{line(2, 40*mb, 10), line(10, 40*mb, 20)}, nil, 0, nil},
		{"connections come and go", []sample{onConns(line(2, 40*mb, 20), 40), onConns(line(10, 40*mb, 20), 400)}, nil, 0, nil},
		{"both", []sample{line(2, 40*mb, 80), line(10, 80*mb, 200)}, nil, 0, []string{"heap", "goroutines"}},
		{"wrong answers", []sample{line(2, 40*mb, 80), line(10, 40*mb, 80)}, nil, 3, []string{"unexpected answers"}},
		{"at rest", []sample{line(0, 9*mb, 17), line(2, 40*mb, 80), line(10, 40*mb, 80)}, &sample{goroutines: 20}, 0, nil},
		{"goroutines left at rest", []sample{line(0, 9*mb, 17), line(2, 40*mb, 80), line(10, 40*mb, 80)}, &sample{goroutines: 40}, 0, []string{"goroutines at rest"}},
		{"too short", []sample{line(0, 9*mb, 17), line(1, 30*mb, 60), line(2, 40*mb, 80)}, nil, 0, []string{"too short"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, failed := verdict(tc.samples, tc.rest, time.Minute, lim, tc.unexpected)
			if !slices.Equal(failed, tc.failed) {
				t.Errorf("failed %v, want %v:\n%v", failed, tc.failed, lines)
			}
		})
	}
}

func TestReloadTimesNear(t *testing.T) {
	var rt reloadTimes
	if rt.near(time.Now()) {
		t.Fatal("near a reload before any")
	}
	i := rt.begin()
	if !rt.near(time.Now()) {
		t.Fatal("not near a reload under way")
	}
	rt.end(i)
	if !rt.near(time.Now()) || rt.near(time.Now().Add(2*time.Second)) || rt.near(time.Now().Add(-time.Second)) {
		t.Fatal("near should hold from the start to a second after the end")
	}
}

func TestFormatCounts(t *testing.T) {
	if got := formatCounts(map[string]int{"cut": 3, "429": 2, "200": 10, "reset": 1}); got != "200:10 429:2 cut:3 reset:1" {
		t.Fatal(got)
	}
}

func TestOnConnections(t *testing.T) {
	profile := `goroutine profile: total 12
5 @ 0x49034e 0x46c2e5 0x802d86 0x4983e1
#	0x802d85	net/http.(*persistConn).writeLoop+0xe5	/usr/local/go/src/net/http/transport.go:2652

4 @ 0x49034e 0x451557
#	0x5b1cb2	bufio.(*Reader).Peek+0x52			/usr/local/go/src/bufio/bufio.go:152
#	0x7e5212	net/http.(*conn).serve+0x7f2			/usr/local/go/src/net/http/server.go:2103

3 @ 0x424f49 0x492918 0xb818b3 0x4983e1
#	0x492917	os/signal.signal_recv+0x97	/usr/local/go/src/runtime/sigqueue.go:152
`
	if n := onConnections(profile); n != 9 {
		t.Fatalf("%d on connections, want 9", n)
	}
}
