package behest_test

// Hardening: what an attacker, or a bad day in production, can do to the gateway
// (CONTRACT.md, "Hardening guarantees").

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// One request per minute: a request that reserved anything would use it up.
const oneRequestTier = `tier one {
				requests_per_minute 1
				max_output_tokens 100
			}
			price * 0.01 0.01`

// TestNonCanonicalPathsRefused: a path the gateway and the provider could read two ways is
// refused (400 invalid_request) before anything is reserved, and never forwarded.
func TestNonCanonicalPathsRefused(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", oneRequestTier))
	c := tester.Client
	m := mintToken(t, c, "test-project-key", `{"user_id":"user_paths","tier":"one"}`)
	for _, path := range []string{
		"/v1/CHAT/completions",
		"/v1/Chat/Completions",
		"//v1/chat/completions",
		"/v1//chat/completions",
		"/v1/chat%2fcompletions",
		"/v1/chat%2Fcompletions",
		"/v1/audio/../chat/completions",
		"/v1/./chat/completions",
		"/v1/files%23/chat/completions",
		"/v1/chat/completions/",
		"/v1/chat/completions/.",
		"/v1/chat/completions;x",
	} {
		b := wantError(t, do(t, c, "POST", path, m.Token, chatBody, nil), 400, "invalid_request")
		if !strings.Contains(string(b), "canonical") {
			t.Errorf("%s: %s does not say what is wrong", path, b)
		}
	}
	if n := prov.count(); n != 0 {
		t.Fatalf("the provider received %d requests with non-canonical paths", n)
	}
	// Nothing was reserved: the one request a minute is still there.
	if resp := do(t, c, "POST", "/v1/chat/completions", m.Token, chatBody, nil); resp.StatusCode != 200 {
		t.Fatalf("a canonical request after the refusals: %d %s", resp.StatusCode, readBody(t, resp))
	} else {
		readBody(t, resp)
	}
}

// TestRawRequestTargetsRefused sends request targets that Go's client would not write as they
// are, over a raw connection.
func TestRawRequestTargetsRefused(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", ""))
	m := mintToken(t, tester.Client, "test-project-key", `{"user_id":"user_raw"}`)
	for _, target := range []string{`/v1\chat/completions`, "/v1/chat/%63ompletions"} {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", gatewayPort))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			target, m.Token, len(chatBody), chatBody)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 400 {
			t.Errorf("%s: status %d, want 400", target, resp.StatusCode)
		}
		resp.Body.Close()
		conn.Close()
	}
	if n := prov.count(); n != 0 {
		t.Fatalf("the provider received %d requests", n)
	}
}

