package behest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// BenchmarkGatewayOverhead measures a chat completion through behest + reverse_proxy against the
// same request through reverse_proxy alone, in the same run and the same Caddy, alternating, so
// the ratio holds on a noisy machine. Run: go test -run XXX -bench GatewayOverhead .
func BenchmarkGatewayOverhead(b *testing.B) {
	prov := newProvider(b)
	upstream := strings.TrimPrefix(prov.URL, "http://")
	tester := caddytest.NewTester(b)
	tester.InitServer(fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	auto_https off
}
http://127.0.0.1:%d {
	route /direct/* {
		uri strip_prefix /direct
		reverse_proxy %s
	}
	route {
		behest {
			project p_bench {
				tenant t_bench
				api_key bench-key
				tier 1 {
					requests_per_minute 1000000000
					tokens_per_minute 1000000000000
					cost_per_month 1000000
					max_output_tokens 1024
				}
				price * 1.00 2.00
			}
		}
		reverse_proxy %s
	}
}`, caddytest.Default.AdminPort, gatewayPort, gatewayPort, upstream, upstream), "caddyfile")

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	post := func(path, bearer, body string) int {
		req, _ := http.NewRequest("POST", gatewayURL(path), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	req, _ := http.NewRequest("POST", gatewayURL("/v1/auth/mint"), strings.NewReader(`{"user_id":"bench"}`))
	req.Header.Set("Authorization", "Bearer bench-key")
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	var m minted
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if post("/v1/chat/completions", m.Token, chatBody) != 200 || post("/direct/v1/chat/completions", "", chatBody) != 200 {
		b.Fatal("warm-up requests failed")
	}

	var direct, gateway time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		post("/direct/v1/chat/completions", "", chatBody)
		t1 := time.Now()
		if code := post("/v1/chat/completions", m.Token, chatBody); code != 200 {
			b.Fatalf("status %d", code)
		}
		direct += t1.Sub(t0)
		gateway += time.Since(t1)
	}
	b.ReportMetric(float64(direct.Nanoseconds())/float64(b.N), "direct-ns/req")
	b.ReportMetric(float64(gateway.Nanoseconds())/float64(b.N), "behest-ns/req")
	b.ReportMetric(float64(gateway)/float64(direct), "ratio")
}
