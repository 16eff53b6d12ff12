package loadtest

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMint(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/auth/mint" || r.Header.Get("Authorization") != "Bearer key" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"invalid_api_key"}}`))
			return
		}
		var mr map[string]any
		_ = json.NewDecoder(r.Body).Decode(&mr)
		if mr["user_id"] == "no-token" {
			_, _ = w.Write([]byte(`{}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"token": "tok-" + mr["user_id"].(string), "ttl": mr["ttl"], "sessionId": "sess_1", "expiresAt": 1764201234})
	}))
	defer srv.Close()

	m, err := Mint(srv.Client(), srv.URL, "key", MintRequest{UserID: "org_1:u", Tier: 2, TTL: 60})
	if err != nil || m != (Minted{Token: "tok-org_1:u", TTL: 60, SessionID: "sess_1", ExpiresAt: 1764201234}) {
		t.Fatalf("Mint: %+v, %v", m, err)
	}

	_, err = Mint(srv.Client(), srv.URL, "wrong", MintRequest{UserID: "u"})
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 401 || !strings.Contains(se.Body, "invalid_api_key") {
		t.Fatalf("a wrong key: %v", err)
	}

	if _, err := Mint(srv.Client(), srv.URL, "key", MintRequest{UserID: "no-token"}); err == nil || errors.As(err, &se) {
		t.Fatalf("an answer without a token: %v", err)
	}
}

func TestMintRequestLeavesOutWhatIsUnset(t *testing.T) {
	b, _ := json.Marshal(MintRequest{UserID: "u", TTL: 3600})
	if string(b) != `{"user_id":"u","ttl":3600}` {
		t.Fatalf("%s", b)
	}
}
