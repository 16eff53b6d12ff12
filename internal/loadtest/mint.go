package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// MintRequest is the body of POST /v1/auth/mint.
type MintRequest struct {
	UserID string `json:"user_id"`
	Tier   int    `json:"tier,omitempty"`
	TTL    int    `json:"ttl,omitempty"` // seconds
}

// Minted is the mint's answer.
type Minted struct {
	Token     string `json:"token"`
	TTL       int    `json:"ttl"`
	SessionID string `json:"sessionId"`
	ExpiresAt int64  `json:"expiresAt"` // unix seconds
}

// StatusError is an answer with an unexpected status.
type StatusError struct {
	Status int
	Body   string // its start
}

func (e *StatusError) Error() string { return fmt.Sprintf("status %d: %s", e.Status, e.Body) }

// statusError reads the start of resp's body into a StatusError.
func statusError(resp *http.Response) *StatusError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return &StatusError{Status: resp.StatusCode, Body: string(b)}
}

// Mint mints a token at base (scheme://host:port) with the project's apiKey, on client
// (http.DefaultClient when nil). An answer other than 200 is a *StatusError.
func Mint(client *http.Client, base, apiKey string, mr MintRequest) (Minted, error) {
	if client == nil {
		client = http.DefaultClient
	}
	body, err := json.Marshal(mr)
	if err != nil {
		return Minted{}, err
	}
	req, err := http.NewRequest(http.MethodPost, base+"/v1/auth/mint", bytes.NewReader(body))
	if err != nil {
		return Minted{}, err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return Minted{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Minted{}, statusError(resp)
	}
	var m Minted
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return Minted{}, fmt.Errorf("mint %s: %w", mr.UserID, err)
	}
	if m.Token == "" {
		return Minted{}, fmt.Errorf("mint %s: no token in the answer", mr.UserID)
	}
	return m, nil
}
