package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/behest/caddy-behest/internal/loadtest"
)

// traffic sends the soak's requests: model calls of the three APIs, JSON and streamed, by
// many users (some beyond their limits), with clients leaving streams early, bad tokens, the
// users' /v1/me and the operators' usage API.
type traffic struct {
	client *http.Client
	base   string
	users  *population
	tally  *tally
}

// one sends one request, chosen by weight.
func (t *traffic) one(ctx context.Context) {
	switch n := rand.IntN(1000); {
	case n < 900:
		t.model(ctx)
	case n < 940:
		t.badToken(ctx)
	case n < 985:
		t.me(ctx)
	default:
		t.usage(ctx)
	}
}

// model sends a model request as a user; a quarter of the streams are left after their
// first event, as a closed browser tab leaves them.
func (t *traffic) model(ctx context.Context) {
	u, token, err := t.users.pick()
	if err != nil {
		return // counted as a failed mint
	}
	s := loadtest.Scenarios[rand.IntN(len(loadtest.Scenarios))]
	req, err := s.NewRequest(ctx, t.base, token)
	if err != nil {
		panic(err)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		t.noAnswer(ctx, s.Name, err)
		return
	}
	defer resp.Body.Close()
	what := fmt.Sprintf("%s as %s (tier %d)", s.Name, u.id, u.tier)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		_, _ = io.Copy(io.Discard, resp.Body)
		t.tally.count("429", "")
	case resp.StatusCode != http.StatusOK:
		t.tally.count(strconv.Itoa(resp.StatusCode), what+": "+(&loadtest.StatusError{Status: resp.StatusCode, Body: start(resp.Body)}).Error())
	case s.Stream() && rand.IntN(4) == 0:
		buf := make([]byte, 64)
		_, _ = resp.Body.Read(buf)
		t.tally.count(outcomeCut, "")
	default:
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.noAnswer(ctx, s.Name, err)
			return
		}
		t.tally.count("200", incomplete(s, body, what))
	}
}

// incomplete says what is wrong with a 200 answer's body, or is "": a JSON answer must parse,
// a stream must end with its API's last event.
func incomplete(s loadtest.Scenario, body []byte, what string) string {
	if !s.Stream() {
		if !json.Valid(body) {
			return what + ": the JSON answer does not parse: " + string(body)
		}
		return ""
	}
	for _, last := range []string{"data: [DONE]", `"type":"message_stop"`, `"finishReason":"STOP"`} {
		if bytes.Contains(body, []byte(last)) {
			return ""
		}
	}
	return what + ": the stream ended early: " + string(body)
}

// badToken sends a request whose credential must be refused with 401.
func (t *traffic) badToken(ctx context.Context) {
	s := loadtest.Scenarios[rand.IntN(len(loadtest.Scenarios))]
	var token, kind string
	switch rand.IntN(5) {
	case 0:
		kind, token = "garbage", "not-a-token-"+strconv.Itoa(rand.Int())
	case 1:
		kind, token = "the project key", apiKey
	case 2:
		if tok, ok := t.users.expiredToken(); ok {
			kind, token = "expired", tok
			break
		}
		fallthrough
	case 3:
		_, tok, err := t.users.pick()
		if err != nil {
			return
		}
		kind, token = "tampered", tamper(tok)
	default:
		_, err := loadtest.Mint(t.client, t.base, "wrong-key", loadtest.MintRequest{UserID: "user_x"})
		t.expect401(ctx, "mint with a wrong key", err)
		return
	}
	req, err := s.NewRequest(ctx, t.base, token)
	if err != nil {
		panic(err)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		t.noAnswer(ctx, s.Name+" with a "+kind+" token", err)
		return
	}
	defer resp.Body.Close()
	body := start(resp.Body)
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusUnauthorized {
		t.expect401(ctx, s.Name+" with a "+kind+" token", &loadtest.StatusError{Status: resp.StatusCode, Body: body})
		return
	}
	t.tally.count("401", "")
}

// expect401 counts the answer to a bad credential, err being a *loadtest.StatusError or a
// failure to get an answer (nil is a success: the credential was accepted).
func (t *traffic) expect401(ctx context.Context, what string, err error) {
	switch o := outcomeOf(err); {
	case err == nil:
		t.tally.count("200", what+": accepted")
	case o == "401":
		t.tally.count(o, "")
	case o == outcomeNoAns:
		t.noAnswer(ctx, what, err)
	default:
		t.tally.count(o, what+": "+err.Error())
	}
}

// tamper changes one character of a token's signature.
func tamper(token string) string {
	i := strings.LastIndexByte(token, '.') + 10
	if i >= len(token) {
		return token + "x"
	}
	c := byte('A')
	if token[i] == 'A' {
		c = 'B'
	}
	return token[:i] + string(c) + token[i+1:]
}

// me asks /v1/me as a user.
func (t *traffic) me(ctx context.Context) {
	_, token, err := t.users.pick()
	if err != nil {
		return
	}
	t.get(ctx, "/v1/me", "Bearer "+token)
}

// usageQueries are what an operator asks the usage API, a user's usage among them.
var usageQueries = []string{
	"group_by=org", "group_by=model", "group_by=day", "group_by=tier",
	"group_by=user", "group_by=user&format=csv", "group_by=session&user_id=", "group_by=model&user_id=",
}

// usage asks the usage API with the project key.
func (t *traffic) usage(ctx context.Context) {
	q := usageQueries[rand.IntN(len(usageQueries))]
	if strings.HasSuffix(q, "user_id=") {
		u, _, err := t.users.pick()
		if err != nil {
			return
		}
		q += url.QueryEscape(u.id)
	}
	t.get(ctx, "/v1/usage?"+q, "Bearer "+apiKey)
}

// get GETs path with authorization, expecting 200.
func (t *traffic) get(ctx context.Context, path, authorization string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+path, nil)
	if err != nil {
		panic(err)
	}
	req.Header.Set("Authorization", authorization)
	resp, err := t.client.Do(req)
	if err != nil {
		t.noAnswer(ctx, path, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.tally.count(strconv.Itoa(resp.StatusCode), path+": "+(&loadtest.StatusError{Status: resp.StatusCode, Body: start(resp.Body)}).Error())
		return
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.noAnswer(ctx, path, err)
		return
	}
	t.tally.count("200", "")
}

// noAnswer counts a request that got no (whole) answer, unless the soak is ending.
func (t *traffic) noAnswer(ctx context.Context, what string, err error) {
	if ctx.Err() == nil {
		t.tally.noAnswer(what, err)
	}
}

// start is the start of a body, for a message.
func start(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 300))
	return string(b)
}
