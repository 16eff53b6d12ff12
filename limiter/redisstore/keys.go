package redisstore

import (
	"strings"
	"time"

	"github.com/behest/caddy-behest/limiter"
)

// KeyDoc describes one kind of key, for the README.
type KeyDoc struct {
	Pattern string // e.g. "behest:{<project>}:u:<user>"
	Type    string // Redis type
	Holds   string
	TTL     string // how long it lives after its last write
}

// KeyLayout returns the keys the store writes with opts (defaults applied), in the order of
// the package documentation.
func KeyLayout(opts Options) []KeyDoc {
	opts.setDefaults()
	p := opts.KeyPrefix + "{<project>}:"
	return []KeyDoc{
		{p + "u:<user>", "hash", "the user's day and month counters (d, dt, dc, m, mc)", counterTTL.String()},
		{p + "rpm:<user>", "hash", "unix second -> requests, the rolling minute", windowTTL.String()},
		{p + "tpm:<user>", "hash", "unix second -> tokens, the rolling minute", windowTTL.String()},
		{p + "inflight:<user>", "zset", "reservation id -> concurrency lease end (unix ms)", (opts.ConcurrencyLease + settleGrace).String()},
		{p + "project", "hash", "the project's budget month and cost (m, mc)", counterTTL.String()},
		{p + "rev:<kind>:<id>", "string", "unix nanoseconds of the latest revocation of a user or session", opts.RevocationTTL.String()},
		{p + "usage:<day>", "hash", `"user\0org\0session\0tier\0model\0" + r|i|k|o|c -> requests, input, cached input and output tokens, cost`, opts.UsageRetention.String()},
		{p + "usage-days", "zset", "days (since 1970-01-01 UTC) that have usage", opts.UsageRetention.String()},
		{p + "claim:<key>", "string", "a once-only event: an alert announced, an attestation token used", "until the claim's end"},
	}
}

const (
	// counterTTL outlives the longest calendar month after a user's last request, so a month's
	// spend is never forgotten while the month lasts.
	counterTTL = 32 * 24 * time.Hour
	// windowTTL is far longer than the minute a window spans, so that a slow test with a fake
	// clock (or a paused instance) does not see its minute vanish.
	windowTTL = 10 * time.Minute
	// settleGrace is how long past its lease a reservation can still be settled.
	settleGrace = 24 * time.Hour
)

// Indexes into userKeys.
const (
	keyUser = iota
	keyRPM
	keyTPM
	keyInflight
	keyProject
	keyRevUser
	keyRevSession
	numUserKeys
)

// userKeys are the keys one admission touches.
type userKeys [numUserKeys]string

func (s *Store) userKeys(project, user, session string) userKeys {
	var k userKeys
	s.buildKeys(project, []keyPart{
		keyUser:       {"u:", user},
		keyRPM:        {"rpm:", user},
		keyTPM:        {"tpm:", user},
		keyInflight:   {"inflight:", user},
		keyProject:    {"project", ""},
		keyRevUser:    {"rev:" + limiter.RevokeUser + ":", user},
		keyRevSession: {"rev:" + limiter.RevokeSession + ":", session},
	}, k[:])
	return k
}

// settleKeys are the keys of the settle script, in its order.
func (s *Store) settleKeys(project, user, day string) [6]string {
	var k [6]string
	s.buildKeys(project, []keyPart{
		{"u:", user}, {"tpm:", user}, {"inflight:", user}, {"project", ""}, {"usage:", day}, {"usage-days", ""},
	}, k[:])
	return k
}

// keyPart is what follows "<prefix>{<project>}:" in a key.
type keyPart struct{ kind, id string }

// buildKeys sets keys[i] to the key of parts[i] with one allocation: the keys are substrings
// of one string.
func (s *Store) buildKeys(project string, parts []keyPart, keys []string) {
	size := 0
	for _, p := range parts {
		size += len(s.prefix) + len(project) + 3 + len(p.kind) + len(p.id)
	}
	var b strings.Builder
	b.Grow(size)
	for _, p := range parts {
		s.writeTag(&b, project)
		b.WriteString(p.kind)
		b.WriteString(p.id)
	}
	all := b.String()
	start := 0
	for i, p := range parts {
		end := start + len(s.prefix) + len(project) + 3 + len(p.kind) + len(p.id)
		keys[i] = all[start:end]
		start = end
	}
}

// writeTag writes "<prefix>{<project>}:", the start every key of the project shares.
func (s *Store) writeTag(b *strings.Builder, project string) {
	b.WriteString(s.prefix)
	b.WriteByte('{')
	b.WriteString(project)
	b.WriteString("}:")
}

// projectKey returns "<prefix>{<project>}:" + kind + id.
func (s *Store) projectKey(project, kind, id string) string {
	var b strings.Builder
	b.Grow(len(s.prefix) + len(project) + 3 + len(kind) + len(id))
	s.writeTag(&b, project)
	b.WriteString(kind)
	b.WriteString(id)
	return b.String()
}

func (s *Store) revocationKey(project, kind, id string) string {
	return s.projectKey(project, "rev:"+kind+":", id)
}

func (s *Store) usageDaysKey(project string) string {
	return s.projectKey(project, "usage-days", "")
}

// usageField is the prefix of the usage fields of one user, org, session, tier and model; the
// NUL separator cannot occur in ids (they are printable) nor in tiers and models from config and
// JSON. Fields written before orgs were kept lack the org ("user\0session\0tier\0model\0").
func usageField(req *limiter.Request) string {
	return req.User + "\x00" + req.Org + "\x00" + req.Session + "\x00" + req.Tier + "\x00" + req.Model + "\x00"
}
