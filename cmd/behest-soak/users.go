package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/behest/caddy-behest/internal/loadtest"
)

// user is an end user of the soak's app, with the token of their current session.
type user struct {
	id   string
	tier int

	mu    sync.Mutex // held while the token is refreshed
	token string
	exp   time.Time
}

// spentToken is a token its holder replaced, kept to be sent once it has expired.
type spentToken struct {
	token string
	exp   time.Time
}

// population is the app's users: the active ones (a session now), a few heavy ones (calling
// far more often than their tier allows), and those who left, some of whom come back.
type population struct {
	client *http.Client
	base   string
	tally  *tally

	mu     sync.Mutex
	active []*user
	heavy  []*user
	left   []string     // ids of users who left, newest last
	spent  []spentToken // a ring of replaced tokens
	next   int          // number of the next new user
	spentI int
}

// leeway is how long after exp a token may still be accepted (the contract's 60 s at most).
const leeway = 61 * time.Second

// ttls are the lifetimes the app mints tokens with, in seconds.
var ttls = []int{60, 300, 900}

func newPopulation(client *http.Client, base string, t *tally) *population {
	return &population{client: client, base: base, tally: t, spent: make([]spentToken, 256)}
}

// mint gives u a new token (a new session), counting the mint in the tally.
func (p *population) mint(u *user) error {
	m, err := loadtest.Mint(p.client, p.base, apiKey, loadtest.MintRequest{UserID: u.id, Tier: u.tier, TTL: ttls[rand.IntN(len(ttls))]})
	p.tally.countErr("mint", err)
	if err != nil {
		return err
	}
	if u.token != "" {
		p.mu.Lock()
		p.spent[p.spentI%len(p.spent)] = spentToken{u.token, u.exp}
		p.spentI++
		p.mu.Unlock()
	}
	u.token, u.exp = m.Token, time.Unix(m.ExpiresAt, 0)
	return nil
}

// arrive brings a user in: mostly a new one, sometimes one who left and comes back. When the
// active users are most, a random one of them leaves to make room.
func (p *population) arrive(most int) error {
	p.mu.Lock()
	var u *user
	if len(p.left) > 0 && rand.IntN(5) == 0 {
		i := rand.IntN(len(p.left))
		u = &user{id: p.left[i], tier: tierOf(p.left[i])}
		p.left[i] = p.left[len(p.left)-1]
		p.left = p.left[:len(p.left)-1]
	} else {
		u = p.newUser()
	}
	p.mu.Unlock()
	if err := p.mint(u); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.active) < most {
		p.active = append(p.active, u)
		return nil
	}
	i := rand.IntN(len(p.active))
	if len(p.left) < 100_000 {
		p.left = append(p.left, p.active[i].id)
	}
	p.active[i] = u
	return nil
}

// newUser is the next new user; p.mu is held.
func (p *population) newUser() *user {
	n := p.next
	p.next++
	id := fmt.Sprintf("org_%d:user_%d", n%97, n)
	return &user{id: id, tier: tierOf(id)}
}

// tierOf is a user's tier, the same each time they come: seven in ten are on the tight one.
func tierOf(id string) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	if h%10 < 7 {
		return tierTight
	}
	return tierRoomy
}

// addHeavy adds a heavy user, or replaces the oldest once there are n: beyond their per-minute
// limit at once, they use up their daily tokens within minutes and are refused outright after.
func (p *population) addHeavy(n int) error {
	p.mu.Lock()
	u := p.newUser()
	u.tier = tierHeavy
	p.mu.Unlock()
	if err := p.mint(u); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.heavy = append(p.heavy, u)
	if len(p.heavy) > n {
		p.heavy = p.heavy[1:]
	}
	return nil
}

// pick is a user to send a request as, heavy ones one time in ten, with a token valid for a
// while yet (refreshed, as an SDK would, when it is about to expire).
func (p *population) pick() (*user, string, error) {
	p.mu.Lock()
	var u *user
	if len(p.heavy) > 0 && rand.IntN(10) == 0 {
		u = p.heavy[rand.IntN(len(p.heavy))]
	} else {
		u = p.active[rand.IntN(len(p.active))]
	}
	p.mu.Unlock()
	u.mu.Lock()
	defer u.mu.Unlock()
	if time.Until(u.exp) < 10*time.Second {
		if err := p.mint(u); err != nil {
			return nil, "", err
		}
	}
	return u, u.token, nil
}

// expiredToken is a replaced token that has expired beyond any leeway, if there is one.
func (p *population) expiredToken() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.spent[rand.IntN(len(p.spent))]
	if st.token == "" || time.Since(st.exp) < leeway {
		return "", false
	}
	return st.token, true
}

// counts are how many users have come (new ones) and are active now.
func (p *population) counts() (came, active int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next, len(p.active)
}
