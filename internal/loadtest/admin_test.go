package loadtest

import (
	"errors"
	"expvar"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"runtime"
	"strings"
	"testing"
)

// fakeAdmin serves what Caddy's admin API serves at the paths Admin uses, in this process.
func fakeAdmin(t *testing.T) Admin {
	mux := http.NewServeMux()
	mux.Handle("/debug/vars", expvar.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/load", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.Method != http.MethodPost || r.Header.Get("Content-Type") != "text/caddyfile":
			http.Error(w, `{"error":"not a Caddyfile load"}`, http.StatusBadRequest)
		case strings.Contains(string(body), "bad"):
			http.Error(w, `{"error":"adapting config: bad directive"}`, http.StatusBadRequest)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return Admin{Addr: strings.TrimPrefix(srv.URL, "http://"), Client: srv.Client()}
}

func TestAdminHeapAfterGCForcesACollection(t *testing.T) {
	a := fakeAdmin(t)
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var profile strings.Builder
	ms, err := a.HeapAfterGC(&profile)
	if err != nil {
		t.Fatal(err)
	}
	if ms.NumGC <= before.NumGC {
		t.Errorf("NumGC %d after, %d before: no collection was forced", ms.NumGC, before.NumGC)
	}
	if ms.HeapAlloc == 0 || ms.HeapAlloc > ms.HeapSys || ms.Sys == 0 {
		t.Errorf("memstats %+v", ms)
	}
	if !strings.HasPrefix(profile.String(), "\x1f\x8b") { // a gzipped profile
		t.Errorf("the heap profile starts %q", profile.String()[:min(10, profile.Len())])
	}
}

func TestAdminGoroutinesCountsThem(t *testing.T) {
	a := fakeAdmin(t)
	block := make(chan struct{})
	defer close(block)
	for range 20 {
		go func() { <-block }()
	}
	var profile strings.Builder
	n, err := a.Goroutines(&profile)
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 || n > runtime.NumGoroutine()+10 {
		t.Errorf("%d goroutines; this process has %d", n, runtime.NumGoroutine())
	}
	if !strings.HasPrefix(profile.String(), "goroutine profile: total ") {
		t.Errorf("the profile starts %q", profile.String()[:min(40, profile.Len())])
	}
}

func TestAdminLoadSendsACaddyfileAndReportsARefusal(t *testing.T) {
	a := fakeAdmin(t)
	if err := a.Load([]byte("http://x {\n}\n")); err != nil {
		t.Fatal(err)
	}
	err := a.Load([]byte("http://x {\n\tbad\n}\n"))
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 400 || !strings.Contains(err.Error(), "bad directive") {
		t.Fatalf("load of a bad config: %v", err)
	}
}

func TestAdminGetNamesThePathOfAFailure(t *testing.T) {
	err := fakeAdmin(t).Get("/debug/pprof/nosuchprofile", io.Discard)
	if err == nil || !strings.Contains(err.Error(), "/debug/pprof/nosuchprofile") {
		t.Fatalf("got %v", err)
	}
}

func TestRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc here")
	}
	rss, err := RSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss < 1<<20 || rss > 1<<40 {
		t.Fatalf("RSS %d bytes", rss)
	}
	if _, err := RSS(-1); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}