// TestOneTokenPerRequest: two Authorization headers, or token headers that differ, are
// refused; the same token in several of them is one token; a token in the URL is refused; and
// no token header ever reaches the provider.
func TestOneTokenPerRequest(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", ""))
	c := tester.Client
	m := mintToken(t, c, "test-project-key", `{"user_id":"user_headers"}`)
	other := mintToken(t, c, "test-project-key", `{"user_id":"user_other"}`)

	send := func(path string, hdr http.Header) *http.Response {
		req, err := http.NewRequest("POST", gatewayURL(path), strings.NewReader(chatBody))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = hdr
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	wantError(t, send("/v1/chat/completions", http.Header{"Authorization": {"Bearer " + m.Token, "Bearer " + other.Token}}), 400, "invalid_request")
	wantError(t, send("/v1/chat/completions", http.Header{"Authorization": {"Bearer " + m.Token, "Bearer " + m.Token}}), 400, "invalid_request")
	wantError(t, send("/v1/chat/completions", http.Header{"Authorization": {"Bearer " + m.Token}, "X-Api-Key": {other.Token}}), 400, "invalid_request")
	wantError(t, send("/v1/chat/completions", http.Header{"X-Api-Key": {m.Token}, "X-Goog-Api-Key": {other.Token}}), 400, "invalid_request")
	wantError(t, send("/v1/chat/completions?key="+m.Token, http.Header{}), 401, "invalid_api_key")
	wantError(t, send("/v1/chat/completions?key="+m.Token, http.Header{"Authorization": {"Bearer " + m.Token}}), 401, "invalid_api_key")
	if n := prov.count(); n != 0 {
		t.Fatalf("the provider received %d ambiguous requests", n)
	}

	for _, hdr := range []http.Header{
		{"Authorization": {"Bearer " + m.Token}, "X-Api-Key": {m.Token}, "X-Goog-Api-Key": {m.Token}},
		{"X-Api-Key": {m.Token}},
		{"X-Goog-Api-Key": {m.Token}},
	} {
		resp := send("/v1/chat/completions", hdr)
		if b := readBody(t, resp); resp.StatusCode != 200 {
			t.Fatalf("%v: %d %s", hdr, resp.StatusCode, b)
		}
		up, _ := prov.last(t)
		if up.Header.Get("X-Api-Key") != "" || up.Header.Get("X-Goog-Api-Key") != "" || up.Header.Get("Authorization") != "Bearer provider-secret" {
			t.Errorf("the provider saw token headers %q %q %q", up.Header.Get("Authorization"), up.Header.Get("X-Api-Key"), up.Header.Get("X-Goog-Api-Key"))
		}
		if up.Header.Get("X-Behest-User-Id") != "user_headers" {
			t.Errorf("user %q", up.Header.Get("X-Behest-User-Id"))
		}
	}
}

// TestIdentityIdsArePlain: a trusted issuer's token whose user or session id could split a
// header (CR/LF), or is too long, is refused (401) before any header, placeholder or store key
// is made from it.
func TestIdentityIdsArePlain(t *testing.T) {
	prov := newProvider(t)
	is := newIssuer(t)
	tester := gateway(t, config(prov.URL, is.URL, "", ""))
	c := tester.Client
	for i, claims := range []map[string]any{
		{"uid": "a\r\nX-Evil: 1"},
		{"uid": "a\nb"},
		{"uid": strings.Repeat("u", 257)},
		{"uid": "user_ok", "sid": "s\r\n1"},
	} {
		claims["jti"] = fmt.Sprint("ids-", i)
		tok := is.token(t, is.kid, claims)
		wantError(t, do(t, c, "POST", "/v1/chat/completions", tok, chatBody, nil), 401, "invalid_api_key")
	}
	if n := prov.count(); n != 0 {
		t.Fatalf("the provider received %d requests", n)
	}
	// Time for any settle to land, then: no such user was recorded.
	time.Sleep(50 * time.Millisecond)
	for _, row := range usage(t, c, "group_by=user").Data {
		if strings.ContainsAny(row.Key, "\r\n") || len(row.Key) > 256 {
			t.Errorf("usage recorded a user %q", row.Key)
		}
	}
}

// TestRedisPauseLocksNobodyOut: Redis paused for a few seconds under traffic, so that every
// admission times out on the gateway (503) while the call waits in Redis's socket and runs when
// it resumes. Afterwards the user has every concurrency slot back, and nothing was charged.
func TestRedisPauseLocksNobodyOut(t *testing.T) {
	rs := startRedis(t)
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", fmt.Sprintf(`store redis %s {
			read_timeout 300ms
			write_timeout 300ms
		}`, rs.url()), `tier slots {
				concurrent_requests 4
				max_output_tokens 100
			}
			price * 1.00 1.00`))
	c := tester.Client
	m := mintToken(t, c, "test-project-key", `{"user_id":"user_pause","tier":"slots"}`)
	if resp := do(t, c, "POST", "/v1/chat/completions", m.Token, chatBody, nil); resp.StatusCode != 200 {
		t.Fatalf("before the pause: %d %s", resp.StatusCode, readBody(t, resp))
	} else {
		readBody(t, resp)
	}
	spent := usage(t, c, "group_by=user&user_id=user_pause").Data[0].CostUSD

	errsBefore := scrape(t)[`caddy_behest_store_errors_total{op="reserve"}`]
	rs.pause(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			wantError(t, do(t, c, "POST", "/v1/chat/completions", m.Token, chatBody, nil), 503, "store_unavailable")
		})
	}
	wg.Wait()
	if n := scrape(t)[`caddy_behest_store_errors_total{op="reserve"}`] - errsBefore; n != 8 {
		t.Errorf("store errors of reserve grew by %v, want 8", n)
	}
	time.Sleep(time.Second)
	rs.resume(t)

	// Within 10 s of Redis answering, the four slots are free again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := do(t, c, "GET", "/v1/me", m.Token, "", nil)
		var me struct {
			Limits struct {
				Concurrent struct{ Remaining int64 } `json:"concurrent_requests"`
			} `json:"limits"`
		}
		if b := readBody(t, resp); resp.StatusCode == 200 {
			_ = json.Unmarshal(b, &me)
			if me.Limits.Concurrent.Remaining == 4 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after Redis resumed, %d of 4 concurrency slots are free", me.Limits.Concurrent.Remaining)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := usage(t, c, "group_by=user&user_id=user_pause").Data[0].CostUSD; got != spent {
		t.Errorf("spend went from %v to %v for requests that were refused", spent, got)
	}
	if n := prov.count(); n != 1 {
		t.Errorf("the provider received %d requests, want 1", n)
	}
}
