package behest_test

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// heapAfterGC is the live heap, in bytes, once garbage collection has run.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC() // a second cycle frees what finalizers of the first let go
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// behestGoroutines counts the goroutines running the plugin's code or its caches', not Caddy's
// or the test's.
func behestGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/behest/caddy-behest") || strings.Contains(g, "ristretto") {
			n++
		}
	}
	return n
}

// TestReloadsFreeTheOldConfig: 100 config reloads under light traffic (every config keeps an
// idle upstream connection, which holds its handler) grow the heap after GC by less than 20 MB,
// and leave no goroutine of an old config running.
func TestReloadsFreeTheOldConfig(t *testing.T) {
	prov := newProvider(t)
	is := newIssuer(t)
	// Each config differs (Caddy skips a reload to the same config) and has a trusted issuer,
	// so a verifier with its refresher and token cache.
	cfg := func(i int) string {
		return config(prov.URL, is.URL, fmt.Sprintf("max_request_body %d", 32<<20+i), "")
	}
	tester := gateway(t, cfg(0))
	// A reload closes the old server's idle client connections: one connection per request.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	m := mintToken(t, client, "test-project-key", `{"user_id":"user_reload","tier":2}`)
	tok := is.token(t, is.kid, map[string]any{"uid": "user_reload_trusted"})
	load := func(i int) {
		tester.InitServer(cfg(i), "caddyfile")
		if t.Failed() {
			t.FailNow()
		}
		for _, token := range []string{m.Token, tok} {
			// A connection the old server accepted as it shut down is closed unanswered.
			var resp *http.Response
			for attempt := 0; ; attempt++ {
				req, _ := http.NewRequest("POST", gatewayURL("/v1/chat/completions"), strings.NewReader(chatBody))
				req.Header.Set("Authorization", "Bearer "+token)
				var err error
				if resp, err = client.Do(req); err == nil {
					break
				} else if attempt == 5 {
					t.Fatalf("reload %d: %v", i, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if b := readBody(t, resp); resp.StatusCode != 200 {
				t.Fatalf("reload %d: %d %s", i, resp.StatusCode, b)
			}
		}
	}
	for i := 1; i <= 5; i++ { // warm: pools, metrics, the store
		load(i)
	}
	heap, goroutines := heapAfterGC(), behestGoroutines()
	for i := 6; i < 106; i++ {
		load(i)
	}
	grown := int64(heapAfterGC()) - int64(heap)
	t.Logf("100 reloads: heap after GC %+.1f MB, behest goroutines %d -> %d", float64(grown)/(1<<20), goroutines, behestGoroutines())
	if grown > 20<<20 {
		t.Errorf("100 reloads grew the heap after GC by %.1f MB, want under 20 MB", float64(grown)/(1<<20))
	}
	if n := behestGoroutines(); n > goroutines {
		t.Errorf("%d goroutines of the plugin after 100 reloads, %d before", n, goroutines)
	}
}
